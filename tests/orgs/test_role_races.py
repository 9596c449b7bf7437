"""Custom roles under concurrency (docs/API.md: changes to one organization are
serialised).

* Deleting a role while it is being handed out never leaves a membership naming a role
  that does not exist: either an assignment commits first and the delete is 409
  ``ROLE_IN_USE``, or the delete commits first and every assignment is 422
  ``UNKNOWN_ROLE``.
* Concurrent edits of one role end with one of the submitted versions, whole.

Each race runs through one app with ``asyncio.gather`` (on PostgreSQL the organization row
lock, on SQLite the database write lock) and, on PostgreSQL, across two real server
processes sharing the database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from orgauth.models import Membership, OrganizationRole, OrgRole
from tests.support.orgs import API, Account, Factory, RoledOrg
from tests.support.roles import create_role
from tests.support.servers import ServerFactory, server_environment
from tests.support.settings import is_postgres_run

ROUNDS = 4
#: Rounds of concurrent edits. Across two processes, before update_role read its answer
#: under the lock, a stale answer showed in about half of the runs of five rounds.
EDIT_ROUNDS = 5
PROCESS_EDIT_ROUNDS = 20
ADDS = 4
CHANGES = 4
VERSIONS = 8
#: Permission sets for the concurrent edits: pairwise different, so a mix would show.
PERMISSION_SETS = [
    ["organization:read"],
    ["members:read", "organization:read"],
    ["audit_logs:read"],
    ["members:add", "members:read"],
    [],
    ["organization:update", "webhooks:manage"],
    ["api_keys:manage", "invitations:manage", "organization:read"],
    ["members:remove", "roles:manage"],
]

postgres_only = pytest.mark.skipif(
    not is_postgres_run(),
    reason="needs PostgreSQL shared by two server processes: set ORGAUTH_TEST_DATABASE_URL",
)


def _outcome(response: httpx.Response) -> tuple[int, str | None]:
    if response.status_code >= 400:
        return response.status_code, response.json()["detail"]["code"]
    return response.status_code, None


async def dangling_memberships(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    """Memberships anywhere whose role is neither built in nor a row of their
    organization's roles."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(col(Membership.organization_id), col(Membership.user_id), col(Membership.role))
            .outerjoin(
                OrganizationRole,
                and_(
                    col(OrganizationRole.organization_id) == col(Membership.organization_id),
                    col(OrganizationRole.key) == col(Membership.role),
                ),
            )
            .where(
                col(Membership.role).not_in([str(role) for role in OrgRole]),
                col(OrganizationRole.id).is_(None),
            )
        )
        return [tuple(row) for row in rows.all()]


async def role_row(engine: AsyncEngine, org_id: uuid.UUID, key: str) -> tuple[Any, ...] | None:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(
                    col(OrganizationRole.name),
                    col(OrganizationRole.description),
                    col(OrganizationRole.permissions),
                ).where(
                    col(OrganizationRole.organization_id) == org_id,
                    col(OrganizationRole.key) == key,
                )
            )
        ).one_or_none()
    return (row[0], row[1], list(row[2])) if row is not None else None


@dataclass(frozen=True)
class Org:
    """Where a race runs: the organization's URL and its owner, on some HTTP client."""

    id: uuid.UUID
    owner: Account

    @property
    def url(self) -> str:
        return f"{API}/organizations/{self.id}"


async def race_delete_against_assignments(
    clients: list[httpx.AsyncClient], factory: Factory, org: Org, round_index: int
) -> None:
    """One round: ADDS new members and CHANGES existing ones are given role X while X is
    deleted; the delete is placed at a different position in each round."""
    key = f"contested-{round_index}"
    await create_role(clients[0], org, key)
    candidates = [await factory.user() for _ in range(ADDS)]
    existing = []
    for _ in range(CHANGES):
        user_id = await factory.user()
        await factory.add_membership(org.id, user_id, OrgRole.MEMBER)
        existing.append(user_id)

    headers = org.owner.headers
    assignments: list[Awaitable[httpx.Response]] = []
    for index, user_id in enumerate(candidates):
        client = clients[index % len(clients)]
        body = {"user_id": str(user_id), "role": key}
        assignments.append(client.post(f"{org.url}/members", json=body, headers=headers))
    for index, user_id in enumerate(existing):
        client = clients[(index + 1) % len(clients)]
        url = f"{org.url}/members/{user_id}"
        assignments.append(client.patch(url, json={"role": key}, headers=headers))
    deletion = clients[round_index % len(clients)].delete(f"{org.url}/roles/{key}", headers=headers)
    position = (round_index * 3) % (len(assignments) + 1)
    calls = [*assignments[:position], deletion, *assignments[position:]]

    responses = await asyncio.gather(*calls)
    deleted = _outcome(responses[position])
    assigned = [_outcome(r) for i, r in enumerate(responses) if i != position]

    assert await dangling_memberships(factory.engine) == []
    roles = await factory.roles(org.id)
    holders = {user for user, role in roles.items() if role == key}
    if deleted == (204, None):
        assert all(outcome == (422, "UNKNOWN_ROLE") for outcome in assigned), assigned
        assert await role_row(factory.engine, org.id, key) is None
        assert holders == set()
        assert all(roles[user_id] == "member" for user_id in existing)
        assert not set(candidates) & set(roles)
    else:
        assert deleted == (409, "ROLE_IN_USE"), deleted
        # An assignment came first; the role stayed, so every later one succeeded too.
        assert sorted(assigned) == [(200, None)] * CHANGES + [(201, None)] * ADDS, assigned
        assert await role_row(factory.engine, org.id, key) is not None
        assert holders == set(candidates) | set(existing)


