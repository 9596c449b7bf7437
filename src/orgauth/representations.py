"""The API's objects built from the services' views.

Routes answer with them and webhook payloads carry them (docs/API.md, "Webhooks"), so a
receiver sees exactly what the API shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from orgauth.schemas import ApiKeyRead, InvitationRead, MemberRead, OrganizationRead, RoleRead

if TYPE_CHECKING:
    from orgauth.services.api_keys import ApiKeyView
    from orgauth.services.invitations import InvitationView
    from orgauth.services.organizations import MemberView, OrgView
    from orgauth.services.roles import RoleView


def as_data(model: BaseModel) -> dict[str, Any]:
    """``model`` as JSON-ready data, as the API would serialise it."""
    return model.model_dump(mode="json")


def organization_read(view: OrgView) -> OrganizationRead:
    org = view.organization
    return OrganizationRead(
        id=org.id,
        name=org.name,
        slug=org.slug,
        description=org.description,
        created_at=org.created_at,
        updated_at=org.updated_at,
        member_count=view.member_count,
    )


def member_read(member: MemberView) -> MemberRead:
    return MemberRead(
        user_id=member.user_id,
        email=member.email,
        first_name=member.first_name,
        last_name=member.last_name,
        role=member.role,
        permissions=sorted(member.permissions),
        joined_at=member.joined_at,
    )


def role_read(view: RoleView) -> RoleRead:
    return RoleRead(
        key=view.key,
        name=view.name,
        description=view.description,
        permissions=view.permissions,
        built_in=view.built_in,
        member_count=view.member_count,
        created_at=view.created_at,
        updated_at=view.updated_at,
    )


def invitation_read(view: InvitationView) -> InvitationRead:
    invitation = view.invitation
    return InvitationRead(
        id=invitation.id,
        organization_id=invitation.organization_id,
        organization_name=view.organization_name,
        email=invitation.email,
        role=invitation.role,
        status=view.status,
        inviter_id=invitation.inviter_id,
        created_at=invitation.created_at,
        expires_at=invitation.expires_at,
        responded_at=invitation.responded_at,
    )


def api_key_read(view: ApiKeyView) -> ApiKeyRead:
    key = view.key
    return ApiKeyRead(
        id=key.id,
        organization_id=key.organization_id,
        name=key.name,
        start=key.start,
        permissions=key.permissions,
        created_by=key.created_by,
        created_at=key.created_at,
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
        status=view.status,
    )
