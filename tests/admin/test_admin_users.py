"""/admin/users (docs/API.md): list, create, read, update, delete, bulk actions."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from orgauth.models import Membership, OrgRole, User, UserSession, utcnow
from tests.support.http import PASSWORD, USER_KEYS, ClientFactory, assert_error, unique_email
from tests.support.orgs import (
    ADMIN,
    Account,
    Factory,
    RoledOrg,
    assert_validation_error,
    audit_event,
)

USERS = f"{ADMIN}/users"


async def _active_sessions(factory: Factory, user_id: uuid.UUID) -> int:
    return await factory.count(
        UserSession, UserSession.user_id == user_id, UserSession.revoked_at.is_(None)
    )


# --- listing -------------------------------------------------------------------------


@pytest.fixture
async def people(factory: Factory) -> dict[str, uuid.UUID]:
    """Four regular users created on different days (oldest first: ann, bob, cat, dan)."""
    now = utcnow()
    spec = {
        "bob": ("bob@example.com", "Bob", "Young", 3),
        "ann": ("ann@example.com", "Ann", "Zed", 4),
        "dan": ("dan@example.com", "Dan", "Adams", 1),
        "cat": ("cat@example.com", "Cat", None, 2),
    }
    return {
        key: await factory.user(
            email=email, first_name=first, last_name=last, created_at=now - timedelta(days=age)
        )
        for key, (email, first, last, age) in spec.items()
    }


async def _list(client: httpx.AsyncClient, superuser: Account, **params: Any) -> dict[str, Any]:
    response = await client.get(USERS, params=params, headers=superuser.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_list_returns_users_newest_first_by_default(
    client: httpx.AsyncClient, superuser: Account, people: dict[str, uuid.UUID]
) -> None:
    body = await _list(client, superuser)
    assert all(set(item) == USER_KEYS for item in body["data"])
    assert "hashed_password" not in str(body)
    ids = [item["id"] for item in body["data"]]
    # The superuser was created just now; then dan (1 day), cat, bob, ann (4 days).
    expected = [superuser.id, people["dan"], people["cat"], people["bob"], people["ann"]]
    assert ids == [str(i) for i in expected]
    assert body["pagination"] == {
        "total": 5,
        "page": 1,
        "page_size": 20,
        "total_pages": 1,
        "has_next": False,
        "has_prev": False,
    }


@pytest.mark.parametrize(
    ("sort_by", "sort_order", "order"),
    [
        ("created_at", "asc", ["ann", "bob", "cat", "dan"]),
        ("created_at", "desc", ["dan", "cat", "bob", "ann"]),
        ("email", "asc", ["ann", "bob", "cat", "dan"]),
        ("email", "desc", ["dan", "cat", "bob", "ann"]),
        # Users without a last name come last in both directions.
        ("last_name", "asc", ["dan", "bob", "ann", "cat"]),
        ("last_name", "desc", ["ann", "bob", "dan", "cat"]),
    ],
)
async def test_list_sorts_by_allowed_fields_in_both_directions(
    client: httpx.AsyncClient,
    superuser: Account,
    people: dict[str, uuid.UUID],
    sort_by: str,
    sort_order: str,
    order: list[str],
) -> None:
    body = await _list(
        client, superuser, sort_by=sort_by, sort_order=sort_order, is_superuser="false"
    )
    assert [item["id"] for item in body["data"]] == [str(people[k]) for k in order]


async def test_sort_order_alone_applies_to_created_at(
    client: httpx.AsyncClient, superuser: Account, people: dict[str, uuid.UUID]
) -> None:
    body = await _list(client, superuser, sort_order="asc", is_superuser="false")
    assert [item["id"] for item in body["data"]] == [
        str(people[k]) for k in ("ann", "bob", "cat", "dan")
    ]


async def test_list_pages_through_users_without_overlap(
    client: httpx.AsyncClient, superuser: Account, people: dict[str, uuid.UUID]
) -> None:
    seen: list[str] = []
    for page in (1, 2, 3):
        body = await _list(client, superuser, page=page, limit=2)
        assert body["pagination"]["total_pages"] == 3
        seen.extend(item["id"] for item in body["data"])
    assert len(seen) == len(set(seen)) == 5


@pytest.fixture
async def odd_people(factory: Factory) -> dict[str, uuid.UUID]:
    return {
        "percent": await factory.user(email="pct@example.com", first_name="100%"),
        "underscore": await factory.user(email="snake_case@example.com"),
        "quote": await factory.user(email="conan@example.com", last_name="O'Brien"),
        "plain": await factory.user(email="plain@example.com", first_name="Zoë", last_name="Q"),
    }


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("%", {"percent"}),
        ("_", {"underscore"}),
        ("'", {"quote"}),
        ("O'BRIEN", {"quote"}),
        ("SNAKE", {"underscore"}),
        ("plain@", {"plain"}),
        ("100", {"percent"}),
        ("Zoë", {"plain"}),
        ("%%", set()),
        ("no-such-person", set()),
    ],
)
async def test_search_matches_email_and_names_literally(
    client: httpx.AsyncClient,
    superuser: Account,
    odd_people: dict[str, uuid.UUID],
    term: str,
    expected: set[str],
) -> None:
    body = await _list(client, superuser, search=term)
    assert {item["id"] for item in body["data"]} == {str(odd_people[k]) for k in expected}
    assert body["pagination"]["total"] == len(expected)


async def test_filters_by_active_and_superuser_flags(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    inactive = await factory.user(is_active=False)
    other_root = await factory.user(is_superuser=True)
    regular = await factory.user()

    async def ids(**params: Any) -> set[str]:
        return {item["id"] for item in (await _list(client, superuser, **params))["data"]}

    assert await ids(is_active="false") == {str(inactive)}
    assert await ids(is_active="true") == {str(superuser.id), str(other_root), str(regular)}
    assert await ids(is_superuser="true") == {str(superuser.id), str(other_root)}
    assert await ids(is_superuser="false", is_active="true") == {str(regular)}


# --- create --------------------------------------------------------------------------


async def test_create_user_returns_201_and_the_user_can_sign_in(
    client: httpx.AsyncClient,
    factory: Factory,
    superuser: Account,
    caplog: pytest.LogCaptureFixture,
) -> None:
    email = unique_email("created")
    response = await client.post(
        USERS,
        json={
            "email": email.upper(),
            "password": PASSWORD,
            "first_name": "Cre",
            "last_name": "Ated",
        },
        headers=superuser.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == USER_KEYS
    assert body["email"] == email
    assert (body["is_active"], body["is_superuser"]) == (True, False)
    token, _ = await factory.login(email)
    assert token
    event = audit_event(caplog, "admin.user_created")
    assert (event.actor_id, event.user_id) == (str(superuser.id), body["id"])
    assert "password" not in vars(event)


async def test_create_inactive_superuser_as_asked(
    client: httpx.AsyncClient, superuser: Account
) -> None:
    response = await client.post(
        USERS,
        json={
            "email": unique_email(),
            "password": PASSWORD,
            "is_active": False,
            "is_superuser": True,
        },
        headers=superuser.headers,
    )
    assert response.status_code == 201, response.text
    assert (response.json()["is_active"], response.json()["is_superuser"]) == (False, True)


async def test_create_with_a_taken_email_is_409_whatever_the_case(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    await factory.user(email="taken@example.com")
    response = await client.post(
        USERS, json={"email": "TAKEN@Example.com", "password": PASSWORD}, headers=superuser.headers
    )
    assert_error(response, 409, "EMAIL_TAKEN")


@pytest.mark.parametrize("password", ["password", "short", "taken-by-me@example.com", "a" * 129])
async def test_create_with_a_weak_password_is_422(
    client: httpx.AsyncClient, factory: Factory, superuser: Account, password: str
) -> None:
    response = await client.post(
        USERS,
        json={"email": "taken-by-me@example.com", "password": password},
        headers=superuser.headers,
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    if isinstance(detail, dict):
        assert detail["code"] == "WEAK_PASSWORD"
    assert await factory.count(User, User.email == "taken-by-me@example.com") == 0


@pytest.mark.parametrize(
    "extra",
    [
        {"id": "00000000-0000-4000-8000-000000000000"},
        {"hashed_password": "x"},
        {"role": "owner"},
        {"created_at": "2000-01-01T00:00:00+00:00"},
    ],
)
async def test_create_with_an_unknown_field_is_422(
    client: httpx.AsyncClient, superuser: Account, extra: dict[str, str]
) -> None:
    response = await client.post(
        USERS,
        json={"email": unique_email(), "password": PASSWORD, **extra},
        headers=superuser.headers,
    )
    assert_validation_error(response)


@pytest.mark.parametrize("email", ["not-an-email", "", "a@" + "b" * 320 + ".com"])
async def test_create_with_an_invalid_email_is_422(
    client: httpx.AsyncClient, superuser: Account, email: str
) -> None:
    response = await client.post(
        USERS, json={"email": email, "password": PASSWORD}, headers=superuser.headers
    )
    assert_validation_error(response)


# --- read ----------------------------------------------------------------------------


async def test_get_user(client: httpx.AsyncClient, factory: Factory, superuser: Account) -> None:
    user_id = await factory.user(email="reader@example.com", first_name="Rea")
    response = await client.get(f"{USERS}/{user_id}", headers=superuser.headers)
    assert response.status_code == 200
    assert response.json()["email"] == "reader@example.com"
    assert set(response.json()) == USER_KEYS


async def test_get_unknown_user_is_404(client: httpx.AsyncClient, superuser: Account) -> None:
    assert_error(
        await client.get(f"{USERS}/{uuid.uuid4()}", headers=superuser.headers),
        404,
        "USER_NOT_FOUND",
    )
    assert_validation_error(await client.get(f"{USERS}/nope", headers=superuser.headers))


# --- update --------------------------------------------------------------------------


async def test_patch_updates_names_email_and_flags(
    client: httpx.AsyncClient,
    factory: Factory,
    superuser: Account,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user_id = await factory.user(first_name="Old", last_name="Name")
    response = await client.patch(
        f"{USERS}/{user_id}",
        json={
            "first_name": "New",
            "last_name": None,
            "email": "Renamed@Example.com",
            "is_superuser": True,
        },
        headers=superuser.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["first_name"], body["last_name"], body["email"], body["is_superuser"]) == (
        "New",
        None,
        "renamed@example.com",
        True,
    )
    assert body["updated_at"] > body["created_at"]
    token, _ = await factory.login("renamed@example.com")
    assert token
    event = audit_event(caplog, "admin.user_updated")
    assert event.fields == ["email", "first_name", "is_superuser", "last_name"]


async def test_patch_to_a_taken_email_is_409(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    await factory.user(email="first@example.com")
    second = await factory.user(email="second@example.com")
    response = await client.patch(
        f"{USERS}/{second}", json={"email": "FIRST@example.com"}, headers=superuser.headers
    )
    assert_error(response, 409, "EMAIL_TAKEN")
    assert await factory.count(User, User.email == "second@example.com") == 1


async def test_null_for_a_required_field_is_refused(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    user_id = await factory.user(email="stays@example.com")
    for field in ("email", "is_active", "is_superuser"):
        response = await client.patch(
            f"{USERS}/{user_id}", json={field: None}, headers=superuser.headers
        )
        assert response.status_code == 422, field
    assert await factory.count(User, User.email == "stays@example.com") == 1


async def test_patch_with_an_unknown_field_is_422(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    user_id = await factory.user()
    for extra in ({"password": PASSWORD}, {"hashed_password": "x"}, {"id": str(uuid.uuid4())}):
        assert_validation_error(
            await client.patch(f"{USERS}/{user_id}", json=extra, headers=superuser.headers)
        )


async def test_patch_unknown_user_is_404(client: httpx.AsyncClient, superuser: Account) -> None:
    response = await client.patch(
        f"{USERS}/{uuid.uuid4()}", json={"first_name": "X"}, headers=superuser.headers
    )
    assert_error(response, 404, "USER_NOT_FOUND")


async def test_deactivation_signs_the_user_out_at_once(
    client: httpx.AsyncClient,
    factory: Factory,
    superuser: Account,
    caplog: pytest.LogCaptureFixture,
) -> None:
    victim = await factory.account()
    await factory.login(victim.email)  # a second session
    assert await _active_sessions(factory, victim.id) == 2
    assert (await client.get("/api/v1/users/me", headers=victim.headers)).status_code == 200
    response = await client.patch(
        f"{USERS}/{victim.id}", json={"is_active": False}, headers=superuser.headers
    )
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert_error(await client.get("/api/v1/users/me", headers=victim.headers), 401, "INVALID_TOKEN")
    assert await _active_sessions(factory, victim.id) == 0
    assert audit_event(caplog, "admin.user_updated").revoked_sessions == 2
    login = await client.post(
        "/api/v1/auth/login", json={"email": victim.email, "password": PASSWORD}
    )
    assert_error(login, 401, "INVALID_CREDENTIALS")


async def test_reactivated_user_signs_in_again_but_old_tokens_stay_dead(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    victim = await factory.account()
    await client.patch(f"{USERS}/{victim.id}", json={"is_active": False}, headers=superuser.headers)
    await client.patch(f"{USERS}/{victim.id}", json={"is_active": True}, headers=superuser.headers)
    assert_error(await client.get("/api/v1/users/me", headers=victim.headers), 401, "INVALID_TOKEN")
    token, _ = await factory.login(victim.email)
    me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200


@pytest.mark.parametrize("change", [{"is_active": False}, {"is_superuser": False}])
async def test_superuser_cannot_deactivate_or_demote_themself(
    client: httpx.AsyncClient, factory: Factory, superuser: Account, change: dict[str, bool]
) -> None:
    response = await client.patch(f"{USERS}/{superuser.id}", json=change, headers=superuser.headers)
    assert_error(response, 409, "SELF_ACTION_FORBIDDEN")
    me = await client.get("/api/v1/users/me", headers=superuser.headers)
    assert (me.json()["is_active"], me.json()["is_superuser"]) == (True, True)


async def test_superuser_may_edit_their_own_names(
    client: httpx.AsyncClient, superuser: Account
) -> None:
    response = await client.patch(
        f"{USERS}/{superuser.id}",
        json={"first_name": "Root", "is_active": True, "is_superuser": True},
        headers=superuser.headers,
    )
    assert response.status_code == 200
    assert response.json()["first_name"] == "Root"


async def test_promotion_and_demotion_take_effect_on_the_next_request(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    user = await factory.account()
    assert_error(await client.get(USERS, headers=user.headers), 403, "SUPERUSER_REQUIRED")
    await client.patch(f"{USERS}/{user.id}", json={"is_superuser": True}, headers=superuser.headers)
    assert (await client.get(USERS, headers=user.headers)).status_code == 200
    await client.patch(
        f"{USERS}/{user.id}", json={"is_superuser": False}, headers=superuser.headers
    )
    assert_error(await client.get(USERS, headers=user.headers), 403, "SUPERUSER_REQUIRED")


async def test_another_superuser_can_demote_this_one(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    other = await factory.superuser()
    response = await client.patch(
        f"{USERS}/{superuser.id}", json={"is_superuser": False}, headers=other.headers
    )
    assert response.status_code == 200
    assert_error(await client.get(USERS, headers=superuser.headers), 403, "SUPERUSER_REQUIRED")


# --- delete --------------------------------------------------------------------------


async def test_delete_removes_the_user_with_sessions_and_memberships(
    client: httpx.AsyncClient,
    factory: Factory,
    superuser: Account,
    roled_org: RoledOrg,
    caplog: pytest.LogCaptureFixture,
) -> None:
    victim = roled_org.member
    response = await client.delete(f"{USERS}/{victim.id}", headers=superuser.headers)
    assert response.status_code == 204
    assert await factory.count(User, User.id == victim.id) == 0
    assert await factory.count(UserSession, UserSession.user_id == victim.id) == 0
    assert await factory.count(Membership, Membership.user_id == victim.id) == 0
    assert_error(await client.get("/api/v1/users/me", headers=victim.headers), 401, "INVALID_TOKEN")
    assert_error(
        await client.get(f"{USERS}/{victim.id}", headers=superuser.headers), 404, "USER_NOT_FOUND"
    )
    assert audit_event(caplog, "admin.user_deleted").user_id == str(victim.id)


async def test_deleting_yourself_is_409(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    response = await client.delete(f"{USERS}/{superuser.id}", headers=superuser.headers)
    assert_error(response, 409, "SELF_ACTION_FORBIDDEN")
    assert await factory.count(User, User.id == superuser.id) == 1


async def test_deleting_the_last_owner_of_an_organization_with_members_is_409(
    client: httpx.AsyncClient, factory: Factory, superuser: Account, roled_org: RoledOrg
) -> None:
    response = await client.delete(f"{USERS}/{roled_org.owner.id}", headers=superuser.headers)
    assert_error(response, 409, "LAST_OWNER")
    assert await factory.count(User, User.id == roled_org.owner.id) == 1
    assert len(await factory.roles(roled_org.id)) == 3


async def test_deleting_one_of_two_owners_keeps_the_organization(
    client: httpx.AsyncClient, factory: Factory, superuser: Account, roled_org: RoledOrg
) -> None:
    await factory.add_membership(roled_org.id, roled_org.outsider.id, OrgRole.OWNER)
    response = await client.delete(f"{USERS}/{roled_org.owner.id}", headers=superuser.headers)
    assert response.status_code == 204
    assert await factory.roles(roled_org.id) == {
        roled_org.admin.id: "admin",
        roled_org.member.id: "member",
        roled_org.outsider.id: "owner",
    }


async def test_deleting_the_sole_member_owner_deletes_the_empty_organization(
    client: httpx.AsyncClient,
    factory: Factory,
    superuser: Account,
    caplog: pytest.LogCaptureFixture,
) -> None:
    loner = await factory.account()
    solo = await factory.organization(loner, name="Solo")
    shared_owner = await factory.account()
    shared = await factory.organization(shared_owner, name="Shared")
    await factory.add_membership(uuid.UUID(shared["id"]), loner.id, OrgRole.MEMBER)
    response = await client.delete(f"{USERS}/{loner.id}", headers=superuser.headers)
    assert response.status_code == 204
    assert await factory.organization_row(uuid.UUID(solo["id"])) is None
    assert await factory.organization_row(uuid.UUID(shared["id"])) is not None
    assert await factory.roles(uuid.UUID(shared["id"])) == {shared_owner.id: "owner"}
    assert audit_event(caplog, "admin.user_deleted").organizations_deleted == 1


async def test_delete_unknown_user_is_404(client: httpx.AsyncClient, superuser: Account) -> None:
    response = await client.delete(f"{USERS}/{uuid.uuid4()}", headers=superuser.headers)
    assert_error(response, 404, "USER_NOT_FOUND")


# --- bulk actions --------------------------------------------------------------------

BULK = f"{USERS}/bulk-action"


async def test_bulk_deactivate_skips_the_caller_and_unknown_ids(
    client: httpx.AsyncClient,
    factory: Factory,
    superuser: Account,
    caplog: pytest.LogCaptureFixture,
) -> None:
    targets = [await factory.account() for _ in range(3)]
    unknown = uuid.uuid4()
    ids = [str(t.id) for t in targets] + [str(superuser.id), str(unknown)]
    response = await client.post(
        BULK, json={"action": "deactivate", "user_ids": ids}, headers=superuser.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["affected"] == 3
    assert set(body["skipped_ids"]) == {str(superuser.id), str(unknown)}
    for target in targets:
        assert_error(
            await client.get("/api/v1/users/me", headers=target.headers), 401, "INVALID_TOKEN"
        )
        assert await _active_sessions(factory, target.id) == 0
    assert (await client.get(USERS, headers=superuser.headers)).status_code == 200
    event = audit_event(caplog, "admin.bulk_action")
    assert (event.action, event.affected, event.skipped) == ("deactivate", 3, 2)


async def test_bulk_activate(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    sleepers = [await factory.user(is_active=False) for _ in range(2)]
    awake = await factory.user()
    response = await client.post(
        BULK,
        json={"action": "activate", "user_ids": [str(u) for u in [*sleepers, awake]]},
        headers=superuser.headers,
    )
    assert response.status_code == 200
    assert response.json()["skipped_ids"] == []
    assert response.json()["affected"] == 3  # already-active users are matched too
    assert await factory.count(User, User.is_active.is_(False)) == 0


async def test_bulk_delete_respects_the_last_owner_rule(
    client: httpx.AsyncClient, factory: Factory, superuser: Account, roled_org: RoledOrg
) -> None:
    loner = await factory.account()
    solo = await factory.organization(loner)
    plain = await factory.user()
    ids = [roled_org.owner.id, roled_org.member.id, loner.id, plain, superuser.id]
    response = await client.post(
        BULK,
        json={"action": "delete", "user_ids": [str(i) for i in ids]},
        headers=superuser.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["affected"] == 3
    assert set(body["skipped_ids"]) == {str(roled_org.owner.id), str(superuser.id)}
    async with factory.engine.connect() as connection:
        remaining = set((await connection.execute(select(User.id))).scalars())
    assert roled_org.owner.id in remaining
    assert superuser.id in remaining
    assert not {roled_org.member.id, loner.id, plain} & remaining
    assert await factory.organization_row(uuid.UUID(solo["id"])) is None
    assert await factory.organization_row(roled_org.id) is not None


async def test_bulk_delete_of_every_owner_of_an_organization_with_members_keeps_them(
    client: httpx.AsyncClient, factory: Factory, superuser: Account, roled_org: RoledOrg
) -> None:
    co_owner = roled_org.outsider
    await factory.add_membership(roled_org.id, co_owner.id, OrgRole.OWNER)
    ids = [roled_org.owner.id, co_owner.id]  # each alone would be fine; together, not

    response = await client.post(
        BULK,
        json={"action": "delete", "user_ids": [str(i) for i in ids]},
        headers=superuser.headers,
    )

    assert response.status_code == 200, response.text
    assert response.json()["affected"] == 0
    assert set(response.json()["skipped_ids"]) == {str(i) for i in ids}
    assert await factory.owner_count(roled_org.id) == 2
    assert len(await factory.roles(roled_org.id)) == 4


async def test_bulk_delete_keeps_the_organizations_of_an_owner_it_keeps_back(
    client: httpx.AsyncClient, factory: Factory, superuser: Account, roled_org: RoledOrg
) -> None:
    # The owner of roled_org is kept back (its admin and member stay); a second
    # organization of that owner, whose only other member is deleted in the same batch,
    # keeps its owner and so must not be deleted as empty.
    owner = roled_org.owner
    side = await factory.organization(owner, name="Side project")
    helper = await factory.account()
    await factory.add_membership(uuid.UUID(side["id"]), helper.id, OrgRole.MEMBER)

    response = await client.post(
        BULK,
        json={"action": "delete", "user_ids": [str(owner.id), str(helper.id)]},
        headers=superuser.headers,
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"affected": 1, "skipped_ids": [str(owner.id)]}
    assert await factory.organization_row(uuid.UUID(side["id"])) is not None
    assert await factory.roles(uuid.UUID(side["id"])) == {owner.id: "owner"}


async def test_bulk_with_only_the_caller_affects_nobody(
    client: httpx.AsyncClient, superuser: Account
) -> None:
    response = await client.post(
        BULK,
        json={"action": "delete", "user_ids": [str(superuser.id), str(superuser.id)]},
        headers=superuser.headers,
    )
    assert response.status_code == 200
    assert response.json() == {"affected": 0, "skipped_ids": [str(superuser.id)]}


async def test_bulk_accepts_100_ids(
    client: httpx.AsyncClient, factory: Factory, superuser: Account
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(99)] + [str(await factory.user(is_active=False))]
    response = await client.post(
        BULK, json={"action": "activate", "user_ids": ids}, headers=superuser.headers
    )
    assert response.status_code == 200
    assert response.json()["affected"] == 1
    assert len(response.json()["skipped_ids"]) == 99


@pytest.mark.parametrize(
    "body",
    [
        {"action": "delete", "user_ids": []},
        {"action": "delete", "user_ids": [str(uuid.uuid4()) for _ in range(101)]},
        {"action": "promote", "user_ids": [str(uuid.uuid4())]},
        {"action": "delete", "user_ids": ["not-a-uuid"]},
        {"action": "delete"},
        {"action": "delete", "user_ids": [str(uuid.uuid4())], "force": True},
    ],
    ids=["empty", "101", "unknown-action", "bad-id", "no-ids", "extra-field"],
)
async def test_bulk_body_out_of_bounds_is_422(
    client: httpx.AsyncClient, superuser: Account, body: dict[str, Any]
) -> None:
    assert_validation_error(await client.post(BULK, json=body, headers=superuser.headers))


# --- first superuser from settings ---------------------------------------------------


async def test_first_superuser_from_settings_can_use_the_admin_api(
    make_app: ClientFactory, factory: Factory
) -> None:
    email = unique_email("first-root")
    custom = await make_app(first_superuser_email=email, first_superuser_password=PASSWORD)
    token, user = await factory.login(email, client=custom.client)
    assert user["is_superuser"] is True
    response = await custom.client.get(USERS, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert email in {item["email"] for item in response.json()["data"]}


# --- audit ---------------------------------------------------------------------------


async def test_every_admin_write_is_an_audit_event(
    client: httpx.AsyncClient,
    factory: Factory,
    superuser: Account,
    roled_org: RoledOrg,
    caplog: pytest.LogCaptureFixture,
) -> None:
    target = await factory.account()
    orgs = f"{ADMIN}/organizations"
    members = f"{orgs}/{roled_org.id}/members"
    writes: list[tuple[str, str, dict[str, Any] | None, str]] = [
        ("POST", USERS, {"email": unique_email(), "password": PASSWORD}, "admin.user_created"),
        ("PATCH", f"{USERS}/{target.id}", {"first_name": "T"}, "admin.user_updated"),
        ("DELETE", f"{USERS}/{target.id}/sessions", None, "admin.sessions_revoked"),
        (
            "POST",
            BULK,
            {"action": "activate", "user_ids": [str(target.id)]},
            "admin.bulk_action",
        ),
        ("POST", orgs, {"name": "Audited"}, "organization.created"),
        ("PATCH", f"{orgs}/{roled_org.id}", {"name": "Audited 2"}, "organization.updated"),
        ("POST", members, {"user_id": str(target.id)}, "member.added"),
        ("PATCH", f"{members}/{target.id}", {"role": "admin"}, "member.role_changed"),
        ("DELETE", f"{members}/{target.id}", None, "member.removed"),
        ("DELETE", f"{USERS}/{target.id}", None, "admin.user_deleted"),
        ("DELETE", f"{orgs}/{roled_org.id}", None, "organization.deleted"),
    ]
    for method, path, body, event_name in writes:
        caplog.clear()
        response = await client.request(method, path, json=body, headers=superuser.headers)
        assert response.status_code < 300, (path, response.text)
        event = audit_event(caplog, event_name)
        assert event.actor_id == str(superuser.id)
        assert event.levelname == "INFO"
        assert PASSWORD not in caplog.text
        assert superuser.access_token not in caplog.text
