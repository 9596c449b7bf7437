"""List endpoints on a large dataset: ``python bench/dataset_timings.py [--database-url URL]``.

Builds a dataset in a fresh database (a temporary SQLite file by default; with
``--database-url postgresql://user@host:port/db`` a new database is created on that server
and dropped afterwards), then times each list endpoint in-process (httpx ASGITransport, no
network, one request at a time) and prints p50/p95 latencies as a Markdown table, at a small
size (1 000 users) and a large one (10 000 users, 1 000 organizations, one organization with
5 000 members). ``--explain`` also prints the PostgreSQL ``EXPLAIN (ANALYZE, BUFFERS)`` (or
SQLite ``EXPLAIN QUERY PLAN``) of the exact SQL the app sends for the member page and the
admin user page.

The dataset is inserted with Core ``insert()`` executemany and one bcrypt hash reused for
every user; ``tests/perf/test_dataset.py`` imports :func:`build_dataset` from here so the
test and the benchmark measure the same data.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

SURNAMES = ("Smith", "Jones", "Garcia", "Müller", "O'Neil", "Nguyen", "Kowalski", "Rossi")
#: Every 100th user (index 7, 107, ...) is findable by this first name.
NEEDLE = "Needle"
PASSWORD = "Quartz-lantern-Orbit-71"
CHUNK = 2_000


@dataclass(frozen=True)
class Size:
    name: str
    users: int
    organizations: int
    big_members: int


SMALL = Size("small", users=1_000, organizations=100, big_members=500)
LARGE = Size("large", users=10_000, organizations=1_000, big_members=5_000)


@dataclass(frozen=True)
class Dataset:
    """What :func:`build_dataset` made. User ``i`` has the email :meth:`email` ``(i)``."""

    size: Size
    superuser_email: str
    owner_email: str
    big_org_id: uuid.UUID
    small_org_id: uuid.UUID
    big_admins: int
    big_needles: int
    needles: int

    @staticmethod
    def email(index: int) -> str:
        return f"user-{index:05d}@dataset.example.com"


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]


async def build_dataset(engine: Any, size: Size, *, password_hash: str) -> Dataset:
    """Insert ``size`` worth of users, organizations, memberships and sessions.

    * users ``0..n-1``, created one second apart, newest first (user 0 is the newest and a
      superuser); user ``i`` is named ``First{i} <surname>``, or ``Needle`` when
      ``i % 100 == 7``;
    * organization 0 is the big one: users ``1..big_members`` joined it in that order; user 1
      is its owner, users with ``i % 100 == 50`` are admins, the rest members;
    * organizations ``1..`` each have an owner, an admin and a member;
    * every user has one active session.
    """
    from sqlalchemy import insert

    from orgauth.models import Membership, Organization, User, UserSession, utcnow

    now = utcnow()
    base = now - timedelta(hours=1)
    user_ids = [uuid.uuid4() for _ in range(size.users)]
    users = [
        {
            "id": user_ids[i],
            "email": Dataset.email(i),
            "hashed_password": password_hash,
            "first_name": NEEDLE if i % 100 == 7 else f"First{i}",
            "last_name": SURNAMES[i % len(SURNAMES)],
            "is_active": i % 50 != 49,
            "is_superuser": i == 0,
            "created_at": base - timedelta(seconds=i),
            "updated_at": base,
            "password_changed_at": base,
        }
        for i in range(size.users)
    ]
    org_ids = [uuid.uuid4() for _ in range(size.organizations)]
    organizations = [
        {
            "id": org_ids[i],
            "name": "Big Organization" if i == 0 else f"Organization {i:04d}",
            "slug": "big" if i == 0 else f"org-{i:04d}",
            "description": None,
            "created_at": base - timedelta(seconds=i),
            "updated_at": base,
        }
        for i in range(size.organizations)
    ]
    memberships = [
        {
            "organization_id": org_ids[0],
            "user_id": user_ids[i],
            "role": "owner" if i == 1 else ("admin" if i % 100 == 50 else "member"),
            "joined_at": base + timedelta(seconds=i),
        }
        for i in range(1, size.big_members + 1)
    ]
    for j in range(1, size.organizations):
        first = (j * 7) % (size.users - 3) + 1
        for offset, role in enumerate(("owner", "admin", "member")):
            memberships.append(
                {
                    "organization_id": org_ids[j],
                    "user_id": user_ids[first + offset],
                    "role": role,
                    "joined_at": base + timedelta(seconds=offset),
                }
            )
    sessions = [
        {
            "id": uuid.uuid4(),
            "user_id": user_ids[i],
            "device_name": "Chrome on Windows",
            "device_type": "desktop",
            "browser": "Chrome",
            "os": "Windows",
            "ip_address": "198.51.100.7",
            "created_at": base,
            "last_used_at": base + timedelta(seconds=i),
            "expires_at": now + timedelta(days=7),
        }
        for i in range(size.users)
    ]
    async with engine.begin() as connection:
        for model, rows in (
            (User, users),
            (Organization, organizations),
            (Membership, memberships),
            (UserSession, sessions),
        ):
            for chunk in _chunks(rows):
                await connection.execute(insert(model), chunk)
    big_range = range(1, size.big_members + 1)
    return Dataset(
        size=size,
        superuser_email=Dataset.email(0),
        owner_email=Dataset.email(1),
        big_org_id=org_ids[0],
        small_org_id=org_ids[1],
        big_admins=sum(1 for i in big_range if i % 100 == 50),
        big_needles=sum(1 for i in big_range if i % 100 == 7),
        needles=sum(1 for i in range(size.users) if i % 100 == 7),
    )


# --- the benchmark -------------------------------------------------------------------


def endpoints(data: Dataset) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(label, who, path, params): ``who`` is "root" (superuser) or "owner"."""
    members = f"/api/v1/organizations/{data.big_org_id}/members"
    last_members_page = max(1, -(-data.size.big_members // 20))
    return [
        ("GET /users/me (auth only)", "owner", "/api/v1/users/me", {}),
        ("GET /admin/users", "root", "/api/v1/admin/users", {}),
        (
            "GET /admin/users page 250, limit 40",
            "root",
            "/api/v1/admin/users",
            {"page": 250, "limit": 40},
        ),
        ("GET /admin/users ?search=needle", "root", "/api/v1/admin/users", {"search": "needle"}),
        (
            "GET /admin/users ?sort_by=last_name&sort_order=asc",
            "root",
            "/api/v1/admin/users",
            {"sort_by": "last_name", "sort_order": "asc"},
        ),
        ("GET /admin/organizations", "root", "/api/v1/admin/organizations", {}),
        (
            "GET /admin/organizations ?search=0042",
            "root",
            "/api/v1/admin/organizations",
            {"search": "0042"},
        ),
        ("GET /admin/sessions", "root", "/api/v1/admin/sessions", {}),
        ("GET /organizations/{big}/members", "owner", members, {}),
        (
            "GET /organizations/{big}/members last page",
            "owner",
            members,
            {"page": last_members_page},
        ),
        ("GET /organizations/{big}/members ?search=needle", "owner", members, {"search": "needle"}),
        ("GET /organizations/{big}/members ?role=admin", "owner", members, {"role": "admin"}),
        ("GET /organizations/me", "owner", "/api/v1/organizations/me", {}),
    ]


async def _fresh_database(server_url: str | None, workdir: Path) -> tuple[str, Any]:
    """(async URL of a new empty database, cleanup coroutine function)."""
    from sqlalchemy.engine import make_url

    from orgauth.settings import normalize_database_url

    if not server_url:
        path = workdir / f"bench-{uuid.uuid4().hex[:8]}.db"
        return f"sqlite+aiosqlite:///{path}", None
    import asyncpg

    url = make_url(normalize_database_url(server_url))
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"orgauth_bench_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    fresh = url.set(drivername="postgresql+asyncpg", database=name)
    return fresh.render_as_string(hide_password=False), drop


@contextmanager
def capture_sql(sync_engine: Any) -> Iterator[list[tuple[str, Any]]]:
    """Collect (statement, parameters) of everything ``sync_engine`` sends."""
    from sqlalchemy import event

    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(sync_engine, "before_cursor_execute", record)


async def explain(
    app: Any, client: Any, headers: dict[str, str], path: str, params: dict[str, Any], marker: str
) -> str:
    """The plan of the statement containing ``marker`` that the app sends for one request."""
    engine = app.state.orgauth.engine
    with capture_sql(engine.sync_engine) as seen:
        response = await client.get(path, params=params, headers=headers)
        response.raise_for_status()
    statement, parameters = next(
        (s, p) for s, p in seen if marker in s and "count(" not in s.lower()
    )
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            result = await connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters
            )
            lines = [row[0] for row in result]
        else:
            result = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            lines = [" | ".join(str(c) for c in row) for row in result]
    return "\n".join([statement.strip(), "", *lines])


async def run_size(
    size: Size,
    server_url: str | None,
    workdir: Path,
    requests: int,
    want_plans: bool,
    extra_sql: list[str] | None = None,
) -> tuple[dict[str, tuple[float, float]], dict[str, str], float]:
    import httpx

    from orgauth import migrate
    from orgauth.app import create_app
    from orgauth.db import create_engine
    from orgauth.security.passwords import hash_password_sync
    from orgauth.settings import OrgAuthSettings

    url, drop = await _fresh_database(server_url, workdir)
    try:
        settings = OrgAuthSettings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=url,
            secret_key=secrets.token_urlsafe(48),
            bcrypt_rounds=4,
            rate_limit_enabled=False,
            email_backend="file",
            email_file_dir=str(workdir / "emails"),
            log_level="WARNING",
        )
        engine = create_engine(settings)
        await migrate.upgrade(engine)
        started = time.perf_counter()
        data = await build_dataset(engine, size, password_hash=hash_password_sync(PASSWORD, 4))
        async with engine.begin() as connection:
            for statement in extra_sql or []:  # e.g. a candidate index, tried before migrating
                await connection.exec_driver_sql(statement)
        if engine.dialect.name == "postgresql":
            async with engine.begin() as connection:  # statistics are transactional too
                await connection.exec_driver_sql("ANALYZE")
        build_seconds = time.perf_counter() - started
        await engine.dispose()

        app = create_app(settings)
        timings: dict[str, tuple[float, float]] = {}
        plans: dict[str, str] = {}
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                tokens = {}
                for who, email in (("root", data.superuser_email), ("owner", data.owner_email)):
                    response = await client.post(
                        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
                    )
                    response.raise_for_status()
                    tokens[who] = {"Authorization": f"Bearer {response.json()['access_token']}"}
                for label, who, path, params in endpoints(data):
                    for _ in range(5):
                        (
                            await client.get(path, params=params, headers=tokens[who])
                        ).raise_for_status()
                    samples = []
                    for _ in range(requests):
                        start = time.perf_counter()
                        response = await client.get(path, params=params, headers=tokens[who])
                        samples.append((time.perf_counter() - start) * 1000)
                        response.raise_for_status()
                    cuts = statistics.quantiles(samples, n=100, method="inclusive")
                    timings[label] = (statistics.median(samples), cuts[94])
                if want_plans:
                    members = f"/api/v1/organizations/{data.big_org_id}/members"
                    plans["members page"] = await explain(
                        app,
                        client,
                        tokens["owner"],
                        members,
                        {},
                        "ORDER BY organization_members.joined_at",
                    )
                    plans["members page of a 3-member organization"] = await explain(
                        app,
                        client,
                        tokens["root"],
                        f"/api/v1/organizations/{data.small_org_id}/members",
                        {},
                        "ORDER BY organization_members.joined_at",
                    )
                    plans["admin users page"] = await explain(
                        app,
                        client,
                        tokens["root"],
                        "/api/v1/admin/users",
                        {"page": 250, "limit": 40},
                        "ORDER BY users.created_at",
                    )
                    plans["admin sessions page"] = await explain(
                        app,
                        client,
                        tokens["root"],
                        "/api/v1/admin/sessions",
                        {},
                        "ORDER BY user_sessions.last_used_at",
                    )
        return timings, plans, build_seconds
    finally:
        if drop is not None:
            await drop()


