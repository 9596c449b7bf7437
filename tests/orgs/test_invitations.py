"""Invitations, organization side and invitee side (docs/API.md "Invitations"): create,
list, resend, revoke, accept, decline and /invitations/me, with the email and the limits."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth.models import Invitation, Membership, User, utcnow
from orgauth.security.tokens import hash_token
from tests.support.http import ClientFactory, execute, fetch, plain_text
from tests.support.invitations import (
    INVITATION_KEYS,
    accept,
    decline,
    expire,
    invitation_count,
    invitation_emails,
    invitation_row,
    invitations_url,
    invite,
    invited,
    latest_invitation_token,
    mark_verified,
)
from tests.support.orgs import (
    MEMBER_KEYS,
    PAGINATION_KEYS,
    Account,
    Factory,
    RoledOrg,
    assert_error,
    assert_validation_error,
    audit_event,
    unique_email,
)
from tests.support.roles import create_role


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- create ------------------------------------------------------------------------------


async def test_an_admin_invites_and_the_email_carries_the_only_copy_of_the_token(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    db: AsyncEngine,
    email_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="orgauth")
    address = unique_email("guest")
    before = utcnow()

    response = await invite(client, roled_org.id, roled_org.admin, address.upper(), role="admin")

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == INVITATION_KEYS
    assert body["email"] == address  # normalised
    assert body["role"] == "admin"
    assert body["status"] == "pending"
    assert body["inviter_id"] == str(roled_org.admin.id)
    assert body["organization_id"] == str(roled_org.id)
    assert body["responded_at"] is None
    expires = _time(body["expires_at"])
    assert before + timedelta(days=7) - timedelta(seconds=5) <= expires
    assert expires <= utcnow() + timedelta(days=7)

    [message] = invitation_emails(email_dir, address)
    org_name = body["organization_name"]
    assert message["Subject"] == f"You have been invited to join {org_name}"
    text = plain_text(message)
    assert "Ada Admin" in text
    assert org_name in text
    assert "admin" in text
    assert expires.strftime("%Y-%m-%d") in text
    token = latest_invitation_token(email_dir, address)
    assert token.startswith("oa_inv_")
    assert len(token) == len("oa_inv_") + 43
    assert f"http://localhost:3000/accept-invitation?token={token}" in text

    row = await invitation_row(db, body["id"])
    assert row.token_hash == hash_token(token)
    dumped = " ".join(str(value) for value in row.model_dump().values())
    assert token not in dumped
    assert token not in response.text
    assert all(token not in record.getMessage() for record in caplog.records)
    assert all(token not in str(record.__dict__) for record in caplog.records)
    event = audit_event(caplog, "invitation.created")
    assert str(event.__dict__["invitation_id"]) == body["id"]


async def test_the_answer_is_the_same_whether_or_not_the_address_has_an_account(
    client: httpx.AsyncClient, roled_org: RoledOrg, factory: Factory, email_dir: Path
) -> None:
    known = (await factory.account()).email
    unknown = unique_email("nobody")

    answers = [await invite(client, roled_org.id, roled_org.owner, a) for a in (known, unknown)]

    assert [a.status_code for a in answers] == [201, 201]
    varying = {"id", "email", "created_at", "expires_at"}
    first, second = ({k: v for k, v in a.json().items() if k not in varying} for a in answers)
    assert first == second
    assert answers[0].headers.keys() == answers[1].headers.keys()
    assert len(invitation_emails(email_dir, known)) == len(invitation_emails(email_dir, unknown))


async def test_invitations_default_to_member_and_take_the_requested_lifetime(
    client: httpx.AsyncClient, roled_org: RoledOrg
) -> None:
    body = await invited(client, roled_org.id, roled_org.owner, unique_email(), expires_in_days=2)

    assert body["role"] == "member"
    lifetime = _time(body["expires_at"]) - _time(body["created_at"])
    assert abs(lifetime - timedelta(days=2)) < timedelta(seconds=5)


@pytest.mark.parametrize(
    "fields",
    [
        {"expires_in_days": 0},
        {"expires_in_days": 31},
        {"expires_in_days": 1.5},
        {"email": "not-an-email"},
        {"email": "a" * 320 + "@example.com"},
        {"role": "x" * 33},
        {"token_hash": "0" * 64},
    ],
)
async def test_malformed_invitations_are_field_errors(
    client: httpx.AsyncClient, roled_org: RoledOrg, db: AsyncEngine, fields: dict[str, Any]
) -> None:
    body = {"email": unique_email(), **fields}
    response = await client.post(
        invitations_url(roled_org.id), json=body, headers=roled_org.owner.headers
    )

    assert_validation_error(response)
    assert await invitation_count(db) == 0


async def test_unknown_roles_and_roles_beyond_the_inviter_are_refused(
    client: httpx.AsyncClient, roled_org: RoledOrg, db: AsyncEngine
) -> None:
    unknown = await invite(client, roled_org.id, roled_org.admin, unique_email(), role="ghost")
    owner = await invite(client, roled_org.id, roled_org.admin, unique_email(), role="owner")
    by_member = await invite(client, roled_org.id, roled_org.member, unique_email())
    by_stranger = await invite(client, roled_org.id, roled_org.outsider, unique_email())
    nowhere = await invite(client, uuid.uuid4(), roled_org.owner, unique_email())

    assert_error(unknown, 422, "UNKNOWN_ROLE")
    assert_error(owner, 403, "INSUFFICIENT_ROLE")
    assert_error(by_member, 403, "INSUFFICIENT_ROLE")
    assert_error(by_stranger, 404, "ORGANIZATION_NOT_FOUND")
    assert_error(nowhere, 404, "ORGANIZATION_NOT_FOUND")
    assert await invitation_count(db) == 0


async def test_a_custom_role_can_be_invited_with_and_then_cannot_be_deleted(
    client: httpx.AsyncClient, roled_org: RoledOrg, db: AsyncEngine
) -> None:
    await create_role(client, roled_org, "billing", ["organization:read", "members:read"])
    body = await invited(client, roled_org.id, roled_org.admin, unique_email(), role="billing")

    in_use = await client.delete(f"{roled_org.url}/roles/billing", headers=roled_org.owner.headers)
    assert_error(in_use, 409, "ROLE_IN_USE")

    await expire(db, body["id"])  # an expired invitation no longer holds the role
    deleted = await client.delete(f"{roled_org.url}/roles/billing", headers=roled_org.owner.headers)
    assert deleted.status_code == 204, deleted.text


async def test_a_member_cannot_be_invited(client: httpx.AsyncClient, roled_org: RoledOrg) -> None:
    response = await invite(client, roled_org.id, roled_org.owner, roled_org.member.email)

    assert_error(response, 409, "ALREADY_MEMBER")


async def test_inviting_again_revokes_the_previous_invitation_and_its_token(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    db: AsyncEngine,
    email_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    guest = await factory.account()
    first = await invited(client, roled_org.id, roled_org.owner, guest.email)
    old_token = latest_invitation_token(email_dir, guest.email)

    caplog.set_level(logging.INFO, logger="orgauth.audit")
    second = await invited(client, roled_org.id, roled_org.admin, guest.email, role="admin")
    new_token = latest_invitation_token(email_dir, guest.email)

    assert (await invitation_row(db, first["id"])).status == "revoked"
    assert audit_event(caplog, "invitation.revoked").__dict__["reason"] == "replaced"
    assert_error(await accept(client, guest, token=old_token), 400, "INVALID_INVITATION")
    accepted = await accept(client, guest, token=new_token)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["invitation"]["id"] == second["id"]
    assert await factory.role_of(roled_org.id, guest.id) == "admin"


async def test_the_database_holds_one_pending_invitation_per_address(
    client: httpx.AsyncClient, roled_org: RoledOrg, db: AsyncEngine
) -> None:
    body = await invited(client, roled_org.id, roled_org.owner, unique_email())
    row = await invitation_row(db, body["id"])
    twin = row.model_dump() | {"id": uuid.uuid4(), "token_hash": "f" * 64}

    with pytest.raises(IntegrityError):
        await execute(db, Invitation.__table__.insert().values(**twin))  # type: ignore[attr-defined]
    # Non-pending rows for the same address are fine (history).
    await execute(db, Invitation.__table__.insert().values(**twin | {"status": "revoked"}))  # type: ignore[attr-defined]


async def test_the_pending_limit_counts_live_invitations_but_not_the_replaced_one(
    make_app: ClientFactory, factory: Factory
) -> None:
    custom = await make_app(org_max_pending_invitations=2)
    owner = await factory.account(client=custom.client)
    org_id = (await Factory(factory.engine, custom.client).organization(owner))["id"]
    first = await invited(custom.client, org_id, owner, "one@example.com")
    await invited(custom.client, org_id, owner, "two@example.com")

    over = await invite(custom.client, org_id, owner, "three@example.com")
    again = await invite(custom.client, org_id, owner, "one@example.com")
    assert_error(over, 409, "INVITATION_LIMIT_REACHED")
    assert again.status_code == 201, again.text

    await expire(factory.engine, again.json()["id"])  # expired ones are not live
    assert (await invite(custom.client, org_id, owner, "three@example.com")).status_code == 201
    assert_error(
        await invite(custom.client, org_id, owner, "four@example.com"),
        409,
        "INVITATION_LIMIT_REACHED",
    )
    assert first["id"] != again.json()["id"]


async def test_the_member_limit_counts_live_invitations_as_seats(
    make_app: ClientFactory, factory: Factory
) -> None:
    custom = await make_app(org_max_members=3)
    owner = await factory.account(client=custom.client)
    org_id = uuid.UUID((await Factory(factory.engine, custom.client).organization(owner))["id"])
    await factory.add_membership(org_id, await factory.user(), "member")
    seat = await invited(custom.client, org_id, owner, "seat@example.com")

    over = await invite(custom.client, org_id, owner, "late@example.com")
    replacing = await invite(custom.client, org_id, owner, "seat@example.com", role="admin")

    assert_error(over, 409, "MEMBER_LIMIT_REACHED")
    assert replacing.status_code == 201, replacing.text
    assert seat["id"] != replacing.json()["id"]


# --- list ----------------------------------------------------------------------------------


async def test_listing_pages_newest_first_and_filters_by_status(
    client: httpx.AsyncClient, roled_org: RoledOrg, db: AsyncEngine, email_dir: Path
) -> None:
    ids = [
        (await invited(client, roled_org.id, roled_org.owner, f"guest{i}@example.com"))["id"]
        for i in range(5)
    ]
    for offset, invitation_id in enumerate(ids):  # distinct, increasing creation times
        await execute(
            db,
            update(Invitation)
            .where(Invitation.id == uuid.UUID(invitation_id))
            .values(created_at=utcnow() - timedelta(minutes=10 - offset)),
        )
    await expire(db, ids[0])
    revoked = await client.post(
        f"{invitations_url(roled_org.id)}/{ids[1]}/revoke", headers=roled_org.owner.headers
    )
    assert revoked.status_code == 200

    async def listed(**params: Any) -> dict[str, Any]:
        response = await client.get(
            invitations_url(roled_org.id), params=params, headers=roled_org.admin.headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    everything = await listed()
    assert [item["id"] for item in everything["data"]] == ids[::-1]
    assert set(everything["pagination"]) == PAGINATION_KEYS
    assert everything["pagination"]["total"] == 5
    second_page = await listed(page=2, limit=2)
    assert [item["id"] for item in second_page["data"]] == [ids[2], ids[1]]
    assert [i["id"] for i in (await listed(status="pending"))["data"]] == ids[:1:-1]
    assert [i["id"] for i in (await listed(status="expired"))["data"]] == [ids[0]]
    assert [i["status"] for i in (await listed(status="expired"))["data"]] == ["expired"]
    assert [i["id"] for i in (await listed(status="revoked"))["data"]] == [ids[1]]
    assert (await listed(status="accepted"))["data"] == []

    assert_validation_error(
        await client.get(
            invitations_url(roled_org.id),
            params={"status": "lost"},
            headers=roled_org.owner.headers,
        )
    )
    assert_error(
        await client.get(invitations_url(roled_org.id), headers=roled_org.member.headers),
        403,
        "INSUFFICIENT_ROLE",
    )
    assert_error(
        await client.get(invitations_url(roled_org.id), headers=roled_org.outsider.headers),
        404,
        "ORGANIZATION_NOT_FOUND",
    )


# --- resend and revoke ---------------------------------------------------------------------


async def test_resend_gives_a_new_token_renews_the_expiry_and_changes_the_inviter(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    db: AsyncEngine,
    email_dir: Path,
) -> None:
    guest = await factory.account()
    body = await invited(client, roled_org.id, roled_org.owner, guest.email)
    old_token = latest_invitation_token(email_dir, guest.email)
    await expire(db, body["id"])

    response = await client.post(
        f"{invitations_url(roled_org.id)}/{body['id']}/resend",
        json={"expires_in_days": 3},
        headers=roled_org.admin.headers,
    )

    assert response.status_code == 200, response.text
    resent = response.json()
    assert resent["id"] == body["id"]
    assert resent["status"] == "pending"
    assert resent["inviter_id"] == str(roled_org.admin.id)
    lifetime = _time(resent["expires_at"]) - utcnow()
    assert timedelta(days=3) - timedelta(seconds=10) < lifetime <= timedelta(days=3)
    new_token = latest_invitation_token(email_dir, guest.email)
    assert new_token != old_token
    assert_error(await accept(client, guest, token=old_token), 400, "INVALID_INVITATION")
    assert (await accept(client, guest, token=new_token)).status_code == 200

    no_body = await client.post(
        f"{invitations_url(roled_org.id)}/{body['id']}/resend", headers=roled_org.owner.headers
    )
    assert_error(no_body, 409, "INVITATION_NOT_PENDING")


async def test_resend_and_revoke_refuse_what_they_cannot_do(
    client: httpx.AsyncClient, roled_org: RoledOrg, factory: Factory, email_dir: Path
) -> None:
    owner_invite = await invited(
        client, roled_org.id, roled_org.owner, unique_email(), role="owner"
    )
    url = f"{invitations_url(roled_org.id)}/{owner_invite['id']}"

    assert_error(
        await client.post(f"{url}/resend", headers=roled_org.admin.headers),
        403,
        "INSUFFICIENT_ROLE",
    )
    assert_error(
        await client.post(f"{url}/revoke", headers=roled_org.member.headers),
        403,
        "INSUFFICIENT_ROLE",
    )
    other_org = await factory.organization(roled_org.outsider)
    foreign = f"{invitations_url(other_org['id'])}/{owner_invite['id']}"
    for action in ("resend", "revoke"):
        assert_error(
            await client.post(f"{foreign}/{action}", headers=roled_org.outsider.headers),
            404,
            "INVITATION_NOT_FOUND",
        )
        assert_error(
            await client.post(
                f"{invitations_url(roled_org.id)}/{uuid.uuid4()}/{action}",
                headers=roled_org.owner.headers,
            ),
            404,
            "INVITATION_NOT_FOUND",
        )

    revoked = await client.post(f"{url}/revoke", headers=roled_org.owner.headers)
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    again = await client.post(f"{url}/revoke", headers=roled_org.owner.headers)
    assert again.status_code == 200
    assert again.json() == revoked.json()
    assert_error(
        await client.post(f"{url}/resend", headers=roled_org.owner.headers),
        409,
        "INVITATION_NOT_PENDING",
    )

    guest = await factory.account()
    accepted_invite = await invited(client, roled_org.id, roled_org.owner, guest.email)
    token = latest_invitation_token(email_dir, guest.email)
    assert (await accept(client, guest, token=token)).status_code == 200
    assert_error(
        await client.post(
            f"{invitations_url(roled_org.id)}/{accepted_invite['id']}/revoke",
            headers=roled_org.owner.headers,
        ),
        409,
        "INVITATION_NOT_PENDING",
    )


async def test_a_revoked_invitation_cannot_be_accepted(
    client: httpx.AsyncClient, roled_org: RoledOrg, factory: Factory, email_dir: Path
) -> None:
    guest = await factory.account()
    body = await invited(client, roled_org.id, roled_org.owner, guest.email)
    token = latest_invitation_token(email_dir, guest.email)
    await client.post(
        f"{invitations_url(roled_org.id)}/{body['id']}/revoke", headers=roled_org.owner.headers
    )

    assert_error(await accept(client, guest, token=token), 400, "INVALID_INVITATION")
    assert await factory.role_of(roled_org.id, guest.id) is None


# --- accept --------------------------------------------------------------------------------


async def test_accepting_by_token_joins_with_the_role_and_verifies_the_address(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    db: AsyncEngine,
    email_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    guest = await factory.account()
    body = await invited(client, roled_org.id, roled_org.admin, guest.email, role="admin")
    token = latest_invitation_token(email_dir, guest.email)
    caplog.set_level(logging.INFO, logger="orgauth.audit")

    response = await accept(client, guest, token=token)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"invitation", "member"}
    assert answer["invitation"]["id"] == body["id"]
    assert answer["invitation"]["status"] == "accepted"
    assert answer["invitation"]["responded_at"] is not None
    assert set(answer["member"]) == MEMBER_KEYS
    assert answer["member"]["user_id"] == str(guest.id)
    assert answer["member"]["role"] == "admin"
    assert await factory.role_of(roled_org.id, guest.id) == "admin"
    [verified] = await fetch(db, select(User.email_verified_at).where(User.id == guest.id))
    assert verified[0] is not None
    added = audit_event(caplog, "member.added")
    assert added.__dict__["source"] == "invitation"
    audit_event(caplog, "invitation.accepted")

    assert_error(await accept(client, guest, token=token), 400, "INVALID_INVITATION")


async def test_accepting_by_id_needs_a_verified_address(
    client: httpx.AsyncClient, roled_org: RoledOrg, factory: Factory, db: AsyncEngine
) -> None:
    guest = await factory.account()
    body = await invited(client, roled_org.id, roled_org.owner, guest.email)

    refused = await accept(client, guest, invitation_id=body["id"])
    assert_error(refused, 403, "EMAIL_NOT_VERIFIED")
    assert (await invitation_row(db, body["id"])).status == "pending"

    await mark_verified(db, guest.id)
    accepted = await accept(client, guest, invitation_id=body["id"])
    assert accepted.status_code == 200, accepted.text
    assert await factory.role_of(roled_org.id, guest.id) == "member"


async def test_another_users_invitation_cannot_be_accepted_or_declined(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    db: AsyncEngine,
    email_dir: Path,
) -> None:
    guest = await factory.account()
    intruder = await factory.account()
    await mark_verified(db, intruder.id)
    body = await invited(client, roled_org.id, roled_org.owner, guest.email)
    token = latest_invitation_token(email_dir, guest.email)

    assert_error(await accept(client, intruder, token=token), 403, "INVITATION_EMAIL_MISMATCH")
    assert_error(
        await accept(client, intruder, invitation_id=body["id"]), 403, "INVITATION_EMAIL_MISMATCH"
    )
    assert_error(
        await decline(client, intruder, invitation_id=body["id"]), 403, "INVITATION_EMAIL_MISMATCH"
    )
    assert (await invitation_row(db, body["id"])).status == "pending"
    assert await factory.role_of(roled_org.id, intruder.id) is None
    assert (await accept(client, guest, token=token)).status_code == 200


async def test_an_existing_member_gets_already_member_and_the_invitation_stays(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    db: AsyncEngine,
    email_dir: Path,
) -> None:
    guest = await factory.account()
    body = await invited(client, roled_org.id, roled_org.owner, guest.email)
    token = latest_invitation_token(email_dir, guest.email)
    await factory.add_membership(roled_org.id, guest.id, "member")

    assert_error(await accept(client, guest, token=token), 409, "ALREADY_MEMBER")
    assert (await invitation_row(db, body["id"])).status == "pending"


@pytest.mark.parametrize("change", ["demoted", "deactivated", "deleted", "role_raised"])
async def test_the_inviter_is_checked_again_at_accept(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    db: AsyncEngine,
    email_dir: Path,
    change: str,
) -> None:
    await create_role(client, roled_org, "support", ["organization:read", "members:read"])
    guest = await factory.account()
    body = await invited(client, roled_org.id, roled_org.admin, guest.email, role="support")
    token = latest_invitation_token(email_dir, guest.email)
    if change == "demoted":
        await execute(
            db,
            update(Membership)
            .where(Membership.user_id == roled_org.admin.id)
            .values(role="member"),
        )
    elif change == "deactivated":
        await execute(db, update(User).where(User.id == roled_org.admin.id).values(is_active=False))
    elif change == "deleted":
        await execute(db, delete(User).where(User.id == roled_org.admin.id))
    else:  # the role now holds more than the admin inviter may hand out
        raised = await client.patch(
            f"{roled_org.url}/roles/support",
            json={"permissions": ["organization:read", "organization:delete"]},
            headers=roled_org.owner.headers,
        )
        assert raised.status_code == 200, raised.text

    response = await accept(client, guest, token=token)

    assert_error(response, 400, "INVALID_INVITATION")
    row = await invitation_row(db, body["id"])
    assert row.status == "revoked"
    assert row.inviter_id == (None if change == "deleted" else roled_org.admin.id)
    assert await factory.role_of(roled_org.id, guest.id) is None


async def test_a_superuser_inviter_stays_allowed(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    superuser: Account,
    factory: Factory,
    email_dir: Path,
) -> None:
    guest = await factory.account()
    await invited(client, roled_org.id, superuser, guest.email, role="owner")
    token = latest_invitation_token(email_dir, guest.email)

    response = await accept(client, guest, token=token)

    assert response.status_code == 200, response.text
    assert await factory.role_of(roled_org.id, guest.id) == "owner"


async def test_the_member_limit_is_checked_at_accept(
    make_app: ClientFactory, factory: Factory, db: AsyncEngine, email_dir: Path
) -> None:
    plain = await make_app()
    owner = await factory.account(client=plain.client)
    org_id = uuid.UUID((await Factory(db, plain.client).organization(owner))["id"])
    guest = await factory.account(client=plain.client)
    body = await invited(plain.client, org_id, owner, guest.email)
    token = latest_invitation_token(plain.email_dir, guest.email)
    limited = await make_app(org_max_members=2)
    await factory.add_membership(org_id, await factory.user(), "member")

    assert_error(await accept(limited.client, guest, token=token), 409, "MEMBER_LIMIT_REACHED")
    assert (await invitation_row(db, body["id"])).status == "pending"


async def test_expired_and_foreign_tokens_are_invalid(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    db: AsyncEngine,
    email_dir: Path,
) -> None:
    guest = await factory.account()
    body = await invited(client, roled_org.id, roled_org.owner, guest.email)
    token = latest_invitation_token(email_dir, guest.email)
    await expire(db, body["id"])

    assert_error(await accept(client, guest, token=token), 400, "INVALID_INVITATION")
    assert_error(await decline(client, None, token=token), 400, "INVALID_INVITATION")
    for wrong in (
        "oa_ev_" + token.removeprefix("oa_inv_"),
        "oa_rt_" + token.removeprefix("oa_inv_"),
        token + "x",
        token[:-1],
        "oa_inv_",
        " " + token,
    ):
        assert_error(await accept(client, guest, token=wrong), 400, "INVALID_INVITATION")
    assert_validation_error(await accept(client, guest, token="oa_inv_" + "a" * 600))
    assert_error(
        await accept(client, guest, invitation_id=str(uuid.uuid4())), 400, "INVALID_INVITATION"
    )


async def test_an_invitation_token_is_not_a_verification_token(
    client: httpx.AsyncClient, roled_org: RoledOrg, factory: Factory, email_dir: Path
) -> None:
    guest = await factory.account()
    await invited(client, roled_org.id, roled_org.owner, guest.email)
    token = latest_invitation_token(email_dir, guest.email)

    response = await client.post("/api/v1/auth/verify-email/confirm", json={"token": token})

    assert_error(response, 400, "INVALID_VERIFICATION_TOKEN")
    assert (await accept(client, guest, token=token)).status_code == 200


@pytest.mark.parametrize(
    "body", [{}, {"token": "oa_inv_x", "invitation_id": str(uuid.uuid4())}, {"id": "x"}]
)
async def test_accept_and_decline_need_exactly_one_of_token_or_id(
    client: httpx.AsyncClient, roled_org: RoledOrg, body: dict[str, Any]
) -> None:
    assert_validation_error(await accept(client, roled_org.member, **body))
    assert_validation_error(await decline(client, roled_org.member, **body))


async def test_accept_needs_an_account(client: httpx.AsyncClient) -> None:
    assert_error(await accept(client, None, token="oa_inv_x"), 401, "NOT_AUTHENTICATED")


# --- decline --------------------------------------------------------------------------------


async def test_declining_by_token_needs_no_account_and_ends_the_invitation(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    db: AsyncEngine,
    email_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    address = unique_email("declines")
    body = await invited(client, roled_org.id, roled_org.owner, address)
    token = latest_invitation_token(email_dir, address)
    caplog.set_level(logging.INFO, logger="orgauth.audit")

    response = await decline(client, None, token=token)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "declined"
    assert response.json()["id"] == body["id"]
    assert (await invitation_row(db, body["id"])).responded_at is not None
    audit_event(caplog, "invitation.declined")
    assert_error(await decline(client, None, token=token), 400, "INVALID_INVITATION")
    later = await factory.account(email=address)
    assert_error(await accept(client, later, token=token), 400, "INVALID_INVITATION")


async def test_declining_by_id_needs_the_invited_verified_account(
    client: httpx.AsyncClient, roled_org: RoledOrg, factory: Factory, db: AsyncEngine
) -> None:
    guest = await factory.account()
    body = await invited(client, roled_org.id, roled_org.owner, guest.email)

    assert_error(await decline(client, None, invitation_id=body["id"]), 401, "NOT_AUTHENTICATED")
    assert_error(await decline(client, guest, invitation_id=body["id"]), 403, "EMAIL_NOT_VERIFIED")
    await mark_verified(db, guest.id)
    declined = await decline(client, guest, invitation_id=body["id"])
    assert declined.status_code == 200
    assert declined.json()["status"] == "declined"
    assert_error(await decline(client, guest, invitation_id=body["id"]), 400, "INVALID_INVITATION")


# --- /invitations/me ------------------------------------------------------------------------


async def test_my_invitations_lists_live_ones_to_my_verified_address(
    client: httpx.AsyncClient, roled_org: RoledOrg, factory: Factory, db: AsyncEngine
) -> None:
    guest = await factory.account()
    other_owner = await factory.account()
    other_org = await factory.organization(other_owner, name="Second Org")
    first = await invited(client, roled_org.id, roled_org.owner, guest.email)
    second = await invited(client, other_org["id"], other_owner, guest.email)
    gone = await invited(client, roled_org.id, roled_org.owner, unique_email())
    await execute(
        db,
        update(Invitation)
        .where(Invitation.id == uuid.UUID(first["id"]))
        .values(created_at=utcnow() - timedelta(minutes=5)),
    )

    url = "/api/v1/invitations/me"
    assert_error(await client.get(url, headers=guest.headers), 403, "EMAIL_NOT_VERIFIED")
    await mark_verified(db, guest.id)
    listed = await client.get(url, headers=guest.headers)

    assert listed.status_code == 200, listed.text
    data = listed.json()["data"]
    assert [item["id"] for item in data] == [second["id"], first["id"]]
    assert data[0]["organization_name"] == "Second Org"
    assert gone["id"] not in listed.text

    await expire(db, second["id"])
    still = (await client.get(url, headers=guest.headers)).json()
    assert [item["id"] for item in still["data"]] == [first["id"]]
    assert still["pagination"]["total"] == 1
    assert_error(await client.get(url), 401, "NOT_AUTHENTICATED")


# --- hooks, limits, deletion -----------------------------------------------------------------


async def test_an_on_invitation_sent_hook_replaces_the_email(
    make_app: ClientFactory, factory: Factory
) -> None:
    custom = await make_app()
    received: list[Any] = []

    async def deliver(delivery: Any) -> None:
        received.append(delivery)

    custom.app.state.orgauth.hooks.on_invitation_sent.append(deliver)
    owner = await factory.account(client=custom.client)
    org_id = (await Factory(factory.engine, custom.client).organization(owner))["id"]
    guest = await factory.account(client=custom.client)

    body = await invited(custom.client, org_id, owner, guest.email)

    [delivery] = received
    assert delivery.invitation_id == uuid.UUID(body["id"])
    assert delivery.organization_id == uuid.UUID(org_id)
    assert delivery.email == guest.email
    assert delivery.url == f"http://localhost:3000/accept-invitation?token={delivery.token}"
    assert delivery.token not in repr(body)
    assert invitation_emails(custom.email_dir) == []
    accepted = await accept(custom.client, guest, token=delivery.token)
    assert accepted.status_code == 200, accepted.text


async def test_invitations_count_against_the_inviters_rate_limit(
    make_app: ClientFactory, factory: Factory
) -> None:
    custom = await make_app(rate_limit_enabled=True, rate_limit_invite="3/hour")
    owner = await factory.account(client=custom.client)
    org_id = (await Factory(factory.engine, custom.client).organization(owner))["id"]
    first = await invited(custom.client, org_id, owner, "a@example.com")
    await invited(custom.client, org_id, owner, "b@example.com")
    resent = await custom.client.post(
        f"{invitations_url(org_id)}/{first['id']}/resend", headers=owner.headers
    )
    assert resent.status_code == 200, resent.text

    over = await invite(custom.client, org_id, owner, "c@example.com")

    assert_error(over, 429, "RATE_LIMITED")
    assert int(over.headers["Retry-After"]) > 0
    colleague = await factory.account(client=custom.client)
    await factory.add_membership(uuid.UUID(org_id), colleague.id, "admin")
    assert (await invite(custom.client, org_id, colleague, "c@example.com")).status_code == 201


async def test_deleting_the_organization_deletes_its_invitations(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    db: AsyncEngine,
    email_dir: Path,
) -> None:
    guest = await factory.account()
    await invited(client, roled_org.id, roled_org.owner, guest.email)
    token = latest_invitation_token(email_dir, guest.email)

    deleted = await client.delete(roled_org.url, headers=roled_org.owner.headers)

    assert deleted.status_code == 204
    assert await invitation_count(db) == 0
    assert_error(await accept(client, guest, token=token), 400, "INVALID_INVITATION")


async def test_every_dead_token_gets_the_same_answer(
    client: httpx.AsyncClient,
    roled_org: RoledOrg,
    factory: Factory,
    db: AsyncEngine,
    email_dir: Path,
) -> None:
    guest = await factory.account()
    tokens = {}
    for state in ("accepted", "declined", "revoked", "expired", "replaced"):
        address = unique_email(state)
        body = await invited(client, roled_org.id, roled_org.owner, address)
        tokens[state] = latest_invitation_token(email_dir, address)
        if state == "declined":
            await decline(client, None, token=tokens[state])
        elif state == "revoked":
            await client.post(
                f"{invitations_url(roled_org.id)}/{body['id']}/revoke",
                headers=roled_org.owner.headers,
            )
        elif state == "expired":
            await expire(db, body["id"])
        elif state == "replaced":
            await invited(client, roled_org.id, roled_org.owner, address)
    accepted_by = await factory.account(email=unique_email("joiner"))
    joined = await invited(client, roled_org.id, roled_org.owner, accepted_by.email)
    await mark_verified(db, accepted_by.id)
    assert (await accept(client, accepted_by, invitation_id=joined["id"])).status_code == 200
    tokens["accepted"] = latest_invitation_token(email_dir, accepted_by.email)
    tokens["unknown"] = "oa_inv_" + "A" * 43

    answers = [await accept(client, guest, token=token) for token in tokens.values()]
    declines = [await decline(client, None, token=token) for token in tokens.values()]

    assert {(a.status_code, a.text) for a in answers} == {(400, answers[0].text)}
    assert {(d.status_code, d.text) for d in declines} == {(400, declines[0].text)}
    assert_error(answers[0], 400, "INVALID_INVITATION")


async def test_a_failing_email_backend_is_logged_without_the_token_and_the_invitation_stays(
    make_app: ClientFactory,
    factory: Factory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the email directory should be")
    custom = await make_app(email_file_dir=str(blocker))
    owner = await factory.account(client=custom.client)
    org_id = (await Factory(factory.engine, custom.client).organization(owner))["id"]

    with caplog.at_level(logging.ERROR, logger="orgauth.email"):
        response = await invite(custom.client, org_id, owner, unique_email())

    assert response.status_code == 201, response.text
    [failure] = [r for r in caplog.records if r.getMessage() == "invitation email failed"]
    assert failure.__dict__["invitation_id"] == response.json()["id"]
    assert "oa_inv_" not in caplog.text
    assert (await invitation_row(factory.engine, response.json()["id"])).status == "pending"
