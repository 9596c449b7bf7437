"""Webhook tests: apps that may send to the local receiver (127.0.0.1), with retries fast
enough to watch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from orgauth.extension import OrgAuth
from orgauth.settings import OrgAuthSettings
from tests.support.settings import make_settings
from tests.support.webhooks import Receiver, running_receiver

#: Two retries, short enough for a test to wait out.
FAST_RETRIES = "0.2,0.2"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> OrgAuthSettings:
    return make_settings(
        database_url,
        tmp_path,
        webhook_allow_private_urls=True,
        webhook_retry_schedule=FAST_RETRIES,
        webhook_timeout_seconds=2,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
def auth(app: FastAPI) -> OrgAuth:
    instance: OrgAuth = app.state.orgauth
    return instance