async def main_async(args: argparse.Namespace) -> None:
    sizes = [SMALL, LARGE]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        results = {}
        plans: dict[str, str] = {}
        for size in sizes:
            timings, size_plans, build = await run_size(
                size,
                args.database_url,
                workdir,
                args.requests,
                args.explain and size is LARGE,
                args.extra_sql,
            )
            results[size.name] = timings
            plans.update(size_plans)
            print(f"# built {size.name} dataset in {build:.1f} s", file=sys.stderr)
    database = "PostgreSQL" if args.database_url else "SQLite"
    print(f"### {database} — {args.requests} sequential requests per endpoint, in-process")
    print()
    print(f"Python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}.")
    print()
    print("| endpoint | small p50 | small p95 | large p50 | large p95 |")
    print("|---|---:|---:|---:|---:|")
    for label in results["small"]:
        small, large = results["small"][label], results["large"][label]
        print(
            f"| {label} | {small[0]:.1f} ms | {small[1]:.1f} ms "
            f"| {large[0]:.1f} ms | {large[1]:.1f} ms |"
        )
    for name, plan in plans.items():
        print()
        print(f"#### Plan: {name} ({database}, large dataset)")
        print()
        print("```")
        print(plan)
        print("```")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        help="PostgreSQL server to create a scratch database on (default: a temporary SQLite file)",
    )
    parser.add_argument("--requests", type=int, default=50, help="timed requests per endpoint")
    parser.add_argument("--explain", action="store_true", help="print query plans too")
    parser.add_argument(
        "--extra-sql",
        action="append",
        metavar="SQL",
        help="run this statement after loading the data (repeatable), e.g. a candidate index",
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
