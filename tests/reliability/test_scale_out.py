"""Two ``orgauth serve`` processes on one PostgreSQL database and one Redis.

Whatever one process does must hold on the other at once: revocations, role changes and
removals, the last-owner rule under concurrent requests, combined rate limits, and
periodic pruning that runs once (not once per process). Also ``--workers 2``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from orgauth.models import Membership, OrgRole, UserSession
from tests.support.servers import (
    API,
    Server,
    ServerFactory,
    bearer,
    forwarded,
    login,
    me_status,
    next_ip,
    register,
    server_environment,
    unique_email,
    wait_for,
)
from tests.support.services import SHARED_REDIS_PORT, shared_redis_available
from tests.support.settings import is_postgres_run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not is_postgres_run(),
        reason="two server processes need a shared PostgreSQL: set ORGAUTH_TEST_DATABASE_URL",
    ),
    pytest.mark.skipif(
        not shared_redis_available(),
        reason=f"needs Redis on 127.0.0.1:{SHARED_REDIS_PORT} for shared rate limits",
    ),
]

REDIS_URL = f"redis://127.0.0.1:{SHARED_REDIS_PORT}/14"
LOGIN_LIMIT = 4
OWNER_RACE_ROUNDS = 10
EXPIRED_SESSIONS = 7
REVOKED_SESSIONS = 5
PRUNE_TIMEOUT_SECONDS = 15.0


def pair_environment(database_url: str, **overrides: str) -> dict[str, str]:
    return server_environment(
        database_url=database_url,
        rate_limit_enabled="true",
        rate_limit_storage_uri=REDIS_URL,
        rate_limit_login=f"{LOGIN_LIMIT}/minute",
        rate_limit_register="1000/minute",
        # Tests give each flow its own client address, so limits do not leak between them.
        forwarded_allow_ips="127.0.0.1",
        **overrides,
    )


@pytest.fixture(scope="module")
def pair(
    migrated_engine: AsyncEngine, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Server]]:
    """Servers A and B on the (migrated) test database, sharing Redis database 14."""
    import redis

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        # Under xdist another worker's pair may be using database 14 at this moment. Every
        # test uses its own client addresses and emails, so old counters never matter.
        redis.Redis.from_url(REDIS_URL).flushdb()
    factory = ServerFactory(tmp_path_factory.mktemp("scale-out"))
    try:
        first, second = factory.start(pair_environment(database_url), count=2)
        yield first, second
    finally:
        factory.stop_all()


@pytest.fixture
async def clients(
    pair: tuple[Server, Server],
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    first, second = pair
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=30.0) as a,
        httpx.AsyncClient(base_url=second.url, timeout=30.0) as b,
    ):
        yield a, b


async def new_user(client: httpx.AsyncClient, prefix: str) -> tuple[str, str]:
    """Register a user; (id, email)."""
    email = unique_email(prefix)
    user = await register(client, email)
    return str(user["id"]), email


# --- (a) revocation ---------------------------------------------------------------------


async def test_logout_on_one_process_revokes_on_the_other_at_once(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = clients
    _, email = await new_user(a, "logout")
    tokens = await login(a, email, ip=next_ip())
    access = tokens["access_token"]
    assert await me_status(b, access) == 200

    assert (await a.post(f"{API}/auth/logout", headers=bearer(access))).status_code == 204
    assert await me_status(b, access) == 401
    refreshed = await b.post(f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401


async def test_logout_all_on_one_process_revokes_every_session_on_the_other(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = clients
    _, email = await new_user(a, "logout-all")
    on_a = await login(a, email, ip=next_ip())
    on_b = await login(b, email, ip=next_ip())
    assert await me_status(b, on_a["access_token"]) == 200
    assert await me_status(a, on_b["access_token"]) == 200

    revoked = await a.post(f"{API}/auth/logout-all", headers=bearer(on_a["access_token"]))
    assert revoked.status_code == 200
    assert revoked.json() == {"revoked": 2}
    assert await me_status(b, on_a["access_token"]) == 401
    assert await me_status(b, on_b["access_token"]) == 401
    for session in (on_a, on_b):
        refreshed = await b.post(
            f"{API}/auth/refresh", json={"refresh_token": session["refresh_token"]}
        )
        assert refreshed.status_code == 401


async def test_deleting_a_session_on_one_process_revokes_it_on_the_other(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = clients
    _, email = await new_user(a, "delete-session")
    keeper = await login(a, email, ip=next_ip())
    victim = await login(b, email, ip=next_ip())

    listed = await a.get(f"{API}/sessions/me", headers=bearer(keeper["access_token"]))
    assert listed.status_code == 200
    others = [s["id"] for s in listed.json()["sessions"] if not s["is_current"]]
    assert len(others) == 1
    deleted = await a.delete(f"{API}/sessions/{others[0]}", headers=bearer(keeper["access_token"]))
    assert deleted.status_code == 204

    assert await me_status(b, victim["access_token"]) == 401
    refreshed = await b.post(f"{API}/auth/refresh", json={"refresh_token": victim["refresh_token"]})
    assert refreshed.status_code == 401
    assert await me_status(b, keeper["access_token"]) == 200


# --- (b) last owner under concurrent requests on two processes ----------------------------


async def test_owners_demoting_each_other_on_two_processes_keep_one_owner(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], db: AsyncEngine
) -> None:
    a, b = clients
    x_id, x_email = await new_user(a, "owner-x")
    y_id, y_email = await new_user(b, "owner-y")
    x = bearer((await login(a, x_email, ip=next_ip()))["access_token"])
    y = bearer((await login(b, y_email, ip=next_ip()))["access_token"])

    org_ids: list[str] = []
    outcomes: list[tuple[int, int]] = []
    for round_number in range(OWNER_RACE_ROUNDS):
        created = await a.post(
            f"{API}/organizations", json={"name": f"Owners {uuid.uuid4().hex[:8]}"}, headers=x
        )
        assert created.status_code == 201, created.text
        org = created.json()["id"]
        org_ids.append(org)
        added = await a.post(
            f"{API}/organizations/{org}/members",
            json={"email": y_email, "role": "owner"},
            headers=x,
        )
        assert added.status_code == 201, added.text

        on_a = a.patch(
            f"{API}/organizations/{org}/members/{y_id}", json={"role": "admin"}, headers=x
        )
        on_b = b.patch(
            f"{API}/organizations/{org}/members/{x_id}", json={"role": "admin"}, headers=y
        )
        # Both requests go out back to back; alternate which one is sent first.
        if round_number % 2:
            y_demotes_x, x_demotes_y = await asyncio.gather(on_b, on_a)
        else:
            x_demotes_y, y_demotes_x = await asyncio.gather(on_a, on_b)
        pair_of_codes = (x_demotes_y.status_code, y_demotes_x.status_code)
        outcomes.append(pair_of_codes)
        # Exactly one demotion wins; the other is refused (the loser is no longer an owner,
        # 403, or would be demoting the last owner, 409) and never a server error.
        assert sorted(pair_of_codes) in ([200, 403], [200, 409]), pair_of_codes

        owners = await a.get(
            f"{API}/organizations/{org}/members", params={"role": "owner"}, headers=x
        )
        assert owners.status_code == 200
        assert owners.json()["pagination"]["total"] == 1

    async with db.connect() as connection:
        result = await connection.execute(
            select(col(Membership.organization_id), func.count())
            .where(col(Membership.role) == OrgRole.OWNER)
            .where(col(Membership.organization_id).in_([uuid.UUID(o) for o in org_ids]))
            .group_by(col(Membership.organization_id))
        )
        counts = dict(result.all())
    assert sorted(str(org) for org in counts) == sorted(org_ids)
    assert set(counts.values()) == {1}
    wins_on_a = sum(1 for codes in outcomes if codes[0] == 200)
    print(f"\nmutual demotion: A won {wins_on_a}, B won {len(outcomes) - wins_on_a}; {outcomes}")


# --- (c) membership changes take effect on the other process at once --------------------------


async def test_role_change_and_removal_on_one_process_apply_on_the_other(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = clients
    _, owner_email = await new_user(a, "org-owner")
    member_id, member_email = await new_user(b, "org-member")
    owner = bearer((await login(a, owner_email, ip=next_ip()))["access_token"])
    member = bearer((await login(b, member_email, ip=next_ip()))["access_token"])

    created = await a.post(f"{API}/organizations", json={"name": "Shared org"}, headers=owner)
    assert created.status_code == 201
    org = created.json()["id"]
    members_url = f"{API}/organizations/{org}/members"
    added = await a.post(members_url, json={"email": member_email, "role": "member"}, headers=owner)
    assert added.status_code == 201
    assert (await b.get(f"{API}/organizations/{org}", headers=member)).status_code == 200

    promoted = await a.patch(f"{members_url}/{member_id}", json={"role": "admin"}, headers=owner)
    assert promoted.status_code == 200
    edit = {"description": "edited on B"}
    assert (
        await b.patch(f"{API}/organizations/{org}", json=edit, headers=member)
    ).status_code == 200

    demoted = await a.patch(f"{members_url}/{member_id}", json={"role": "member"}, headers=owner)
    assert demoted.status_code == 200
    refused = await b.patch(f"{API}/organizations/{org}", json=edit, headers=member)
    assert refused.status_code == 403
    assert refused.json()["detail"]["code"] == "INSUFFICIENT_ROLE"

    removed = await a.delete(f"{members_url}/{member_id}", headers=owner)
    assert removed.status_code == 204
    assert (await b.get(f"{API}/organizations/{org}", headers=member)).status_code == 404
    assert (await b.get(members_url, headers=member)).status_code == 404
    mine = await b.get(f"{API}/organizations/me", headers=member)
    assert org not in {o["id"] for o in mine.json()}


# --- (d) rate limits are combined across processes ------------------------------------------


async def test_login_limit_is_shared_by_both_processes(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = clients
    # Per client IP: one address, unknown emails, alternating between the processes.
    ip = next_ip()
    codes = []
    for i in range(LOGIN_LIMIT + 2):
        response = await (a if i % 2 == 0 else b).post(
            f"{API}/auth/login",
            json={"email": unique_email("nobody"), "password": "not-the-password-1"},
            headers=forwarded(ip),
        )
        codes.append(response.status_code)
    assert codes == [401] * LOGIN_LIMIT + [429, 429]
    assert int(response.headers["retry-after"]) > 0

    # Per account: one email, a new address every time.
    email = unique_email("target")
    codes = []
    for i in range(LOGIN_LIMIT + 2):
        response = await (b if i % 2 == 0 else a).post(
            f"{API}/auth/login",
            json={"email": email, "password": "not-the-password-1"},
            headers=forwarded(next_ip()),
        )
        codes.append(response.status_code)
    assert codes == [401] * LOGIN_LIMIT + [429, 429]


# --- (e) periodic pruning runs once ------------------------------------------------------------


def prune_events(log: str) -> list[dict[str, Any]]:
    events = []
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("logger") == "orgauth" and record.get("event") == "pruned expired sessions":
            events.append(record)
    return events


async def test_periodic_pruning_on_two_processes_deletes_each_session_once(
    db: AsyncEngine, database_url: str, server_factory: ServerFactory
) -> None:
    env = pair_environment(
        database_url, session_prune_interval_seconds="1", log_format="json", log_level="INFO"
    )
    first, second = server_factory.start(env, count=2)
    async with httpx.AsyncClient(base_url=first.url, timeout=30.0) as a:
        user_id, email = await new_user(a, "prune")
        live = await login(a, email, ip=next_ip())

        now = datetime.now(UTC)
        expired = [
            {
                "id": uuid.uuid4(),
                "user_id": uuid.UUID(user_id),
                "created_at": now - timedelta(days=2),
                "last_used_at": now - timedelta(days=1),
                "expires_at": now - timedelta(hours=1),
            }
            for _ in range(EXPIRED_SESSIONS)
        ]
        revoked = [
            {
                "id": uuid.uuid4(),
                "user_id": uuid.UUID(user_id),
                "created_at": now - timedelta(hours=2),
                "last_used_at": now - timedelta(hours=1),
                "expires_at": now + timedelta(days=1),
                "revoked_at": now - timedelta(minutes=5),
                "revoked_reason": "logout",
            }
            for _ in range(REVOKED_SESSIONS)
        ]
        inserted = [row["id"] for row in expired + revoked]
        async with db.begin() as connection:
            await connection.execute(insert(UserSession), expired)
            await connection.execute(insert(UserSession), revoked)

        async def remaining() -> int:
            async with db.connect() as connection:
                count = await connection.scalar(
                    select(func.count()).where(col(UserSession.id).in_(inserted))
                )
            return int(count or 0)

        async def all_gone() -> bool:
            return await remaining() == 0

        gone_after = await wait_for(all_gone, PRUNE_TIMEOUT_SECONDS)
        assert gone_after is not None, "the expired and revoked sessions were not pruned"

        # Wait for the log line of that prune, then two more prune periods: a second
        # deletion of the same rows (double counting) would show up by then.
        def reported() -> list[int]:
            return [
                int(event["sessions"])
                for server in (first, second)
                for event in prune_events(server.log())
                if event["sessions"]
            ]

        async def logged() -> bool:
            return sum(reported()) >= len(inserted)

        await wait_for(logged, 5.0)
        await asyncio.sleep(2.5)

        # The live session was never touched.
        assert await me_status(a, live["access_token"]) == 200

    total_lines = [len(prune_events(server.log())) for server in (first, second)]
    assert reported() == [len(inserted)], (reported(), total_lines)
    for server in (first, second):
        log = server.log()
        assert "session pruning failed" not in log, server.errors()
        assert '"level": "ERROR"' not in log, server.errors()
        assert "Traceback" not in log, server.errors()
    print(
        f"\npruning: {len(inserted)} sessions gone {gone_after:.1f} s after the insert, "
        f"reported once as sessions={reported()}; prune log lines per process {total_lines}"
    )


# --- (f) --workers 2 ----------------------------------------------------------------------------


async def test_serve_with_two_workers_on_postgresql(
    db: AsyncEngine, database_url: str, server_factory: ServerFactory
) -> None:
    env = pair_environment(database_url)
    (server,) = server_factory.start(env, args=["--workers", "2"])

    pids: set[str] = set()
    deadline = time.monotonic() + 60
    while len(pids) < 2 and time.monotonic() < deadline:
        pids = set(re.findall(r"Started server process \[(\d+)\]", server.log()))
        await asyncio.sleep(0.2)
    assert len(pids) == 2, server.log()

    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "healthy"
        _, email = await new_user(client, "workers")
        # Several requests, so both workers are likely to serve some.
        for _ in range(3):
            tokens = await login(client, email, ip=next_ip())
            assert await me_status(client, tokens["access_token"]) == 200

    assert server.stop() == 0, server.log()[-3000:]
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)
