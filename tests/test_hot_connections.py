"""Connections kept at hand for the per-request query: reused, bounded, never reused broken.

Everything but the sizing runs against the real PostgreSQL server (SQLite keeps none).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.conftest import is_postgres_run, make_settings
from tests.embedding.helpers import API, error_code, running, sign_up

from orgauth import OrgAuth, hot_connections
from orgauth.db import DatabaseUnavailableError, HotQuery, create_engine
from orgauth.hot_connections import HotConnections, connections_for
from orgauth.settings import OrgAuthSettings

postgres_only = pytest.mark.skipif(not is_postgres_run(), reason="PostgreSQL connections")

_BACKEND_PID = HotQuery(text("SELECT pg_backend_pid() AS pid"))
_SLOW = HotQuery(text("SELECT pg_sleep(30)"))


@pytest.fixture(autouse=True)
def _no_leaked_registration() -> Iterator[None]:
    """Every test leaves the engine as it found it: nothing registered."""
    assert not hot_connections._REGISTRY
    yield
    assert not hot_connections._REGISTRY


@pytest.fixture
async def kept(db: AsyncEngine) -> AsyncIterator[HotConnections]:
    """Up to three connections kept for ``db``; all back in the pool afterwards."""
    hot_connections.open_hot_connections(db, max_idle=3)
    try:
        connections = connections_for(db)
        assert isinstance(connections, HotConnections)
        yield connections
    finally:
        await hot_connections.close_hot_connections(db)
    assert _checked_out(db) == 0


@pytest.fixture
async def host_client(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """A host app with orgauth installed on ``db``, its lifespan running."""
    auth = OrgAuth(make_settings(database_url, tmp_path), engine=db)
    app = FastAPI(lifespan=auth.lifespan)
    auth.install(app)
    async with running(app) as http:
        yield http
    assert _checked_out(db) == 0  # the lifespan's shutdown returned them


def _checked_out(engine: AsyncEngine) -> int:
    return int(engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]


async def _backend_pid(engine: AsyncEngine) -> int:
    row = await _BACKEND_PID.fetch_one(engine, {})
    assert row is not None
    return int(row["pid"])


async def _terminate(engine: AsyncEngine, pid: int) -> None:
    async with engine.connect() as admin:
        await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await admin.commit()


async def _wait_until_sleeping(engine: AsyncEngine) -> int:
    """The backend running ``pg_sleep(30)`` in this test's database, once it is running."""
    query = text(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND state = 'active' AND query LIKE 'SELECT pg_sleep(30)%'"
    )
    for _ in range(250):
        async with engine.connect() as admin:
            pid = (await admin.execute(query)).scalar()
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.02)
    raise AssertionError("the slow statement never started")


# --- sizing -----------------------------------------------------------------------------