async def race_concurrent_edits(
    clients: list[httpx.AsyncClient], factory: Factory, org: Org, key: str
) -> None:
    """VERSIONS concurrent PATCHes, each a whole version (name, description, permissions):
    each answer is its own version and the row ends as exactly one of them."""
    await create_role(clients[0], org, key)
    versions = [
        {"name": f"Version {i}", "description": f"description {i}", "permissions": perms}
        for i, perms in enumerate(PERMISSION_SETS[:VERSIONS])
    ]
    responses = await asyncio.gather(
        *(
            clients[i % len(clients)].patch(
                f"{org.url}/roles/{key}", json=version, headers=org.owner.headers
            )
            for i, version in enumerate(versions)
        )
    )
    submitted = [(v["name"], v["description"], sorted(v["permissions"])) for v in versions]
    for response, version in zip(responses, submitted, strict=True):
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["name"], body["description"], body["permissions"]) == version
    final = await role_row(factory.engine, org.id, key)
    assert final in submitted, final
    listed = await clients[-1].get(f"{org.url}/roles", headers=org.owner.headers)
    [shown] = [role for role in listed.json() if role["key"] == key]
    assert (shown["name"], shown["description"], shown["permissions"]) == final


# --- one app, concurrent requests ----------------------------------------------------------


def _org(roled_org: RoledOrg) -> Org:
    return Org(roled_org.id, roled_org.owner)


async def test_deleting_a_role_while_it_is_assigned_never_leaves_a_dangling_membership(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    for round_index in range(ROUNDS):
        await race_delete_against_assignments([client], factory, _org(roled_org), round_index)


async def test_concurrent_edits_of_a_role_end_with_one_whole_version(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    for round_index in range(EDIT_ROUNDS):
        await race_concurrent_edits([client], factory, _org(roled_org), f"edited-{round_index}")


# --- two server processes on one PostgreSQL database ----------------------------------------


@pytest.fixture(scope="module")
def servers(
    migrated_engine: AsyncEngine, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """Two independent ``orgauth serve`` processes on the test database, started once for
    this module (each test still starts from emptied tables); their base URLs."""
    factory = ServerFactory(tmp_path_factory.mktemp("role-race-servers"))
    try:
        environment = server_environment(database_url=database_url, log_level="WARNING")
        yield [server.url for server in factory.start(environment, count=2)]
    finally:
        factory.stop_all()


@pytest.fixture
async def server_clients(
    db: AsyncEngine, servers: list[str]
) -> AsyncIterator[list[httpx.AsyncClient]]:
    limits = httpx.Limits(max_connections=ADDS + CHANGES + VERSIONS)
    async with (
        httpx.AsyncClient(base_url=servers[0], timeout=30.0, limits=limits) as one,
        httpx.AsyncClient(base_url=servers[1], timeout=30.0, limits=limits) as two,
    ):
        yield [one, two]


async def _server_org(clients: list[httpx.AsyncClient], factory: Factory) -> Org:
    """An organization created through the first server by an owner signed in there (the
    servers sign tokens with their own key)."""
    owner = await factory.account(client=clients[0])
    response = await clients[1].post(
        f"{API}/organizations", json={"name": "Raced"}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    return Org(uuid.UUID(response.json()["id"]), owner)


@pytest.mark.slow
@postgres_only
async def test_role_delete_racing_assignments_across_two_processes(
    server_clients: list[httpx.AsyncClient], factory: Factory
) -> None:
    org = await _server_org(server_clients, factory)
    for round_index in range(ROUNDS):
        await race_delete_against_assignments(server_clients, factory, org, round_index)


@pytest.mark.slow
@postgres_only
async def test_concurrent_role_edits_across_two_processes_end_with_one_whole_version(
    server_clients: list[httpx.AsyncClient], factory: Factory
) -> None:
    org = await _server_org(server_clients, factory)
    for round_index in range(PROCESS_EDIT_ROUNDS):
        await race_concurrent_edits(server_clients, factory, org, f"edited-{round_index}")
