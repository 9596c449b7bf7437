"""The stored audit log (docs/API.md, "Audit log"): one row per event, written in the
change's transaction and logged once committed; the organization and admin routes with
their filters and keyset cursor."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from orgauth.events import ANONYMOUS, EventActor, clean_metadata, record
from orgauth.models import AuditEvent, utcnow
from orgauth.services.context import ClientInfo
from tests.support.http import API
from tests.support.orgs import (
    Account,
    Factory,
    RoledOrg,
    assert_error,
    assert_validation_error,
    unique_email,
)

EVENT_KEYS = {
    "id",
    "occurred_at",
    "action",
    "organization_id",
    "actor",
    "impersonator_id",
    "targets",
    "context",
    "metadata",
}


async def rows(engine: AsyncEngine, action: str | None = None) -> list[AuditEvent]:
    async with AsyncSession(engine) as session:
        query = select(AuditEvent).order_by(AuditEvent.occurred_at, AuditEvent.id)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        return list((await session.execute(query)).scalars().all())


def audit_url(org_id: uuid.UUID | str) -> str:
    return f"{API}/organizations/{org_id}/audit-logs"


# --- storage -----------------------------------------------------------------------------


async def test_a_membership_change_writes_one_row_with_actor_target_and_context(
    client: httpx.AsyncClient, roled_org: RoledOrg, factory: Factory, db: AsyncEngine
) -> None:
    newcomer = await factory.account()

    response = await client.post(
        f"{roled_org.url}/members",
        json={"user_id": str(newcomer.id), "role": "member"},
        headers={**roled_org.admin.headers, "User-Agent": "audit-test/1.0"},
    )

    assert response.status_code == 201, response.text
    [row] = await rows(db, "member.added")
    assert row.organization_id == roled_org.id
    assert (row.actor_type, row.actor_id) == ("user", roled_org.admin.id)
    assert row.targets == [{"type": "user", "id": str(newcomer.id)}]
    assert row.event_metadata == {"role": "member", "source": "direct"}
    assert row.ip_address == "203.0.113.10"
    assert row.user_agent == "audit-test/1.0"


async def test_a_refused_change_leaves_no_row(
    client: httpx.AsyncClient, roled_org: RoledOrg, db: AsyncEngine
) -> None:
    taken = await client.post(
        f"{API}/organizations",
        json={"name": "Twin", "slug": roled_org.slug},
        headers=roled_org.owner.headers,
    )
    last_owner = await client.patch(
        roled_org.member_url(roled_org.owner.id),
        json={"role": "admin"},
        headers=roled_org.owner.headers,
    )

    assert_error(taken, 409, "SLUG_TAKEN")
    assert_error(last_owner, 409, "LAST_OWNER")
    assert [row.action for row in await rows(db)].count("organization.created") == 1
    assert await rows(db, "member.role_changed") == []


async def test_a_rolled_back_event_is_neither_stored_nor_logged(
    db: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="orgauth.audit")
    async with AsyncSession(db, expire_on_commit=False) as session:
        record(session, "test.rolled_back", actor=ANONYMOUS)
        await session.rollback()
        record(session, "test.committed", actor=EventActor.user(uuid.uuid4()), note="kept")
        assert not [r for r in caplog.records if r.name == "orgauth.audit"]  # not yet
        await session.commit()

    assert [row.action for row in await rows(db)] == ["test.committed"]
    logged = [r for r in caplog.records if r.name == "orgauth.audit"]
    assert [r.getMessage() for r in logged] == ["test.committed"]
    assert logged[0].__dict__["note"] == "kept"


async def test_events_outlive_their_organization(
    client: httpx.AsyncClient, roled_org: RoledOrg, db: AsyncEngine
) -> None:
    deleted = await client.delete(roled_org.url, headers=roled_org.owner.headers)

    assert deleted.status_code == 204
    [row] = await rows(db, "organization.deleted")
    assert row.organization_id == roled_org.id
    assert {r.action for r in await rows(db)} >= {"organization.created", "organization.deleted"}


async def test_a_failed_sign_in_stores_neither_the_typed_email_nor_the_password(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    typed = unique_email("typo")
    secret = "Not-The-Password-93"

    response = await client.post(f"{API}/auth/login", json={"email": typed, "password": secret})

    assert response.status_code == 401
    [row] = await rows(db, "login.failure")
    assert (row.actor_type, row.actor_id, row.targets) == ("anonymous", None, [])
    assert row.event_metadata == {"reason": "unknown_email"}
    cells = " ".join(str(value) for value in row.model_dump().values())
    assert typed not in cells
    assert secret not in cells


def test_metadata_is_bounded_and_refuses_secret_names() -> None:
    cleaned = clean_metadata(
        {"long": "x" * 600, "many": [str(i) for i in range(150)], "at": uuid.UUID(int=1)}
    )

    assert cleaned["long"] == "x" * 500
    assert len(cleaned["many"]) == 100
    assert cleaned["at"] == str(uuid.UUID(int=1))
    for name in ("password", "token", "secret", "code", "token_hash", "api_key"):
        with pytest.raises(ValueError, match="secrets"):
            clean_metadata({name: "x"})
    with pytest.raises(ValueError, match="50 keys"):
        clean_metadata({f"k{i}": i for i in range(51)})


# --- the organization route ----------------------------------------------------------------


async def test_the_organization_log_needs_audit_logs_read_and_shows_only_its_events(
    client: httpx.AsyncClient, roled_org: RoledOrg, factory: Factory
) -> None:
    other = await factory.organization(roled_org.outsider)
    await client.patch(roled_org.url, json={"name": "Renamed"}, headers=roled_org.owner.headers)

    listed = await client.get(audit_url(roled_org.id), headers=roled_org.admin.headers)

    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert set(body) == {"data", "next_cursor"}
    assert body["next_cursor"] is None
    assert [event["action"] for event in body["data"]] == [
        "organization.updated",
        "organization.created",
    ]
    event = body["data"][0]
    assert set(event) == EVENT_KEYS
    assert event["actor"] == {"type": "user", "id": str(roled_org.owner.id)}
    assert event["targets"] == [{"type": "organization", "id": str(roled_org.id)}]
    assert event["metadata"] == {"fields": ["name"]}
    assert set(event["context"]) == {"ip", "user_agent"}
    assert other["id"] not in listed.text
    assert_error(
        await client.get(audit_url(roled_org.id), headers=roled_org.member.headers),
        403,
        "INSUFFICIENT_ROLE",
    )
    assert_error(
        await client.get(audit_url(other["id"]), headers=roled_org.owner.headers),
        404,
        "ORGANIZATION_NOT_FOUND",
    )


async def _seed_events(db: AsyncEngine, org_id: uuid.UUID, count: int, **fields: Any) -> None:
    """``count`` events in the organization, one second apart, oldest first; two of them
    share each timestamp so the id breaks ties."""
    start = utcnow() - timedelta(hours=1)
    async with AsyncSession(db) as session:
        for index in range(count):
            row = record(
                session,
                fields.get("action", "test.seeded"),
                actor=fields.get("actor", ANONYMOUS),
                organization_id=org_id,
                index=index,
            )
            row.occurred_at = start + timedelta(seconds=index // 2)
        await session.commit()


async def _walk(
    client: httpx.AsyncClient, url: str, by: Account, **params: Any
) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(url, params=query, headers=by.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        seen.extend(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


async def test_the_cursor_neither_skips_nor_repeats_while_events_arrive(
    client: httpx.AsyncClient, roled_org: RoledOrg, db: AsyncEngine
) -> None:
    await _seed_events(db, roled_org.id, 25)
    url = audit_url(roled_org.id)
    first = (await client.get(url, params={"limit": 10}, headers=roled_org.owner.headers)).json()
    # Newer events arrive between pages: they sort before the cursor and never shift it.
    await client.patch(roled_org.url, json={"name": "Busy"}, headers=roled_org.owner.headers)
    rest = await _walk(client, url, roled_org.owner, limit=10, cursor=first["next_cursor"])

    seeded = [e for e in first["data"] + rest if e["action"] == "test.seeded"]
    indexes = [event["metadata"]["index"] for event in seeded]
    # Newest first; two events share each second and their ids order them.
    assert [i // 2 for i in indexes] == sorted((i // 2 for i in indexes), reverse=True)
    assert sorted(indexes) == list(range(25))
    ids = [event["id"] for event in first["data"] + rest]
    assert len(ids) == len(set(ids))
    occurred = [(e["occurred_at"], e["id"]) for e in first["data"] + rest]
    assert occurred == sorted(occurred, reverse=True)


async def test_filters_by_action_actor_and_time(
    client: httpx.AsyncClient, roled_org: RoledOrg, db: AsyncEngine
) -> None:
    actor = EventActor.user(roled_org.admin.id)
    await _seed_events(db, roled_org.id, 6, action="test.by_admin", actor=actor)
    await _seed_events(db, roled_org.id, 4, action="test.other")
    url = audit_url(roled_org.id)

    by_action = await _walk(client, url, roled_org.owner, action=["test.other", "test.by_admin"])
    by_actor = await _walk(client, url, roled_org.owner, actor_id=str(roled_org.admin.id))
    everything = await _walk(client, url, roled_org.owner, action="test.by_admin")
    middle = everything[2]["occurred_at"]
    since = await _walk(client, url, roled_org.owner, action="test.by_admin", since=middle)
    until = await _walk(client, url, roled_org.owner, action="test.by_admin", until=middle)

    assert len(by_action) == 10
    assert {e["action"] for e in by_actor} == {"test.by_admin"}
    assert all(e["occurred_at"] >= middle for e in since)
    assert all(e["occurred_at"] < middle for e in until)
    assert len(since) + len(until) == 6


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor"},
        {"cursor": "W10"},  # valid base64 of []
        {"cursor": "WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiw1XQ"},  # [time, 5]: id not a string
        {"cursor": "WzEsMl0"},  # [1, 2]
        {"since": "2026-01-01T00:00:00"},  # no offset
        {"until": "yesterday"},
        {"limit": 0},
        {"limit": 101},
        {"action": [f"a.{i}" for i in range(21)]},
        {"action": "x" * 65},
        {"action": "login.\x00success"},  # PostgreSQL refuses NUL in text
        {"cursor": "A" * 201},
    ],
)
async def test_bad_queries_are_422(
    client: httpx.AsyncClient, roled_org: RoledOrg, params: dict[str, Any]
) -> None:
    response = await client.get(
        audit_url(roled_org.id), params=params, headers=roled_org.owner.headers
    )

    assert response.status_code == 422, response.text
    if params.get("cursor", "").startswith(("not-a", "W")):
        assert_error(response, 422, "INVALID_CURSOR")


# --- the admin route -----------------------------------------------------------------------


async def test_the_admin_log_shows_every_event_and_filters_by_organization(
    client: httpx.AsyncClient, roled_org: RoledOrg, superuser: Account, factory: Factory
) -> None:
    other = await factory.organization(roled_org.outsider)
    url = f"{API}/admin/audit-logs"

    everything = await _walk(client, url, superuser)
    scoped = await _walk(client, url, superuser, organization_id=str(roled_org.id))

    assert {e["organization_id"] for e in everything} >= {str(roled_org.id), other["id"]}
    assert {e["organization_id"] for e in scoped} == {str(roled_org.id)}
    assert any(e["action"] == "login.success" for e in everything)
    assert_error(await client.get(url, headers=roled_org.owner.headers), 403, "SUPERUSER_REQUIRED")


async def test_concurrent_changes_each_write_their_row(
    client: httpx.AsyncClient, roled_org: RoledOrg, factory: Factory, db: AsyncEngine
) -> None:
    newcomers = [await factory.account() for _ in range(5)]

    responses = await asyncio.gather(
        *(
            client.post(
                f"{roled_org.url}/members",
                json={"user_id": str(n.id)},
                headers=roled_org.owner.headers,
            )
            for n in newcomers
        )
    )

    assert [r.status_code for r in responses] == [201] * 5
    targets = {row.targets[0]["id"] for row in await rows(db, "member.added")}
    assert targets == {str(n.id) for n in newcomers}


async def test_the_periodic_prune_applies_the_retention(db: AsyncEngine) -> None:
    from orgauth.services.maintenance import prune_with_lock

    async with AsyncSession(db) as session:
        old = record(session, "test.old", actor=ANONYMOUS)
        old.occurred_at = utcnow() - timedelta(days=31)
        record(session, "test.recent", actor=ANONYMOUS)
        await session.commit()

    async with AsyncSession(db, expire_on_commit=False) as session:
        kept_forever = await prune_with_lock(session, audit_retention_days=0)
    async with AsyncSession(db, expire_on_commit=False) as session:
        result = await prune_with_lock(session, audit_retention_days=30)

    assert kept_forever is not None
    assert kept_forever.audit_events == 0
    assert result is not None
    assert result.audit_events == 1
    assert sorted(row.action for row in await rows(db)) == ["audit.pruned", "test.recent"]


# --- export --------------------------------------------------------------------------------


async def test_csv_export_streams_every_event_oldest_first_with_the_formula_guard(
    client: httpx.AsyncClient, roled_org: RoledOrg, db: AsyncEngine
) -> None:
    import csv
    import io

    await _seed_events(db, roled_org.id, 1203)  # more than two batches
    async with AsyncSession(db) as session:
        record(
            session,
            "test.formula",
            actor=ANONYMOUS,
            organization_id=roled_org.id,
            client=ClientInfo(ip="203.0.113.9", user_agent='=HYPERLINK("http://x")'),
        )
        await session.commit()

    response = await client.get(
        f"{audit_url(roled_org.id)}/export",
        params={"format": "csv"},
        headers=roled_org.owner.headers,
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="audit-events.csv"'
    table = list(csv.reader(io.StringIO(response.text)))
    assert table[0] == [
        "id",
        "occurred_at",
        "action",
        "organization_id",
        "actor_type",
        "actor_id",
        "impersonator_id",
        "targets",
        "ip_address",
        "user_agent",
        "metadata",
    ]
    body = table[1:]
    seeded = [row for row in body if row[2] == "test.seeded"]
    assert len(seeded) == 1203
    assert len({row[0] for row in body}) == len(body)
    assert [(r[1], r[0]) for r in body] == sorted((r[1], r[0]) for r in body)
    [formula] = [row for row in body if row[2] == "test.formula"]
    assert formula[9] == '\'=HYPERLINK("http://x")'
    assert {row[3] for row in body} == {str(roled_org.id)}
    exported = await rows(db, "audit.exported")
    assert [e.event_metadata["format"] for e in exported] == ["csv"]
    assert exported[0].organization_id == roled_org.id


async def test_jsonl_export_is_one_event_per_line_and_keeps_the_filters(
    client: httpx.AsyncClient, roled_org: RoledOrg, superuser: Account, db: AsyncEngine
) -> None:
    import json

    await _seed_events(db, roled_org.id, 3, action="test.kept")
    await _seed_events(db, roled_org.id, 2, action="test.dropped")

    response = await client.get(
        f"{API}/admin/audit-logs/export",
        params={"format": "jsonl", "action": "test.kept", "organization_id": str(roled_org.id)},
        headers=superuser.headers,
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["action"] for line in lines] == ["test.kept"] * 3
    assert all(set(line) == EVENT_KEYS for line in lines)
    [exported] = await rows(db, "audit.exported")
    assert exported.event_metadata["actions"] == ["test.kept"]


async def test_export_needs_the_permission_a_format_and_respects_its_rate_limit(
    make_app: Any, roled_org: RoledOrg
) -> None:
    url = f"{audit_url(roled_org.id)}/export"
    custom = await make_app(rate_limit_enabled=True, rate_limit_audit_export="2/hour")
    http = custom.client
    owner = roled_org.owner

    assert_validation_error(await http.get(url, headers=owner.headers))
    assert_validation_error(await http.get(url, params={"format": "xml"}, headers=owner.headers))
    assert_error(
        await http.get(url, params={"format": "csv"}, headers=roled_org.member.headers),
        403,
        "INSUFFICIENT_ROLE",
    )
    for _ in range(2):
        assert (
            await http.get(url, params={"format": "csv"}, headers=owner.headers)
        ).status_code == 200
    over = await http.get(url, params={"format": "jsonl"}, headers=owner.headers)
    assert_error(over, 429, "RATE_LIMITED")
    admin = await http.get(url, params={"format": "csv"}, headers=roled_org.admin.headers)
    assert admin.status_code == 200  # the limit is the caller's own


async def test_a_huge_user_agent_is_stored_bounded(
    client: httpx.AsyncClient, factory: Factory, db: AsyncEngine
) -> None:
    address = unique_email("agent")
    await factory.user(email=address)

    response = await client.post(
        f"{API}/auth/login",
        json={"email": address, "password": "Quartz-lantern-Orbit-71"},
        headers={"User-Agent": "Mozilla/5.0 " + "x" * 5000},
    )

    assert response.status_code == 200, response.text
    [row] = await rows(db, "login.success")
    assert row.user_agent is not None
    assert len(row.user_agent) == 512
    assert row.user_agent.startswith("Mozilla/5.0 x")