def test_sqlite_keeps_no_connections(tmp_path: Path) -> None:
    auth = OrgAuth(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", tmp_path))
    assert auth._hot_connection_count() == 0


@pytest.mark.parametrize(
    ("pool_size", "expected"), [(1, 0), (2, 1), (3, 1), (10, 5), (20, 8), (100, 8)]
)
def test_at_most_half_the_pool_is_kept_and_none_of_a_pool_of_one(
    tmp_path: Path, pool_size: int, expected: int
) -> None:
    settings = make_settings(
        "postgresql://app@db.invalid/app", tmp_path, db_pool_size=pool_size, db_max_overflow=0
    )
    assert OrgAuth(settings)._hot_connection_count() == expected


def test_an_engine_without_a_running_orgauth_checks_out_directly() -> None:
    engine = create_engine(
        OrgAuthSettings(_env_file=None, database_url="postgresql://app@db.invalid/app")  # type: ignore[call-arg]
    )
    assert not isinstance(connections_for(engine), HotConnections)


# --- reuse and bounds -------------------------------------------------------------------


@postgres_only
async def test_requests_reuse_a_kept_connection(
    db: AsyncEngine, host_client: httpx.AsyncClient
) -> None:
    account = await sign_up(host_client)
    assert (await host_client.get(f"{API}/users/me", headers=account.headers)).status_code == 200
    connections = connections_for(db)
    assert isinstance(connections, HotConnections)
    assert connections.idle_count == 1
    assert await _backend_pid(db) == await _backend_pid(db)  # the same one, no new checkout


@postgres_only
async def test_idle_connections_are_bounded_under_concurrency(
    db: AsyncEngine, kept: HotConnections
) -> None:
    await asyncio.gather(*(_backend_pid(db) for _ in range(20)))
    assert kept.idle_count == 3
    assert _checked_out(db) == 3  # the other 17 went back to the pool


@postgres_only
async def test_connections_go_back_to_the_pool_after_the_hold_time(
    db: AsyncEngine, kept: HotConnections, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _backend_pid(db)
    assert kept.idle_count == 1
    monkeypatch.setattr(hot_connections, "HOLD_SECONDS", 0.0)
    await _backend_pid(db)  # the held one is returned on this use, not reused
    assert kept.idle_count == 0
    assert _checked_out(db) == 0


# --- never reused broken ----------------------------------------------------------------


@postgres_only
async def test_a_connection_the_server_closed_while_idle_is_never_handed_out(
    db: AsyncEngine, host_client: httpx.AsyncClient
) -> None:
    account = await sign_up(host_client)
    await host_client.get(f"{API}/users/me", headers=account.headers)
    victim = await _backend_pid(db)
    await _terminate(db, victim)
    await asyncio.sleep(0.2)  # the client sees the socket close

    after = await host_client.get(f"{API}/users/me", headers=account.headers)

    assert after.status_code == 200, after.text
    assert await _backend_pid(db) != victim


@postgres_only
async def test_a_connection_lost_mid_statement_is_an_outage_and_discards_the_idle_ones(
    db: AsyncEngine, kept: HotConnections
) -> None:
    await asyncio.gather(*(_backend_pid(db) for _ in range(3)))
    assert kept.idle_count == 3
    task = asyncio.create_task(_SLOW.fetch_one(db, {}))
    sleeping = await _wait_until_sleeping(db)
    await _terminate(db, sleeping)

    with pytest.raises(DatabaseUnavailableError):
        await task
    # The two other idle ones are presumed broken too and dropped, not handed out.
    assert kept.idle_count == 0


@postgres_only
async def test_a_statement_cancelled_midway_never_leaves_its_connection_for_reuse(
    db: AsyncEngine, kept: HotConnections
) -> None:
    task = asyncio.create_task(_SLOW.fetch_one(db, {}))
    sleeping = await _wait_until_sleeping(db)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert kept.idle_count == 0
    # The next statements work, on another connection.
    assert await _backend_pid(db) != sleeping
    assert await _backend_pid(db) != sleeping


# --- lifecycle ----------------------------------------------------------------------------


@postgres_only
async def test_two_instances_on_one_engine_share_the_connections_until_the_last_stops(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    first = OrgAuth(make_settings(database_url, tmp_path), engine=db)
    second = OrgAuth(make_settings(database_url, tmp_path), engine=db)
    async with contextlib.AsyncExitStack() as stack:
        await first.startup()
        stack.push_async_callback(first.shutdown)
        await second.startup()
        stack.push_async_callback(second.shutdown)

        await _backend_pid(db)
        await first.shutdown()
        connections = connections_for(db)
        assert isinstance(connections, HotConnections)  # the second still runs
        assert connections.idle_count == 1
        await _backend_pid(db)
    assert not isinstance(connections_for(db), HotConnections)
    assert _checked_out(db) == 0


@postgres_only
async def test_authentication_is_still_immediate_with_kept_connections(
    db: AsyncEngine, host_client: httpx.AsyncClient
) -> None:
    """A kept connection runs outside any transaction: a logout is seen at once."""
    account = await sign_up(host_client)
    assert (await host_client.get(f"{API}/users/me", headers=account.headers)).status_code == 200
    connections = connections_for(db)
    assert isinstance(connections, HotConnections)
    assert connections.idle_count >= 1
    logout = await host_client.post(
        f"{API}/auth/logout", json={"refresh_token": account.refresh_token}, headers=account.headers
    )
    assert logout.status_code == 204, logout.text
    after = await host_client.get(f"{API}/users/me", headers=account.headers)
    assert after.status_code == 401
    assert error_code(after) == "INVALID_TOKEN"
