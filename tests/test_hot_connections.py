"""Connections kept at hand for the per-request query: reused, bounded, never reused broken.

Everything here runs against the real PostgreSQL server (SQLite has no such connections).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.conftest import is_postgres_run, make_settings
from tests.embedding.helpers import API, running, sign_up

from orgauth import OrgAuth, hot_connections
from orgauth.db import HotQuery, create_engine
from orgauth.hot_connections import HotConnections, connections_for
from orgauth.settings import OrgAuthSettings

postgres_only = pytest.mark.skipif(not is_postgres_run(), reason="PostgreSQL connections")

_BACKEND_PID = HotQuery(text("SELECT pg_backend_pid() AS pid"))


def _checked_out(engine: AsyncEngine) -> int:
    return int(engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]


async def _backend_pid(engine: AsyncEngine) -> int:
    row = await _BACKEND_PID.fetch_one(engine, {})
    assert row is not None
    return int(row["pid"])


def _host_app(auth: OrgAuth) -> FastAPI:
    app = FastAPI(lifespan=auth.lifespan)
    auth.install(app)
    return app


def test_sqlite_keeps_no_connections(tmp_path: Path) -> None:
    auth = OrgAuth(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", tmp_path))
    assert auth._hot_connection_count() == 0


@postgres_only
async def test_requests_reuse_a_kept_connection_and_shutdown_returns_it(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    auth = OrgAuth(make_settings(database_url, tmp_path), engine=db)
    async with running(_host_app(auth)) as client:
        account = await sign_up(client)
        assert (await client.get(f"{API}/users/me", headers=account.headers)).status_code == 200
        kept = connections_for(db)
        assert isinstance(kept, HotConnections)
        assert kept.idle_count == 1
        first, second = await _backend_pid(db), await _backend_pid(db)
        assert first == second  # the same connection, not a new checkout
    # The lifespan's shutdown hands them back: nothing stays checked out of the pool.
    assert not isinstance(connections_for(db), HotConnections)
    assert _checked_out(db) == 0


@postgres_only
async def test_idle_connections_are_bounded_under_concurrency(db: AsyncEngine) -> None:
    hot_connections.open_hot_connections(db, max_idle=3)
    try:
        await asyncio.gather(*(_backend_pid(db) for _ in range(20)))
        kept = connections_for(db)
        assert isinstance(kept, HotConnections)
        assert kept.idle_count <= 3
        assert _checked_out(db) <= 3
    finally:
        await hot_connections.close_hot_connections(db)
    assert _checked_out(db) == 0


@postgres_only
async def test_connections_go_back_to_the_pool_after_the_hold_time(
    db: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    hot_connections.open_hot_connections(db, max_idle=3)
    try:
        monkeypatch.setattr(hot_connections, "HOLD_SECONDS", 0.0)
        await _backend_pid(db)
        assert _checked_out(db) == 0  # returned, not kept
    finally:
        await hot_connections.close_hot_connections(db)


@postgres_only
async def test_a_connection_killed_by_the_server_is_discarded_with_the_idle_ones(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    auth = OrgAuth(make_settings(database_url, tmp_path), engine=db)
    async with running(_host_app(auth)) as client:
        account = await sign_up(client)
        await client.get(f"{API}/users/me", headers=account.headers)
        victim = await _backend_pid(db)
        async with db.connect() as admin:
            await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})
            await admin.commit()
        await asyncio.sleep(0.2)

        broken = await client.get(f"{API}/users/me", headers=account.headers)
        after = await client.get(f"{API}/users/me", headers=account.headers)
        replacement = await _backend_pid(db)

    # The dead connection costs at most one 503 (never a 500); it is never handed out again.
    assert broken.status_code in (200, 503), broken.text
    assert after.status_code == 200, after.text
    assert replacement != victim


@postgres_only
async def test_a_statement_cancelled_midway_never_leaves_its_connection_for_reuse(
    db: AsyncEngine,
) -> None:
    hot_connections.open_hot_connections(db, max_idle=3)
    slow = HotQuery(text("SELECT pg_backend_pid() AS pid, pg_sleep(0.5)"))
    try:
        task = asyncio.create_task(slow.fetch_one(db, {}))
        await asyncio.sleep(0.1)
        async with db.connect() as admin:
            sleeping = (
                await admin.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity "
                        "WHERE query LIKE '%pg_sleep(0.5)%' AND pid <> pg_backend_pid()"
                    )
                )
            ).scalar_one()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        kept = connections_for(db)
        assert isinstance(kept, HotConnections)
        assert kept.idle_count == 0
        # The next statements work, on another connection.
        assert await _backend_pid(db) != sleeping
        assert await _backend_pid(db) != sleeping
    finally:
        await hot_connections.close_hot_connections(db)


@postgres_only
async def test_two_instances_on_one_engine_share_the_connections_until_the_last_stops(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    first = OrgAuth(make_settings(database_url, tmp_path), engine=db)
    second = OrgAuth(make_settings(database_url, tmp_path), engine=db)
    await first.startup()
    await second.startup()
    try:
        await _backend_pid(db)
        await first.shutdown()
        assert isinstance(connections_for(db), HotConnections)  # the second still runs
        await _backend_pid(db)
    finally:
        await second.shutdown()
    assert not isinstance(connections_for(db), HotConnections)
    assert _checked_out(db) == 0


@postgres_only
async def test_authentication_is_still_immediate_with_kept_connections(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    """A kept connection runs outside any transaction: a logout is seen at once."""
    auth = OrgAuth(make_settings(database_url, tmp_path), engine=db)
    async with running(_host_app(auth)) as client:
        account = await sign_up(client)
        assert (await client.get(f"{API}/users/me", headers=account.headers)).status_code == 200
        logout = await client.post(
            f"{API}/auth/logout",
            json={"refresh_token": account.refresh_token},
            headers=account.headers,
        )
        assert logout.status_code in (200, 204), logout.text
        after = await client.get(f"{API}/users/me", headers=account.headers)
    assert after.status_code == 401


def test_an_engine_without_a_running_orgauth_checks_out_directly() -> None:
    engine = create_engine(
        OrgAuthSettings(_env_file=None, database_url="postgresql://app@db.invalid/app")  # type: ignore[call-arg]
    )
    assert not isinstance(connections_for(engine), HotConnections)


@pytest.mark.parametrize(
    ("pool_size", "kept"), [(1, 0), (2, 1), (3, 1), (10, 5), (20, 8), (100, 8)]
)
def test_at_most_half_the_pool_is_kept_and_none_of_a_pool_of_one(
    tmp_path: Path, pool_size: int, kept: int
) -> None:
    settings = make_settings(
        "postgresql://app@db.invalid/app", tmp_path, db_pool_size=pool_size, db_max_overflow=0
    )
    assert OrgAuth(settings)._hot_connection_count() == kept
