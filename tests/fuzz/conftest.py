"""A live orgauth server for the fuzzers, with a user and a superuser signed in."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.servers import ServerFactory, server_environment

SUPERUSER_EMAIL = "fuzz-admin@example.com"
USER_EMAIL = "fuzz-user@example.com"
PASSWORD = "fuzzing-correct-horse-battery"


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    user_token: str
    superuser_token: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return dict(json.loads(response.read()))


@pytest.fixture(scope="session")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, database_url: str
) -> Iterator[LiveServer]:
    """``orgauth serve`` on the session's test database (migrated by serve itself)."""
    factory = ServerFactory(tmp_path_factory.mktemp("fuzz"))
    environment = server_environment(
        database_url=database_url,
        first_superuser_email=SUPERUSER_EMAIL,
        first_superuser_password=PASSWORD,
        log_level="WARNING",
    )
    try:
        (server,) = factory.start(environment)
        base = server.url
        _post(base + "/api/v1/auth/register", {"email": USER_EMAIL, "password": PASSWORD})
        user = _post(base + "/api/v1/auth/login", {"email": USER_EMAIL, "password": PASSWORD})
        admin = _post(base + "/api/v1/auth/login", {"email": SUPERUSER_EMAIL, "password": PASSWORD})
        yield LiveServer(base, str(user["access_token"]), str(admin["access_token"]))
    finally:
        factory.stop_all()
