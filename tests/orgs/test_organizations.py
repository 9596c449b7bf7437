"""Organizations (docs/API.md): create, list mine, read, update, delete."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

import httpx
import pytest

from orgauth.models import Membership
from tests.support.http import ClientFactory
from tests.support.orgs import (
    API,
    ORG_KEYS,
    Factory,
    RoledOrg,
    assert_error,
    assert_validation_error,
    audit_event,
)

SLUG_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
ORGS = f"{API}/organizations"


# --- create --------------------------------------------------------------------------


async def test_creator_becomes_the_only_owner(
    client: httpx.AsyncClient, factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    creator = await factory.account()
    response = await client.post(
        ORGS,
        json={"name": "Acme Corp", "description": "Rockets and anvils"},
        headers=creator.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == ORG_KEYS
    assert body["name"] == "Acme Corp"
    assert body["slug"] == "acme-corp"
    assert body["description"] == "Rockets and anvils"
    assert body["member_count"] == 1
    assert datetime.fromisoformat(body["created_at"]).utcoffset() is not None
    org_id = uuid.UUID(body["id"])
    assert await factory.roles(org_id) == {creator.id: "owner"}
    event = audit_event(caplog, "organization.created")
    assert event.organization_id == str(org_id)
    assert event.owner_id == str(creator.id)


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Acme Corp", "acme-corp"),
        ("Café Déjà Vu", "cafe-deja-vu"),
        ("  Hello,   World!!!  ", "hello-world"),
        ("Ünïcödé GmbH & Co. KG", "unicode-gmbh-co-kg"),
        ("R&D / Ops -- 2024", "r-d-ops-2024"),
        ("snake_case_name", "snake-case-name"),
        ("---", "org"),
        ("日本語の会社", "org"),
    ],
)
async def test_slug_is_derived_from_the_name(
    client: httpx.AsyncClient, factory: Factory, name: str, slug: str
) -> None:
    owner = await factory.account()
    response = await client.post(ORGS, json={"name": name}, headers=owner.headers)
    assert response.status_code == 201, response.text
    assert response.json()["slug"] == slug


async def test_derived_slug_of_a_long_name_fits_64_characters(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    owner = await factory.account()
    name = "Very Long Organization Name " * 3 + "x" * 16  # 100 characters
    assert len(name) == 100
    response = await client.post(ORGS, json={"name": name}, headers=owner.headers)
    assert response.status_code == 201, response.text
    slug = response.json()["slug"]
    assert len(slug) <= 64
    assert SLUG_RE.match(slug)


async def test_derived_slug_gets_a_suffix_when_taken_instead_of_failing(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    owner = await factory.account()
    first = await factory.organization(owner, name="Acme")
    second = await factory.organization(owner, name="ACME!")
    assert first["slug"] == "acme"
    assert second["slug"] != "acme"
    assert second["slug"].startswith("acme-")
    assert SLUG_RE.match(second["slug"])


@pytest.mark.parametrize("slug", ["a", "acme", "acme-corp-2", "123", "a" * 64, "a-b-c-d"])
async def test_explicit_valid_slug_is_kept(
    client: httpx.AsyncClient, factory: Factory, slug: str
) -> None:
    owner = await factory.account()
    response = await client.post(ORGS, json={"name": "X", "slug": slug}, headers=owner.headers)
    assert response.status_code == 201, response.text
    assert response.json()["slug"] == slug


@pytest.mark.parametrize(
    "slug",
    [
        "",
        "Acme",
        "acme_corp",
        "-acme",
        "acme-",
        "acme--corp",
        "ac me",
        "acme.corp",
        "café",
        "a" * 65,
        "acme\n",
    ],
)
async def test_explicit_invalid_slug_is_422(
    client: httpx.AsyncClient, factory: Factory, slug: str
) -> None:
    owner = await factory.account()
    response = await client.post(ORGS, json={"name": "X", "slug": slug}, headers=owner.headers)
    assert_validation_error(response)
    assert await factory.count(Membership) == 0


async def test_explicit_slug_taken_is_409(client: httpx.AsyncClient, factory: Factory) -> None:
    owner = await factory.account()
    other = await factory.account()
    await factory.organization(owner, slug="taken")
    response = await client.post(
        ORGS, json={"name": "Another", "slug": "taken"}, headers=other.headers
    )
    assert_error(response, 409, "SLUG_TAKEN")
    mine = await client.get(f"{ORGS}/me", headers=other.headers)
    assert mine.json() == []  # no half-created organization or membership


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "line\u0000break", "bell\u0007"])
async def test_invalid_name_is_422(client: httpx.AsyncClient, factory: Factory, name: str) -> None:
    owner = await factory.account()
    response = await client.post(ORGS, json={"name": name}, headers=owner.headers)
    assert_validation_error(response)


async def test_missing_name_is_422(client: httpx.AsyncClient, factory: Factory) -> None:
    owner = await factory.account()
    assert_validation_error(await client.post(ORGS, json={"slug": "x"}, headers=owner.headers))


async def test_name_of_100_characters_is_accepted(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    owner = await factory.account()
    response = await client.post(ORGS, json={"name": "n" * 100}, headers=owner.headers)
    assert response.status_code == 201, response.text


async def test_description_over_1000_characters_is_422(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    owner = await factory.account()
    response = await client.post(
        ORGS, json={"name": "X", "description": "d" * 1001}, headers=owner.headers
    )
    assert_validation_error(response)


async def test_creating_without_a_token_is_401(client: httpx.AsyncClient, db: object) -> None:
    response = await client.post(ORGS, json={"name": "Anonymous"})
    assert_error(response, 401, "NOT_AUTHENTICATED")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_users_cannot_create_organizations_when_disabled(
    make_app: ClientFactory,
) -> None:
    custom = await make_app(allow_user_org_creation=False)
    factory = Factory(_engine_of(custom.app), custom.client)
    user = await factory.account()
    response = await custom.client.post(ORGS, json={"name": "Nope"}, headers=user.headers)
    assert_error(response, 403, "ORG_CREATION_DISABLED")
    superuser = await factory.superuser()
    response = await custom.client.post(ORGS, json={"name": "Yes"}, headers=superuser.headers)
    assert response.status_code == 201, response.text


def _engine_of(app: object) -> object:
    return app.state.orgauth.engine  # type: ignore[attr-defined]


# --- my organizations ----------------------------------------------------------------


async def test_my_organizations_list_my_role_and_member_counts(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    mine = await factory.organization(roled_org.member, name="Zeta Mine")
    await factory.organization(roled_org.outsider, name="Not Mine")
    response = await client.get(f"{ORGS}/me", headers=roled_org.member.headers)
    assert response.status_code == 200
    items = response.json()
    assert all(set(item) == ORG_KEYS | {"role", "permissions"} for item in items)
    by_id = {item["id"]: item for item in items}
    assert set(by_id) == {str(roled_org.id), mine["id"]}
    assert by_id[str(roled_org.id)]["role"] == "member"
    assert by_id[str(roled_org.id)]["permissions"] == ["members:read", "organization:read"]
    assert "organization:delete" in by_id[mine["id"]]["permissions"]
    assert by_id[str(roled_org.id)]["member_count"] == 3
    assert by_id[mine["id"]]["role"] == "owner"
    assert by_id[mine["id"]]["member_count"] == 1


async def test_my_organizations_is_empty_for_a_new_user(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    user = await factory.account()
    response = await client.get(f"{ORGS}/me", headers=user.headers)
    assert response.status_code == 200
    assert response.json() == []


async def test_my_organizations_are_sorted_by_name(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    user = await factory.account()
    for name in ("charlie", "Alpha", "bravo"):
        await factory.organization(user, name=name)
    response = await client.get(f"{ORGS}/me", headers=user.headers)
    names = [item["name"] for item in response.json()]
    assert sorted(names, key=str.lower) == ["Alpha", "bravo", "charlie"]
    assert set(names) == {"Alpha", "bravo", "charlie"}


# --- read, update, delete ------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
async def test_every_member_reads_the_organization(
    client: httpx.AsyncClient, roled_org: RoledOrg, role: str
) -> None:
    response = await client.get(roled_org.url, headers=roled_org.by_role(role).headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == ORG_KEYS
    assert body["id"] == str(roled_org.id)
    assert body["member_count"] == 3


async def test_unknown_organization_is_404(client: httpx.AsyncClient, roled_org: RoledOrg) -> None:
    response = await client.get(f"{ORGS}/{uuid.uuid4()}", headers=roled_org.owner.headers)
    assert_error(response, 404, "ORGANIZATION_NOT_FOUND")


async def test_malformed_organization_id_is_422(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    response = await client.get(f"{ORGS}/not-a-uuid", headers=roled_org.owner.headers)
    assert_validation_error(response)


async def test_admin_updates_name_and_description(
    client: httpx.AsyncClient, roled_org: RoledOrg, caplog: pytest.LogCaptureFixture
) -> None:
    before = (await client.get(roled_org.url, headers=roled_org.admin.headers)).json()
    response = await client.patch(
        roled_org.url,
        json={"name": "  New Name  ", "description": "About us"},
        headers=roled_org.admin.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "New Name"
    assert body["description"] == "About us"
    assert body["slug"] == before["slug"]  # renaming never changes the slug
    assert body["member_count"] == 3
    assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(before["updated_at"])
    event = audit_event(caplog, "organization.updated")
    assert event.fields == ["description", "name"]
    assert event.actor_id == str(roled_org.admin.id)


async def test_owner_changes_the_slug(client: httpx.AsyncClient, roled_org: RoledOrg) -> None:
    response = await client.patch(
        roled_org.url, json={"slug": "brand-new"}, headers=roled_org.owner.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["slug"] == "brand-new"


async def test_changing_to_a_taken_slug_is_409_and_keeps_the_old_one(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    await factory.organization(roled_org.outsider, slug="occupied")
    response = await client.patch(
        roled_org.url, json={"slug": "occupied", "name": "Renamed"}, headers=roled_org.owner.headers
    )
    assert_error(response, 409, "SLUG_TAKEN")
    row = await factory.organization_row(roled_org.id)
    assert row is not None
    assert row["slug"] == roled_org.slug
    assert row["name"] != "Renamed"  # the whole change was rolled back


async def test_patch_with_its_own_slug_is_not_a_conflict(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    response = await client.patch(
        roled_org.url, json={"slug": roled_org.slug}, headers=roled_org.owner.headers
    )
    assert response.status_code == 200, response.text


async def test_description_can_be_cleared_but_name_cannot(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    await client.patch(roled_org.url, json={"description": "x"}, headers=roled_org.owner.headers)
    response = await client.patch(
        roled_org.url, json={"description": None}, headers=roled_org.owner.headers
    )
    assert response.status_code == 200
    assert response.json()["description"] is None
    for bad in (
        {"name": ""},
        {"name": "n" * 101},
        {"slug": "Bad Slug"},
        {"name": None},
        {"slug": None},
    ):
        assert_validation_error(
            await client.patch(roled_org.url, json=bad, headers=roled_org.owner.headers)
        )


async def test_empty_patch_changes_nothing(client: httpx.AsyncClient, roled_org: RoledOrg) -> None:
    before = (await client.get(roled_org.url, headers=roled_org.owner.headers)).json()
    response = await client.patch(roled_org.url, json={}, headers=roled_org.owner.headers)
    assert response.status_code == 200
    after = response.json()
    assert {k: after[k] for k in ("name", "slug", "description")} == {
        k: before[k] for k in ("name", "slug", "description")
    }


async def test_member_cannot_update(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg
) -> None:
    response = await client.patch(
        roled_org.url, json={"name": "Hijacked"}, headers=roled_org.member.headers
    )
    assert_error(response, 403, "INSUFFICIENT_ROLE")
    row = await factory.organization_row(roled_org.id)
    assert row is not None
    assert row["name"] != "Hijacked"


async def test_owner_deletes_the_organization_with_its_memberships(
    client: httpx.AsyncClient,
    factory: Factory,
    roled_org: RoledOrg,
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = await client.delete(roled_org.url, headers=roled_org.owner.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert await factory.organization_row(roled_org.id) is None
    assert await factory.count(Membership, Membership.organization_id == roled_org.id) == 0
    assert_error(
        await client.get(roled_org.url, headers=roled_org.owner.headers),
        404,
        "ORGANIZATION_NOT_FOUND",
    )
    assert (await client.get(f"{ORGS}/me", headers=roled_org.member.headers)).json() == []
    assert audit_event(caplog, "organization.deleted").organization_id == str(roled_org.id)


@pytest.mark.parametrize("role", ["admin", "member"])
async def test_only_owners_delete(
    client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg, role: str
) -> None:
    response = await client.delete(roled_org.url, headers=roled_org.by_role(role).headers)
    assert_error(response, 403, "INSUFFICIENT_ROLE")
    assert await factory.organization_row(roled_org.id) is not None
    assert len(await factory.roles(roled_org.id)) == 3


async def test_users_keep_their_accounts_when_the_organization_goes(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    await client.delete(roled_org.url, headers=roled_org.owner.headers)
    for account in (roled_org.admin, roled_org.member):
        assert (await client.get(f"{API}/users/me", headers=account.headers)).status_code == 200
