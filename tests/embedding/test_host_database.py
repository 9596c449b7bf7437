"""A host app's own database: its engine and session factory, its session dependency, and
its tables with foreign keys to orgauth's (docs/EMBEDDING.md, docs/ARCHITECTURE.md).

No ``from __future__ import annotations``: host routes are declared inside test functions.
"""

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, ClassVar

import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import object_session
from sqlmodel import Field, SQLModel

from orgauth import Membership, OrgAuth, User
from tests.support.settings import is_postgres_run, make_settings

from .helpers import API, create_org, running, sign_up


@pytest.fixture
async def host_engine(db: AsyncEngine, database_url: str) -> AsyncIterator[AsyncEngine]:
    """The host's own engine on the test database, created the way any app creates one."""
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


# --- engine and sessionmaker ------------------------------------------------------------


async def test_orgauth_uses_the_host_engine_and_sessionmaker(
    host_engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    host_sessions = async_sessionmaker(host_engine, expire_on_commit=False)
    checkouts: list[int] = []
    event.listen(host_engine.sync_engine, "checkout", lambda *_: checkouts.append(1))
    auth = OrgAuth(
        make_settings(database_url, tmp_path), engine=host_engine, sessionmaker=host_sessions
    )
    app = FastAPI(lifespan=auth.lifespan)
    auth.install(app)

    async with running(app) as client:
        account = await sign_up(client)
        me = await client.get(f"{API}/users/me", headers=account.headers)
        health = await client.get("/health")

    assert me.status_code == 200
    assert health.json()["checks"]["database"]["status"] == "ok"
    assert auth.engine is host_engine
    assert auth.sessionmaker is host_sessions
    assert checkouts, "orgauth never used the host's pool"


async def test_shutdown_does_not_dispose_the_host_engine(
    host_engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    auth = OrgAuth(make_settings(database_url, tmp_path), engine=host_engine)
    app = FastAPI(lifespan=auth.lifespan)
    auth.install(app)
    pool = host_engine.sync_engine.pool

    async with running(app) as client:
        assert (await client.get("/health")).status_code == 200
    # dispose() would have replaced the pool and closed its connections.
    assert host_engine.sync_engine.pool is pool
    assert pool.checkedin() >= 1  # type: ignore[attr-defined]
    assert auth.engine is host_engine
    async with host_engine.connect() as connection:
        assert (await connection.execute(text("SELECT 1"))).scalar() == 1


async def test_shutdown_disposes_an_engine_orgauth_created(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    auth = OrgAuth(make_settings(database_url, tmp_path))
    app = FastAPI(lifespan=auth.lifespan)
    auth.install(app)

    async with running(app) as client:
        assert (await client.get("/health")).status_code == 200
        own = auth.engine
        pool = own.sync_engine.pool

    assert own.sync_engine.pool is not pool  # disposed: a fresh, empty pool


# --- the host's session dependency -------------------------------------------------------


class SessionCounter:
    """The host's session dependency (a plain async generator function, as in most apps),
    counting the sessions it opens."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.opened: list[AsyncSession] = []

        async def get_session() -> AsyncIterator[AsyncSession]:
            async with sessions() as session:
                self.opened.append(session)
                yield session

        self.get_session = get_session


def _host_with_session_dependency(
    auth: OrgAuth, get_session: Callable[[], AsyncIterator[AsyncSession]]
) -> FastAPI:
    app = FastAPI(lifespan=auth.lifespan)
    auth.install(app)

    @app.get("/whoami")
    async def whoami(
        user: Annotated[User, Depends(auth.current_user)],
        db: Annotated[AsyncSession, Depends(get_session)],
    ) -> dict[str, Any]:
        # current_user checks the token with one autocommit query and hands back a
        # detached User: the host can attach it to its own session.
        attached = await db.merge(user, load=False)
        return {"email": attached.email, "detached": object_session(user) is None}

    @app.get("/orgs/{org_id}/report")
    async def report(
        membership: Annotated[Membership, Depends(auth.require_org_role("member"))],
        db: Annotated[AsyncSession, Depends(get_session)],
    ) -> dict[str, Any]:
        members = await db.scalar(
            select(func.count())
            .select_from(Membership)
            .where(Membership.organization_id == membership.organization_id)  # type: ignore[arg-type]
        )
        return {"members": members, "same_session": object_session(membership) is db.sync_session}

    return app


async def test_host_session_dependency_is_shared_within_a_request(
    host_engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    counter = SessionCounter(async_sessionmaker(host_engine, expire_on_commit=False))
    auth = OrgAuth(
        make_settings(database_url, tmp_path),
        engine=host_engine,
        session_dependency=counter.get_session,
    )
    app = _host_with_session_dependency(auth, counter.get_session)

    async with running(app) as client:
        account = await sign_up(client)
        org_id = await create_org(client, account)

        async def get(path: str) -> tuple[Any, int]:
            """The answer to GET ``path`` and how many sessions the request opened."""
            before = len(counter.opened)
            response = await client.get(path, headers=account.headers)
            assert response.status_code == 200, response.text
            return response.json(), len(counter.opened) - before

        whoami, whoami_sessions = await get("/whoami")
        report, report_sessions = await get(f"/orgs/{org_id}/report")
        _, orgauth_route_sessions = await get(f"{API}/organizations/me")

    assert auth.get_db is counter.get_session
    assert whoami == {"email": account.email, "detached": True}
    # The membership the role check loaded lives in the very session the route got.
    assert report == {"members": 1, "same_session": True}
    # One session per request: the host's route, orgauth's check and orgauth's own route
    # all use the host's dependency, and FastAPI resolves it once per request.
    assert (whoami_sessions, report_sessions, orgauth_route_sessions) == (1, 1, 1)


async def test_default_get_db_is_shared_with_require_org_role(
    db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    """Without a host dependency, ``auth.get_db`` is the session orgauth's checks use."""
    auth = OrgAuth(make_settings(database_url, tmp_path))
    app = _host_with_session_dependency(auth, auth.get_db)

    async with running(app) as client:
        account = await sign_up(client)
        org_id = await create_org(client, account)
        report = await client.get(f"/orgs/{org_id}/report", headers=account.headers)

    assert report.json() == {"members": 1, "same_session": True}


# --- host tables with foreign keys to orgauth's ------------------------------------------


@pytest.fixture
def host_model() -> Iterator[type[SQLModel]]:
    """A host table pointing at ``organizations.id`` (ON DELETE CASCADE) and ``users.id``
    (ON DELETE SET NULL), registered in SQLModel's metadata for this test only."""
    table_name = f"host_notes_{uuid.uuid4().hex[:8]}"

    class HostNote(SQLModel, table=True):
        __tablename__: ClassVar[str] = table_name

        id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
        organization_id: uuid.UUID = Field(
            foreign_key="organizations.id", ondelete="CASCADE", index=True
        )
        author_id: uuid.UUID | None = Field(
            default=None, foreign_key="users.id", ondelete="SET NULL"
        )
        body: str = Field(max_length=200)

    try:
        yield HostNote
    finally:
        SQLModel.metadata.remove(HostNote.__table__)  # type: ignore[attr-defined]


async def test_deleting_an_organization_cascades_to_host_rows(
    db: AsyncEngine, host_model: type[SQLModel], database_url: str, tmp_path: Path
) -> None:
    table = host_model.__table__  # type: ignore[attr-defined]
    async with db.begin() as connection:  # the host's own DDL (its migration, in real life)
        await connection.run_sync(table.create)
    try:
        auth = OrgAuth(make_settings(database_url, tmp_path))
        app = FastAPI(lifespan=auth.lifespan)
        auth.install(app)
        async with running(app) as client:
            owner = await sign_up(client)
            doomed = await create_org(client, owner, "Doomed")
            kept = await create_org(client, owner, "Kept")
            async with db.begin() as connection:
                await connection.execute(
                    insert(table),
                    [
                        {
                            "id": uuid.uuid4(),
                            "organization_id": org,
                            "author_id": owner.id,
                            "body": b,
                        }
                        for org, b in ((doomed, "a"), (doomed, "b"), (kept, "c"))
                    ],
                )
            deleted = await client.delete(f"{API}/organizations/{doomed}", headers=owner.headers)

        async with db.connect() as connection:
            rows = (await connection.execute(select(table.c.organization_id, table.c.body))).all()
    finally:
        async with db.begin() as connection:
            await connection.run_sync(table.drop)

    assert deleted.status_code == 204
    assert [(row.organization_id, row.body) for row in rows] == [(kept, "c")]


# --- other async drivers ------------------------------------------------------------------


@pytest.mark.skipif(not is_postgres_run(), reason="psycopg needs PostgreSQL")
async def test_a_host_engine_on_psycopg_serves_every_authenticated_request(
    database_url: str, db: AsyncEngine, tmp_path: Path
) -> None:
    """orgauth's per-request statements go through SQLAlchemy, so any async driver works."""
    url = make_url(database_url).set(drivername="postgresql+psycopg")
    engine = create_async_engine(url)
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        auth = OrgAuth(make_settings(database_url, tmp_path), engine=engine)
        app = FastAPI(lifespan=auth.lifespan)
        auth.install(app)

        @app.get("/whoami")
        async def whoami(user: Annotated[User, Depends(auth.current_user)]) -> dict[str, str]:
            return {"email": user.email}

        async with running(app) as client:
            account = await sign_up(client)
            me = await client.get(f"{API}/users/me", headers=account.headers)
            mine = await client.get("/whoami", headers=account.headers)
            health = await client.get("/health")
            org = await create_org(client, account)
            members = await client.get(
                f"{API}/organizations/{org}/members", headers=account.headers
            )

        assert me.status_code == 200, me.text
        assert me.json()["email"] == account.email
        assert mine.json() == {"email": account.email}
        assert health.status_code == 200
        assert health.json()["checks"]["database"]["status"] == "ok"
        assert members.status_code == 200
        assert any("user_sessions" in s and s.lstrip().startswith("SELECT") for s in statements)
    finally:
        await engine.dispose()
