"""The per-request authentication statement: one SELECT through SQLAlchemy, seen by its
events (and so by tracing), on a connection that goes back to the pool after each use."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth.models import UserSession, utcnow
from orgauth.services.context import SESSION_TOUCH_INTERVAL
from tests.support.http import API, UserFactory, execute


class Recorder:
    def __init__(self, engine: AsyncEngine) -> None:
        self.statements: list[str] = []
        self.checked_out: list[int] = []
        self.engine = engine
        event.listen(engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.statements.append(" ".join(statement.split()))

    def close(self) -> None:
        event.remove(self.engine.sync_engine, "before_cursor_execute", self._record)


async def test_authentication_is_one_select_visible_to_sqlalchemy_events(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    user = await make_user()
    engine = app.state.orgauth.engine
    recorder = Recorder(engine)
    try:
        response = await client.get(f"{API}/users/me", headers=user.headers)
    finally:
        recorder.close()

    assert response.status_code == 200
    assert len(recorder.statements) == 1, recorder.statements
    statement = recorder.statements[0]
    assert statement.startswith("SELECT users.id")
    assert "FROM user_sessions JOIN users" in statement


async def test_no_connection_stays_checked_out_between_requests(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    user = await make_user()
    pool = app.state.orgauth.engine.sync_engine.pool
    for _ in range(5):
        assert (await client.get(f"{API}/users/me", headers=user.headers)).status_code == 200
        assert (await client.get("/health")).status_code == 200
        assert pool.checkedout() == 0


async def test_a_stale_last_used_at_is_refreshed_by_one_visible_update(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine
) -> None:
    user = await make_user()
    stale = utcnow() - SESSION_TOUCH_INTERVAL - timedelta(seconds=5)
    await execute(
        db,
        update(UserSession).where(UserSession.id == user.session_id).values(last_used_at=stale),
    )
    recorder = Recorder(app.state.orgauth.engine)
    try:
        assert (await client.get(f"{API}/users/me", headers=user.headers)).status_code == 200
        assert (await client.get(f"{API}/users/me", headers=user.headers)).status_code == 200
    finally:
        recorder.close()

    updates = [s for s in recorder.statements if s.startswith("UPDATE user_sessions")]
    assert len(updates) == 1  # the second request finds it fresh
    assert len(recorder.statements) == 3
