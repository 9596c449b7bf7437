"""Adding existing users directly (docs/SECURITY.md, "Adding members").

``POST /organizations/{org_id}/members`` and its admin twin: ``ORG_DIRECT_ADD=false``
leaves the first to superusers (403 ``DIRECT_ADD_DISABLED`` for everyone else, after the
stranger 404 and before anything about the target is revealed); every attempt of a caller
allowed to add counts against ``RATE_LIMIT_INVITE`` on the organization route (429, the
admin API is not counted); ``ORG_MAX_MEMBERS`` holds on both routes (409
``MEMBER_LIMIT_REACHED``); each add is audited with ``source: direct``. Every refusal is
checked to leave the memberships as they were.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.support.http import ClientFactory
from tests.support.orgs import (
    ADMIN,
    API,
    Account,
    Factory,
    RoledOrg,
    assert_error,
    audit_event,
    audit_events,
)
from tests.support.roles import BUILT_IN_PERMISSIONS, create_role

DISABLED = (403, "DIRECT_ADD_DISABLED")
DENIED = (403, "INSUFFICIENT_ROLE")
HIDDEN = (404, "ORGANIZATION_NOT_FOUND")


def _members_url(org: RoledOrg, *, admin_api: bool = False) -> str:
    base = f"{ADMIN}/organizations/{org.id}" if admin_api else org.url
    return f"{base}/members"


async def _add(
    client: httpx.AsyncClient,
    org: RoledOrg,
    caller: Account,
    body: dict[str, str],
    *,
    admin_api: bool = False,
) -> httpx.Response:
    return await client.post(
        _members_url(org, admin_api=admin_api), json=body, headers=caller.headers
    )


# --- ORG_DIRECT_ADD=false ------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
async def test_direct_add_disabled_refuses_every_member(
    make_app: ClientFactory, factory: Factory, role: str
) -> None:
    host = await make_app(org_direct_add=False)
    org = await factory.roled_org()
    user_id = await factory.user()
    before = await factory.roles(org.id)
    response = await _add(host.client, org, org.by_role(role), {"user_id": str(user_id)})
    assert_error(response, *DISABLED)
    assert await factory.roles(org.id) == before


async def test_direct_add_disabled_also_refuses_a_custom_role_with_every_permission(
    make_app: ClientFactory, client: httpx.AsyncClient, factory: Factory
) -> None:
    host = await make_app(org_direct_add=False)
    org = await factory.roled_org()
    await create_role(client, org, "deputy", list(BUILT_IN_PERMISSIONS))
    deputy = await factory.account()
    await factory.add_membership(org.id, deputy.id, "deputy")
    response = await _add(host.client, org, deputy, {"user_id": str(await factory.user())})
    assert_error(response, *DISABLED)


async def test_direct_add_disabled_reveals_nothing_about_the_target(
    make_app: ClientFactory, factory: Factory
) -> None:
    """Known, unknown and already-member targets get the same refusal."""
    host = await make_app(org_direct_add=False)
    org = await factory.roled_org()
    known = await factory.account()
    for body in (
        {"email": known.email},
        {"email": "nobody-at-all@example.com"},
        {"user_id": str(uuid.uuid4())},
        {"user_id": str(org.member.id)},
        {"user_id": str(known.id), "role": "no-such-role"},
    ):
        response = await _add(host.client, org, org.owner, body)
        assert_error(response, *DISABLED)
        assert response.json() == (await _add(host.client, org, org.admin, body)).json()


async def test_direct_add_disabled_still_hides_the_organization_from_strangers(
    make_app: ClientFactory, factory: Factory
) -> None:
    host = await make_app(org_direct_add=False)
    org = await factory.roled_org()
    body = {"user_id": str(await factory.user())}
    assert_error(await _add(host.client, org, org.outsider, body), *HIDDEN)
    response = await host.client.post(
        f"{API}/organizations/{uuid.uuid4()}/members", json=body, headers=org.owner.headers
    )
    assert_error(response, *HIDDEN)


@pytest.mark.parametrize("admin_api", [False, True])
async def test_direct_add_disabled_superusers_still_add(
    make_app: ClientFactory, factory: Factory, admin_api: bool
) -> None:
    host = await make_app(org_direct_add=False)
    org = await factory.roled_org()
    superuser = await factory.superuser()
    user_id = await factory.user()
    response = await _add(
        host.client, org, superuser, {"user_id": str(user_id)}, admin_api=admin_api
    )
    assert response.status_code == 201, response.text
    assert await factory.role_of(org.id, user_id) == "member"


async def test_direct_add_enabled_by_default(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    user_id = await factory.user()
    response = await _add(client, roled_org, roled_org.admin, {"user_id": str(user_id)})
    assert response.status_code == 201, response.text


# --- RATE_LIMIT_INVITE -----------------------------------------------------------------


async def test_direct_adds_count_against_the_callers_invite_limit(
    make_app: ClientFactory, factory: Factory
) -> None:
    host = await make_app(rate_limit_enabled=True, rate_limit_invite="3/hour")
    org = await factory.roled_org()
    added = []
    for _ in range(3):
        user_id = await factory.user()
        response = await _add(host.client, org, org.admin, {"user_id": str(user_id)})
        assert response.status_code == 201, response.text
        added.append(user_id)
    late = await factory.user()
    before = await factory.roles(org.id)
    response = await _add(host.client, org, org.admin, {"user_id": str(late)})
    assert_error(response, 429, "RATE_LIMITED")
    assert int(response.headers["retry-after"]) >= 1
    assert await factory.roles(org.id) == before
    # The limit is the caller's: another admin of the organization still adds.
    response = await _add(host.client, org, org.owner, {"user_id": str(late)})
    assert response.status_code == 201, response.text


async def test_failed_attempts_count_so_the_route_cannot_probe_emails_for_free(
    make_app: ClientFactory, factory: Factory
) -> None:
    host = await make_app(rate_limit_enabled=True, rate_limit_invite="2/hour")
    org = await factory.roled_org()
    for address in ("ghost-1@example.com", "ghost-2@example.com"):
        assert_error(
            await _add(host.client, org, org.admin, {"email": address}), 404, "USER_NOT_FOUND"
        )
    known = await factory.account()
    # Past the limit the answer no longer tells a known email from an unknown one.
    for body in ({"email": known.email}, {"email": "ghost-3@example.com"}):
        assert_error(await _add(host.client, org, org.admin, body), 429, "RATE_LIMITED")
    assert await factory.role_of(org.id, known.id) is None


async def test_callers_without_members_add_are_refused_without_being_counted(
    make_app: ClientFactory, factory: Factory
) -> None:
    host = await make_app(rate_limit_enabled=True, rate_limit_invite="1/hour")
    org = await factory.roled_org()
    body = {"user_id": str(await factory.user())}
    for _ in range(3):
        assert_error(await _add(host.client, org, org.member, body), *DENIED)
        assert_error(await _add(host.client, org, org.outsider, body), *HIDDEN)
    # Promoted, the same member starts with an untouched allowance of one.
    promoted = await host.client.patch(
        org.member_url(org.member.id), json={"role": "admin"}, headers=org.owner.headers
    )
    assert promoted.status_code == 200, promoted.text
    assert (await _add(host.client, org, org.member, body)).status_code == 201
    other = {"user_id": str(await factory.user())}
    assert_error(await _add(host.client, org, org.member, other), 429, "RATE_LIMITED")


async def test_superusers_are_limited_on_the_organization_route_but_not_on_the_admin_api(
    make_app: ClientFactory, factory: Factory
) -> None:
    host = await make_app(rate_limit_enabled=True, rate_limit_invite="1/hour")
    org = await factory.roled_org()
    superuser = await factory.superuser()
    first = await _add(host.client, org, superuser, {"user_id": str(await factory.user())})
    assert first.status_code == 201, first.text
    refused = await _add(host.client, org, superuser, {"user_id": str(await factory.user())})
    assert_error(refused, 429, "RATE_LIMITED")
    for _ in range(3):
        response = await _add(
            host.client, org, superuser, {"user_id": str(await factory.user())}, admin_api=True
        )
        assert response.status_code == 201, response.text


# --- ORG_MAX_MEMBERS -------------------------------------------------------------------


@pytest.mark.parametrize("admin_api", [False, True])
async def test_member_limit_holds_on_both_member_routes(
    make_app: ClientFactory, factory: Factory, admin_api: bool
) -> None:
    host = await make_app(org_max_members=4)
    org = await factory.roled_org()  # owner, admin, member: 3 of 4
    caller = await factory.superuser() if admin_api else org.owner
    fourth = await factory.user()
    response = await _add(host.client, org, caller, {"user_id": str(fourth)}, admin_api=admin_api)
    assert response.status_code == 201, response.text
    fifth = await factory.user()
    before = await factory.roles(org.id)
    response = await _add(host.client, org, caller, {"user_id": str(fifth)}, admin_api=admin_api)
    assert_error(response, 409, "MEMBER_LIMIT_REACHED")
    assert await factory.roles(org.id) == before
    # A seat freed is a seat to fill.
    removed = await host.client.delete(org.member_url(org.member.id), headers=org.owner.headers)
    assert removed.status_code == 204, removed.text
    response = await _add(host.client, org, caller, {"user_id": str(fifth)}, admin_api=admin_api)
    assert response.status_code == 201, response.text


async def test_member_limit_answers_already_member_first(
    make_app: ClientFactory, factory: Factory
) -> None:
    host = await make_app(org_max_members=3)
    org = await factory.roled_org()
    response = await _add(host.client, org, org.owner, {"user_id": str(org.member.id)})
    assert_error(response, 409, "ALREADY_MEMBER")
    response = await _add(host.client, org, org.owner, {"user_id": str(await factory.user())})
    assert_error(response, 409, "MEMBER_LIMIT_REACHED")


async def test_member_limit_zero_means_no_limit(make_app: ClientFactory, factory: Factory) -> None:
    host = await make_app(org_max_members=0)
    org = await factory.roled_org()
    for _ in range(5):
        response = await _add(host.client, org, org.admin, {"user_id": str(await factory.user())})
        assert response.status_code == 201, response.text
    assert len(await factory.roles(org.id)) == 8


async def test_concurrent_adds_never_pass_the_member_limit(
    make_app: ClientFactory, factory: Factory
) -> None:
    host = await make_app(org_max_members=5)
    org = await factory.roled_org()
    candidates = [await factory.user() for _ in range(6)]
    responses = await asyncio.gather(
        *(_add(host.client, org, org.owner, {"user_id": str(user_id)}) for user_id in candidates)
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201, 201, 409, 409, 409, 409], [r.text for r in responses]
    assert len(await factory.roles(org.id)) == 5


# --- audit -----------------------------------------------------------------------------


@pytest.mark.parametrize("admin_api", [False, True])
async def test_each_direct_add_is_audited_with_source_direct(
    client: httpx.AsyncClient,
    factory: Factory,
    roled_org: RoledOrg,
    superuser: Account,
    caplog: pytest.LogCaptureFixture,
    admin_api: bool,
) -> None:
    caller = superuser if admin_api else roled_org.admin
    user_id = await factory.user()
    caplog.clear()
    response = await _add(
        client, roled_org, caller, {"user_id": str(user_id), "role": "admin"}, admin_api=admin_api
    )
    assert response.status_code == 201, response.text
    event = audit_event(caplog, "member.added")
    assert (event.actor_id, event.organization_id, event.user_id, event.role, event.source) == (
        str(caller.id),
        str(roled_org.id),
        str(user_id),
        "admin",
        "direct",
    )


async def test_a_refused_add_is_not_audited(
    client: httpx.AsyncClient, roled_org: RoledOrg, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    response = await _add(client, roled_org, roled_org.owner, {"user_id": str(roled_org.admin.id)})
    assert_error(response, 409, "ALREADY_MEMBER")
    assert [r.getMessage() for r in audit_events(caplog)] == []
