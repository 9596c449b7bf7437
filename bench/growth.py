"""Growth benchmark (PostgreSQL): do per-request and list costs stay flat as tables grow?

    python bench/growth.py [--postgres-url URL]

Measures p50 latency in-process (ASGI calls, no HTTP noise) of GET /users/me with 1 000 and
1 000 000 session rows, and of GET /admin/users and GET /organizations/{id}/members with
1 000 and 100 000 users / 20 000 members. Rows are generated inside PostgreSQL with
generate_series. Prints the ratios with the budgets (1.2x and 3x).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import subprocess
import time
from typing import Any

import httpx

from orgauth import migrate
from orgauth.app import create_app
from orgauth.db import create_engine
from orgauth.settings import OrgAuthSettings

PASSWORD = "growth-correct-horse-battery-staple"


async def asgi_get(app: Any, path: str, headers: dict[str, str]) -> int:
    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def p50(app: Any, path: str, headers: dict[str, str], n: int = 300) -> float:
    for _ in range(30):
        assert await asgi_get(app, path, headers) == 200, path
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await asgi_get(app, path, headers)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


GROW_SESSIONS = """
INSERT INTO user_sessions (id, user_id, device_type, created_at, last_used_at, expires_at)
SELECT gen_random_uuid(), u.id, 'desktop', now(), now() - (g || ' seconds')::interval,
       now() + interval '30 days'
FROM generate_series(1, :n) g CROSS JOIN (SELECT id FROM users WHERE email = :email) u
"""
GROW_USERS = """
INSERT INTO users (id, email, hashed_password, first_name, last_name, is_active,
                   is_superuser, created_at, updated_at, password_changed_at)
SELECT gen_random_uuid(), 'user' || g || '-' || :tag || '@example.com', 'x', 'First' || g,
       'Last' || g, true, false, now() - (g || ' seconds')::interval, now(), now()
FROM generate_series(1, :n) g
"""
GROW_MEMBERS = """
INSERT INTO organization_members (organization_id, user_id, role, joined_at)
SELECT :org, u.id, 'member', u.created_at FROM users u
WHERE u.email LIKE 'user%-' || :tag || '@example.com' LIMIT :n
"""


async def run(url: str) -> list[tuple[str, float, float, float]]:
    from sqlalchemy import text

    settings = OrgAuthSettings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=url,
        secret_key=secrets.token_urlsafe(48),
        bcrypt_rounds=4,
        rate_limit_enabled=False,
        email_backend="file",
        log_level="WARNING",
        first_superuser_email="root@example.com",
        first_superuser_password=PASSWORD,
    )
    engine = create_engine(settings)
    await migrate.upgrade(engine)
    app = create_app(settings)
    results = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            login = await client.post(
                "/api/v1/auth/login", json={"email": "root@example.com", "password": PASSWORD}
            )
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            org = await client.post(
                "/api/v1/organizations", json={"name": "Growth"}, headers=headers
            )
            org_id = org.json()["id"]

        async def grow(sql: str, **params: Any) -> None:
            async with engine.begin() as connection:
                await connection.execute(text(sql), params)
            # Measure the steady state: autovacuum processes a bulk load like this within a
            # minute (visibility map and hint bits set, statistics fresh).
            async with engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.execute(text("VACUUM ANALYZE"))

        members = f"/api/v1/organizations/{org_id}/members?page=2&limit=20"
        users = "/api/v1/admin/users?page=2&limit=20"
        me = "/api/v1/users/me"

        await grow(GROW_SESSIONS, n=1_000, email="root@example.com")
        await grow(GROW_USERS, n=1_000, tag="small")
        await grow(GROW_MEMBERS, org=org_id, n=1_000, tag="small")
        small = {path: await p50(app, path, headers) for path in (me, users, members)}

        await grow(GROW_SESSIONS, n=999_000, email="root@example.com")
        await grow(GROW_USERS, n=99_000, tag="large")
        await grow(GROW_MEMBERS, org=org_id, n=19_000, tag="large")
        large = {path: await p50(app, path, headers) for path in (me, users, members)}
    await engine.dispose()
    budgets = {me: 1.2, users: 3.0, members: 3.0}
    labels = {
        me: "GET /users/me: 1k vs 1M sessions",
        users: "GET /admin/users page: 1k vs 100k users",
        members: "GET /organizations/{id}/members page: 1k vs 20k members",
    }
    for path in (me, users, members):
        results.append((labels[path], small[path], large[path], budgets[path]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    name = f"orgauth_growth_{secrets.token_hex(4)}"
    subprocess.run(["psql", args.postgres_url, "-qc", f'CREATE DATABASE "{name}"'], check=True)
    try:
        results = asyncio.run(run(args.postgres_url.rsplit("/", 1)[0] + f"/{name}"))
    finally:
        subprocess.run(
            ["psql", args.postgres_url, "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
            check=False,
        )
    print("| scenario | p50 small (ms) | p50 large (ms) | ratio | budget | met |")
    print("|---|---:|---:|---:|---:|:---:|")
    for label, small, large, budget in results:
        ratio = large / small
        met = "yes" if ratio <= budget else "NO"
        print(f"| {label} | {small:.2f} | {large:.2f} | {ratio:.2f}x | <= {budget:.1f}x | {met} |")


if __name__ == "__main__":
    main()
