"""Members of an organization (docs/API.md): list, add, change role, remove, leave, and the
effect of each change on the affected user's very next request."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx
import pytest

from orgauth.models import OrgRole, utcnow
from tests.support.orgs import (
    API,
    MEMBER_KEYS,
    Factory,
    RoledOrg,
    assert_error,
    assert_validation_error,
    audit_event,
    unique_email,
)

# --- listing -------------------------------------------------------------------------


async def test_members_list_has_the_member_shape_and_pagination(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    response = await client.get(f"{roled_org.url}/members", headers=roled_org.member.headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "pagination"}
    assert body["pagination"] == {
        "total": 3,
        "page": 1,
        "page_size": 20,
        "total_pages": 1,
        "has_next": False,
        "has_prev": False,
    }
    assert all(set(item) == MEMBER_KEYS for item in body["data"])
    by_user = {item["user_id"]: item for item in body["data"]}
    owner = by_user[str(roled_org.owner.id)]
    assert owner["email"] == roled_org.owner.email
    assert (owner["first_name"], owner["last_name"], owner["role"]) == ("Olive", "Owner", "owner")
    assert datetime.fromisoformat(owner["joined_at"]).utcoffset() is not None


async def test_members_are_listed_oldest_first_across_pages(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    start = utcnow() + timedelta(minutes=1)
    added = []
    for index in range(7):
        user_id = await factory.user()
        await factory.add_membership(
            roled_org.id, user_id, OrgRole.MEMBER, joined_at=start + timedelta(seconds=index)
        )
        added.append(str(user_id))
    seen: list[str] = []
    for page in (1, 2, 3, 4):
        response = await client.get(
            f"{roled_org.url}/members",
            params={"page": page, "limit": 3},
            headers=roled_org.admin.headers,
        )
        body = response.json()
        assert body["pagination"]["total"] == 10
        assert body["pagination"]["total_pages"] == 4
        assert body["pagination"]["page_size"] == 3
        assert body["pagination"]["has_prev"] is (page > 1)
        assert body["pagination"]["has_next"] is (page < 4)
        assert len(body["data"]) == (3 if page < 4 else 1)
        seen.extend(item["user_id"] for item in body["data"])
    assert len(set(seen)) == 10
    assert seen[3:] == added  # the founding three joined earlier


async def test_page_past_the_end_is_empty_not_an_error(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    response = await client.get(
        f"{roled_org.url}/members", params={"page": 5}, headers=roled_org.owner.headers
    )
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == []
    assert body["pagination"]["total"] == 3
    assert body["pagination"]["has_next"] is False
    assert body["pagination"]["has_prev"] is True


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
async def test_members_can_be_filtered_by_role(
    client: httpx.AsyncClient, roled_org: RoledOrg, role: str
) -> None:
    response = await client.get(
        f"{roled_org.url}/members", params={"role": role}, headers=roled_org.member.headers
    )
    body = response.json()
    assert body["pagination"]["total"] == 1
    assert [item["user_id"] for item in body["data"]] == [str(roled_org.by_role(role).id)]


async def test_unknown_role_filter_is_422(client: httpx.AsyncClient, roled_org: RoledOrg) -> None:
    response = await client.get(
        f"{roled_org.url}/members", params={"role": "superuser"}, headers=roled_org.owner.headers
    )
    assert_error(response, 422, "UNKNOWN_ROLE")
    too_long = await client.get(
        f"{roled_org.url}/members", params={"role": "r" * 33}, headers=roled_org.owner.headers
    )
    assert_validation_error(too_long)


@pytest.fixture
async def searchable(factory: Factory, roled_org: RoledOrg) -> dict[str, uuid.UUID]:
    """Members whose details contain SQL wildcard and quote characters."""
    people = {
        "percent": ("pct@example.com", "100%", "Sure"),
        "underscore": ("snake_case@example.com", "Sid", "Underscore"),
        "quote": ("obrien@example.com", "Conan", "O'Brien"),
        "backslash": ("back@example.com", "Back\\slash", "Person"),
        "plain": ("plain1x@example.com", "Plain", "Jane"),
    }
    ids = {}
    for key, (email, first, last) in people.items():
        user_id = await factory.user(email=email, first_name=first, last_name=last)
        await factory.add_membership(roled_org.id, user_id, OrgRole.MEMBER)
        ids[key] = user_id
    return ids


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("%", {"percent"}),
        ("_", {"underscore"}),
        ("'", {"quote"}),
        ("o'brien", {"quote"}),
        ("O'BRIEN", {"quote"}),
        ("\\", {"backslash"}),
        ("SNAKE_case", {"underscore"}),
        ("1x", {"plain"}),
        ("jane", {"plain"}),
        ("nobody-matches-this", set()),
        ("%'; DROP TABLE users; --", set()),
    ],
)
async def test_member_search_is_literal_and_case_insensitive(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    searchable: dict[str, uuid.UUID],
    term: str,
    expected: set[str],
) -> None:
    response = await client.get(
        f"{roled_org.url}/members", params={"search": term}, headers=roled_org.member.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert {item["user_id"] for item in body["data"]} == {str(searchable[k]) for k in expected}
    assert body["pagination"]["total"] == len(expected)


async def test_member_search_combines_with_the_role_filter(
    client: httpx.AsyncClient, roled_org: RoledOrg, searchable: dict[str, uuid.UUID]
) -> None:
    response = await client.get(
        f"{roled_org.url}/members",
        params={"search": "example.com", "role": "member"},
        headers=roled_org.member.headers,
    )
    body = response.json()
    # Every member's email contains example.com; the owner and admin are filtered out.
    assert body["pagination"]["total"] == 6
    assert {item["role"] for item in body["data"]} == {"member"}


@pytest.mark.parametrize("search", ["", "s" * 101])
async def test_member_search_out_of_bounds_is_422(
    client: httpx.AsyncClient, roled_org: RoledOrg, search: str
) -> None:
    response = await client.get(
        f"{roled_org.url}/members", params={"search": search}, headers=roled_org.owner.headers
    )
    assert_validation_error(response)


# --- adding --------------------------------------------------------------------------


async def test_admin_adds_a_member_by_email(
    client: httpx.AsyncClient,
    factory: Factory,
    roled_org: RoledOrg,
    caplog: pytest.LogCaptureFixture,
) -> None:
    email = unique_email("newcomer")
    user_id = await factory.user(email=email, first_name="New", last_name="Comer")
    response = await client.post(
        f"{roled_org.url}/members",
        json={"email": email.upper(), "role": "member"},
        headers=roled_org.admin.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == MEMBER_KEYS
    assert body["user_id"] == str(user_id)
    assert body["email"] == email
    assert (body["first_name"], body["last_name"], body["role"]) == ("New", "Comer", "member")
    assert await factory.role_of(roled_org.id, user_id) == "member"
    event = audit_event(caplog, "member.added")
    assert (event.user_id, event.role, event.actor_id) == (
        str(user_id),
        "member",
        str(roled_org.admin.id),
    )


async def test_owner_adds_a_member_by_user_id_with_a_role(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    user_id = await factory.user()
    response = await client.post(
        f"{roled_org.url}/members",
        json={"user_id": str(user_id), "role": "admin"},
        headers=roled_org.owner.headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["role"] == "admin"
    assert await factory.role_of(roled_org.id, user_id) == "admin"
    org = await client.get(roled_org.url, headers=roled_org.owner.headers)
    assert org.json()["member_count"] == 4


async def test_role_defaults_to_member(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    user_id = await factory.user()
    response = await client.post(
        f"{roled_org.url}/members", json={"user_id": str(user_id)}, headers=roled_org.owner.headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["role"] == "member"


@pytest.mark.parametrize("by", ["email", "user_id"])
async def test_adding_an_existing_member_is_409(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg, by: str
) -> None:
    target = roled_org.member
    ident = target.email if by == "email" else str(target.id)
    response = await client.post(
        f"{roled_org.url}/members",
        json={by: ident, "role": "admin"},
        headers=roled_org.owner.headers,
    )
    assert_error(response, 409, "ALREADY_MEMBER")
    assert await factory.role_of(roled_org.id, target.id) == "member"  # not silently promoted


@pytest.mark.parametrize(
    "body",
    [
        {"email": "nobody-here@example.com"},
        {"email": "not an email"},
        {"user_id": "00000000-0000-4000-8000-000000000000"},
    ],
)
async def test_adding_an_unknown_user_is_404(
    client: httpx.AsyncClient, roled_org: RoledOrg, body: dict[str, str]
) -> None:
    response = await client.post(
        f"{roled_org.url}/members", json=body, headers=roled_org.owner.headers
    )
    assert_error(response, 404, "USER_NOT_FOUND")


async def test_admin_granting_owner_on_add_is_403(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    user_id = await factory.user()
    response = await client.post(
        f"{roled_org.url}/members",
        json={"user_id": str(user_id), "role": "owner"},
        headers=roled_org.admin.headers,
    )
    assert_error(response, 403, "INSUFFICIENT_ROLE")
    assert await factory.role_of(roled_org.id, user_id) is None


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"role": "member"},
        {"email": "x@example.com", "user_id": "00000000-0000-4000-8000-000000000000"},
        {"user_id": "not-a-uuid"},
        {"user_id": "00000000-0000-4000-8000-000000000000", "role": "r" * 33},
        {"user_id": "00000000-0000-4000-8000-000000000000", "joined_at": "2020-01-01T00:00:00Z"},
    ],
)
async def test_malformed_add_member_body_is_422(
    client: httpx.AsyncClient, roled_org: RoledOrg, body: dict[str, str]
) -> None:
    response = await client.post(
        f"{roled_org.url}/members", json=body, headers=roled_org.owner.headers
    )
    assert_validation_error(response)


# --- changing roles ------------------------------------------------------------------


async def test_owner_promotes_a_member_to_admin(
    client: httpx.AsyncClient,
    factory: Factory,
    roled_org: RoledOrg,
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = await client.patch(
        roled_org.member_url(roled_org.member.id),
        json={"role": "admin"},
        headers=roled_org.owner.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == MEMBER_KEYS
    assert (body["user_id"], body["role"]) == (str(roled_org.member.id), "admin")
    assert await factory.role_of(roled_org.id, roled_org.member.id) == "admin"
    event = audit_event(caplog, "member.role_changed")
    assert (event.old_role, event.new_role) == ("member", "admin")


async def test_admin_demotes_another_admin(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    other = await factory.user()
    await factory.add_membership(roled_org.id, other, OrgRole.ADMIN)
    response = await client.patch(
        roled_org.member_url(other), json={"role": "member"}, headers=roled_org.admin.headers
    )
    assert response.status_code == 200, response.text
    assert await factory.role_of(roled_org.id, other) == "member"


async def test_owner_hands_ownership_over_and_steps_down(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    promote = await client.patch(
        roled_org.member_url(roled_org.admin.id),
        json={"role": "owner"},
        headers=roled_org.owner.headers,
    )
    assert promote.status_code == 200, promote.text
    step_down = await client.patch(
        roled_org.member_url(roled_org.owner.id),
        json={"role": "member"},
        headers=roled_org.owner.headers,
    )
    assert step_down.status_code == 200, step_down.text
    assert await factory.roles(roled_org.id) == {
        roled_org.owner.id: "member",
        roled_org.admin.id: "owner",
        roled_org.member.id: "member",
    }


async def test_setting_the_same_role_is_a_no_op(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    response = await client.patch(
        roled_org.member_url(roled_org.member.id),
        json={"role": "member"},
        headers=roled_org.owner.headers,
    )
    assert response.status_code == 200
    assert await factory.role_of(roled_org.id, roled_org.member.id) == "member"


async def test_changing_the_role_of_a_non_member_is_404(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    for user_id in (roled_org.outsider.id, uuid.uuid4()):
        response = await client.patch(
            roled_org.member_url(user_id), json={"role": "admin"}, headers=roled_org.owner.headers
        )
        assert_error(response, 404, "MEMBER_NOT_FOUND")


async def test_unknown_role_keys_are_422_unknown_role(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    for role in ("superuser", "root", "Owner"):
        added = await client.post(
            f"{roled_org.url}/members",
            json={"user_id": str(roled_org.outsider.id), "role": role},
            headers=roled_org.owner.headers,
        )
        assert_error(added, 422, "UNKNOWN_ROLE")
        changed = await client.patch(
            roled_org.member_url(roled_org.member.id),
            json={"role": role},
            headers=roled_org.owner.headers,
        )
        assert_error(changed, 422, "UNKNOWN_ROLE")


@pytest.mark.parametrize(
    "body", [{}, {"role": "r" * 33}, {"role": None}, {"role": "admin", "user_id": "x"}]
)
async def test_malformed_role_change_is_422(
    client: httpx.AsyncClient, roled_org: RoledOrg, body: dict[str, str]
) -> None:
    response = await client.patch(
        roled_org.member_url(roled_org.member.id), json=body, headers=roled_org.owner.headers
    )
    assert_validation_error(response)


# --- removing and leaving ------------------------------------------------------------


async def test_admin_removes_a_member(
    client: httpx.AsyncClient,
    factory: Factory,
    roled_org: RoledOrg,
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = await client.delete(
        roled_org.member_url(roled_org.member.id), headers=roled_org.admin.headers
    )
    assert response.status_code == 204
    assert await factory.role_of(roled_org.id, roled_org.member.id) is None
    event = audit_event(caplog, "member.removed")
    assert (event.user_id, event.role) == (str(roled_org.member.id), "member")


async def test_removing_a_non_member_is_404(client: httpx.AsyncClient, roled_org: RoledOrg) -> None:
    response = await client.delete(
        roled_org.member_url(roled_org.outsider.id), headers=roled_org.owner.headers
    )
    assert_error(response, 404, "MEMBER_NOT_FOUND")


@pytest.mark.parametrize("role", ["admin", "member"])
async def test_any_member_may_leave(
    client: httpx.AsyncClient,
    factory: Factory,
    roled_org: RoledOrg,
    role: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    leaver = roled_org.by_role(role)
    response = await client.delete(roled_org.member_url(leaver.id), headers=leaver.headers)
    assert response.status_code == 204
    assert await factory.role_of(roled_org.id, leaver.id) is None
    assert audit_event(caplog, "member.left").user_id == str(leaver.id)


async def test_an_owner_may_leave_when_another_owner_stays(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    await factory.add_membership(roled_org.id, roled_org.outsider.id, OrgRole.OWNER)
    response = await client.delete(
        roled_org.member_url(roled_org.owner.id), headers=roled_org.owner.headers
    )
    assert response.status_code == 204
    assert await factory.owner_count(roled_org.id) == 1


async def test_member_cannot_remove_someone_else(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    response = await client.delete(
        roled_org.member_url(roled_org.admin.id), headers=roled_org.member.headers
    )
    assert_error(response, 403, "INSUFFICIENT_ROLE")
    assert await factory.role_of(roled_org.id, roled_org.admin.id) == "admin"


# --- the next request sees the change ------------------------------------------------


async def test_removed_member_is_locked_out_on_the_very_next_request(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    member = roled_org.member
    assert (await client.get(roled_org.url, headers=member.headers)).status_code == 200
    await client.delete(roled_org.member_url(member.id), headers=roled_org.owner.headers)
    for method, path in (
        ("GET", roled_org.url),
        ("GET", f"{roled_org.url}/members"),
        ("DELETE", roled_org.member_url(member.id)),
    ):
        response = await client.request(method, path, headers=member.headers)
        assert_error(response, 404, "ORGANIZATION_NOT_FOUND")
    mine = await client.get(f"{API}/organizations/me", headers=member.headers)
    assert mine.json() == []


async def test_demoted_admin_is_refused_on_the_very_next_request(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    admin = roled_org.admin
    first = await client.patch(roled_org.url, json={"name": "By Admin"}, headers=admin.headers)
    assert first.status_code == 200
    await client.patch(
        roled_org.member_url(admin.id), json={"role": "member"}, headers=roled_org.owner.headers
    )
    response = await client.patch(roled_org.url, json={"name": "Again"}, headers=admin.headers)
    assert_error(response, 403, "INSUFFICIENT_ROLE")
    add = await client.post(
        f"{roled_org.url}/members",
        json={"user_id": str(roled_org.outsider.id)},
        headers=admin.headers,
    )
    assert_error(add, 403, "INSUFFICIENT_ROLE")
    mine = await client.get(f"{API}/organizations/me", headers=admin.headers)
    assert [item["role"] for item in mine.json()] == ["member"]


async def test_promoted_member_gains_rights_on_the_very_next_request(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    member = roled_org.member
    refused = await client.patch(roled_org.url, json={"name": "Try"}, headers=member.headers)
    assert_error(refused, 403, "INSUFFICIENT_ROLE")
    await client.patch(
        roled_org.member_url(member.id), json={"role": "admin"}, headers=roled_org.owner.headers
    )
    allowed = await client.patch(roled_org.url, json={"name": "Done"}, headers=member.headers)
    assert allowed.status_code == 200


async def test_added_user_sees_the_organization_on_the_very_next_request(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    outsider = roled_org.outsider
    assert_error(
        await client.get(roled_org.url, headers=outsider.headers), 404, "ORGANIZATION_NOT_FOUND"
    )
    await client.post(
        f"{roled_org.url}/members",
        json={"user_id": str(outsider.id)},
        headers=roled_org.owner.headers,
    )
    assert (await client.get(roled_org.url, headers=outsider.headers)).status_code == 200
