"""Invitations under concurrency (docs/SECURITY.md "Invitations"): one accept wins, the
member limit holds across parallel accepts, a re-invite racing an accept leaves one
consistent state, on one app and across two server processes on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth.models import Invitation, Membership
from tests.support.http import ClientFactory, fetch
from tests.support.invitations import accept, invited, latest_invitation_token
from tests.support.orgs import Account, Factory, RoledOrg
from tests.support.servers import ServerFactory, server_environment
from tests.support.settings import TEST_SECRET_KEY, is_postgres_run

PARALLEL = 8


async def _state(engine: AsyncEngine, org_id: uuid.UUID, address: str) -> tuple[int, int, int]:
    """(pending rows, accepted rows, memberships) for one address in one organization."""
    rows = await fetch(
        engine,
        select(Invitation.status, func.count())
        .where(Invitation.organization_id == org_id, Invitation.email == address)
        .group_by(Invitation.status),
    )
    statuses = {status: int(count) for status, count in rows}
    [members] = await fetch(
        engine,
        select(func.count()).select_from(Membership).where(Membership.organization_id == org_id),
    )
    return statuses.get("pending", 0), statuses.get("accepted", 0), int(members[0])


async def test_concurrent_accepts_of_one_invitation_make_one_membership(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    db: AsyncEngine,
    email_dir: Path,
) -> None:
    guest = await factory.account()
    await invited(client, roled_org.id, roled_org.owner, guest.email)
    token = latest_invitation_token(email_dir, guest.email)

    responses = await asyncio.gather(*(accept(client, guest, token=token) for _ in range(PARALLEL)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [400] * (PARALLEL - 1), statuses
    assert await _state(db, roled_org.id, guest.email) == (0, 1, 4)


async def test_parallel_accepts_never_exceed_the_member_limit(
    make_app: ClientFactory, factory: Factory, db: AsyncEngine
) -> None:
    unlimited = await make_app()
    owner = await factory.account(client=unlimited.client)
    org_id = uuid.UUID((await Factory(db, unlimited.client).organization(owner))["id"])
    guests: list[tuple[Account, str]] = []
    for _ in range(PARALLEL):
        guest = await factory.account(client=unlimited.client)
        await invited(unlimited.client, org_id, owner, guest.email)
        guests.append((guest, latest_invitation_token(unlimited.email_dir, guest.email)))
    limited = await make_app(org_max_members=4)

    responses = await asyncio.gather(
        *(accept(limited.client, guest, token=token) for guest, token in guests)
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 3 + [409] * (PARALLEL - 3), statuses
    assert (await _state(db, org_id, "nobody@example.com"))[2] == 4


async def test_a_re_invite_racing_an_accept_leaves_one_consistent_state(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    db: AsyncEngine,
    email_dir: Path,
) -> None:
    for _ in range(4):
        guest = await factory.account()
        await invited(client, roled_org.id, roled_org.owner, guest.email)
        token = latest_invitation_token(email_dir, guest.email)

        accepted, reinvited = await asyncio.gather(
            accept(client, guest, token=token),
            client.post(
                f"/api/v1/organizations/{roled_org.id}/invitations",
                json={"email": guest.email},
                headers=roled_org.admin.headers,
            ),
        )

        pending, accepted_rows, _ = await _state(db, roled_org.id, guest.email)
        member = await factory.role_of(roled_org.id, guest.id)
        if accepted.status_code == 200:  # the accept went first: the re-invite sees a member
            assert reinvited.status_code == 409, reinvited.text
            assert (pending, accepted_rows, member) == (0, 1, "member")
        else:  # the re-invite went first: the old token died with its row
            assert accepted.status_code == 400, accepted.text
            assert reinvited.status_code == 201, reinvited.text
            assert (pending, accepted_rows, member) == (1, 0, None)


# --- two server processes -------------------------------------------------------------------

SERVER_MEMBER_LIMIT = 4


@pytest.fixture
def two_servers(db: AsyncEngine, database_url: str, server_factory: ServerFactory) -> list[str]:
    """Two ``orgauth serve`` processes on the test database, with ORG_MAX_MEMBERS=4."""
    environment = server_environment(
        database_url=database_url,
        secret_key=TEST_SECRET_KEY,  # the in-process app's tokens work on the servers
        log_level="WARNING",
        org_max_members=SERVER_MEMBER_LIMIT,
    )
    return [server.url for server in server_factory.start(environment, count=2)]


@pytest.mark.slow
@pytest.mark.skipif(
    not is_postgres_run(),
    reason="needs PostgreSQL shared by two server processes: set ORGAUTH_TEST_DATABASE_URL",
)
async def test_accepts_across_two_processes_claim_once_and_respect_the_limit(
    two_servers: list[str],
    client: httpx.AsyncClient,
    factory: Factory,
    db: AsyncEngine,
    email_dir: Path,
) -> None:
    # Invitations made by the in-process app, which has no member limit.
    owner = await factory.account()
    org_id = uuid.UUID((await factory.organization(owner))["id"])
    guests: list[tuple[Account, str]] = []
    for _ in range(PARALLEL):
        guest = await factory.account()
        await invited(client, org_id, owner, guest.email)
        guests.append((guest, latest_invitation_token(email_dir, guest.email)))
    first, second = two_servers
    async with (
        httpx.AsyncClient(base_url=first, timeout=30.0) as one,
        httpx.AsyncClient(base_url=second, timeout=30.0) as two,
    ):
        # One invitation accepted many times through both processes: one membership.
        racer, token = guests.pop()
        responses = await asyncio.gather(
            *(accept(one if i % 2 else two, racer, token=token) for i in range(PARALLEL))
        )
        statuses = sorted(response.status_code for response in responses)
        assert statuses == [200] + [400] * (PARALLEL - 1), statuses

        # Seven different invitations accepted at once: the limit of four members holds.
        accepted = await asyncio.gather(
            *(
                accept(one if i % 2 else two, guest, token=guest_token)
                for i, (guest, guest_token) in enumerate(guests)
            )
        )
        statuses = sorted(response.status_code for response in accepted)
        assert statuses == [200] * 2 + [409] * (len(guests) - 2), statuses

    [members] = await fetch(
        db, select(func.count()).select_from(Membership).where(Membership.organization_id == org_id)
    )
    assert int(members[0]) == SERVER_MEMBER_LIMIT


@pytest.mark.slow
@pytest.mark.skipif(
    not is_postgres_run(),
    reason="needs PostgreSQL shared by two server processes: set ORGAUTH_TEST_DATABASE_URL",
)
async def test_a_re_invite_racing_an_accept_across_two_processes_stays_consistent(
    two_servers: list[str],
    client: httpx.AsyncClient,
    factory: Factory,
    db: AsyncEngine,
    email_dir: Path,
) -> None:
    owner = await factory.account()
    first, second = two_servers
    async with (
        httpx.AsyncClient(base_url=first, timeout=30.0) as one,
        httpx.AsyncClient(base_url=second, timeout=30.0) as two,
    ):
        for _ in range(6):  # a fresh organization each time: far from the member limit
            org_id = uuid.UUID((await factory.organization(owner))["id"])
            guest = await factory.account()
            await invited(client, org_id, owner, guest.email)
            token = latest_invitation_token(email_dir, guest.email)

            accepted, reinvited = await asyncio.gather(
                accept(one, guest, token=token),
                two.post(
                    f"/api/v1/organizations/{org_id}/invitations",
                    json={"email": guest.email},
                    headers=owner.headers,
                ),
            )

            pending, accepted_rows, _ = await _state(db, org_id, guest.email)
            member = await factory.role_of(org_id, guest.id)
            if accepted.status_code == 200:
                assert reinvited.status_code == 409, reinvited.text
                assert (pending, accepted_rows, member) == (0, 1, "member")
            else:
                assert accepted.status_code == 400, accepted.text
                assert reinvited.status_code == 201, reinvited.text
                assert (pending, accepted_rows, member) == (1, 0, None)
