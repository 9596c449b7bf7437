from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.conftest import make_settings

from orgauth.app import create_app

AppClient = Callable[..., Any]


@pytest.fixture
def app_client(db: AsyncEngine, database_url: str, tmp_path: Path) -> AppClient:
    """``async with app_client(**settings) as client``: an app with custom settings."""

    @asynccontextmanager
    async def factory(
        peer: str = "203.0.113.10", **overrides: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(make_settings(database_url, tmp_path, **overrides))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=(peer, 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                yield c

    return factory
