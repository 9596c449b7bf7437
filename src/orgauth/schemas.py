"""Request and response models of the HTTP API.

Request models forbid unknown fields, so privileged fields (``is_superuser``, ``id``, ...)
are refused with 422 rather than silently ignored. Response models list exactly what a
client may see: never a password hash.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from orgauth.lengths import (
    API_KEY_NAME_MAX_LENGTH,
    DESCRIPTION_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    NAME_MAX_LENGTH,
    ORG_NAME_MAX_LENGTH,
    PERMISSION_MAX_LENGTH,
    ROLE_DESCRIPTION_MAX_LENGTH,
    ROLE_MAX_LENGTH,
    ROLE_NAME_MAX_LENGTH,
    SLUG_MAX_LENGTH,
    WEBHOOK_DESCRIPTION_MAX_LENGTH,
    WEBHOOK_EVENT_TYPE_MAX_LENGTH,
    WEBHOOK_URL_MAX_LENGTH,
)
from orgauth.roles import OrgRole
from orgauth.services.permissions import ROLE_KEY_PATTERN
from orgauth.validation import normalize_email
from orgauth.webhooks.outbox import MAX_ENDPOINT_EVENTS, SUBSCRIBABLE_EVENTS

# Passwords are bounded here only to keep hostile bodies cheap; the policy (8..128
# characters after normalisation) answers with WEAK_PASSWORD.
PASSWORD_INPUT_MAX_LENGTH = 1024
OPAQUE_TOKEN_MAX_LENGTH = 512
SLUG_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
ItemT = TypeVar("ItemT")


def _clean_name(value: str | None) -> str | None:
    if value is None:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must not contain control characters")
    value = value.strip()
    return value or None


def _valid_email(value: str) -> str:
    return normalize_email(value)


Email = Annotated[str, Field(max_length=EMAIL_MAX_LENGTH), AfterValidator(_valid_email)]
LoginEmail = Annotated[str, Field(max_length=EMAIL_MAX_LENGTH)]
Name = Annotated[str | None, Field(max_length=NAME_MAX_LENGTH), AfterValidator(_clean_name)]
Password = Annotated[str, Field(min_length=1, max_length=PASSWORD_INPUT_MAX_LENGTH)]
OpaqueToken = Annotated[str, Field(min_length=1, max_length=OPAQUE_TOKEN_MAX_LENGTH)]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=PASSWORD_INPUT_MAX_LENGTH)


class PatchModel(RequestModel):
    """A partial update: omitted fields stay as they are; ``NOT_NULL`` ones may change but
    never be set to null (422)."""

    NOT_NULL: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _no_null_for_required(self) -> Self:
        for field in self.NOT_NULL:
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


# --- users -------------------------------------------------------------------------


class UserRead(BaseModel):
    """A user as clients see it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    first_name: str | None
    last_name: str | None
    is_active: bool
    is_superuser: bool
    email_verified: bool
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _verified_from_row(cls, data: Any) -> Any:
        # A users row (the per-request check reads one) has the time, not the flag that
        # User.email_verified derives from it.
        if isinstance(data, Mapping) and "email_verified" not in data:
            return {**data, "email_verified": data.get("email_verified_at") is not None}
        return data


class RegisterRequest(RequestModel):
    email: Email
    password: Password
    first_name: Name = None
    last_name: Name = None


class UserUpdateMe(RequestModel):
    first_name: Name = None
    last_name: Name = None


class PasswordChangeRequest(RequestModel):
    current_password: Password
    new_password: Password


class EmailChangeRequest(RequestModel):
    new_email: Email
    # Optional in the schema: a missing or empty password is INVALID_PASSWORD (400) for an
    # account that has one, not a field error.
    password: Annotated[str, Field(max_length=PASSWORD_INPUT_MAX_LENGTH)] | None = None


class EmailChangeConfirm(RequestModel):
    token: OpaqueToken


# --- auth --------------------------------------------------------------------------


class LoginRequest(RequestModel):
    email: LoginEmail
    password: Password


class RefreshRequest(RequestModel):
    refresh_token: OpaqueToken


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    user: UserRead


class PasswordResetRequest(RequestModel):
    email: LoginEmail


class PasswordResetConfirm(RequestModel):
    token: OpaqueToken
    new_password: Password


class VerifyEmailRequest(RequestModel):
    email: LoginEmail  # a malformed address is an unknown one, not a 422


class VerifyEmailConfirm(RequestModel):
    token: OpaqueToken


class MessageResponse(BaseModel):
    message: str


class RevokedResponse(BaseModel):
    revoked: int


# --- sessions ----------------------------------------------------------------------


class SessionBase(BaseModel):
    """A signed-in device, as its owner and the admin API see it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    device_name: str | None
    device_type: str | None
    browser: str | None
    os: str | None
    ip_address: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime


class SessionRead(SessionBase):
    is_current: bool


class SessionList(BaseModel):
    sessions: list[SessionRead]
    total: int


# --- errors (for OpenAPI) ----------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    """Every orgauth error: ``{"detail": {"code", "message"}}``."""

    detail: ErrorDetail


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    """Request validation (422): FastAPI's shape, without echoing the submitted input."""

    detail: list[ValidationErrorItem]


# --- pagination --------------------------------------------------------------------

MAX_PAGE_SIZE = 100
MAX_SEARCH_LENGTH = 100


class Pagination(BaseModel):
    total: int
    page: int
    page_size: int
    total_pages: int
    has_next: bool
    has_prev: bool

    @classmethod
    def of(cls, *, total: int, page: int, page_size: int) -> Pagination:
        total_pages = (total + page_size - 1) // page_size if total else 0
        return cls(
            total=total,
            page=page,
            page_size=page_size,
            total_pages=total_pages,
            has_next=page < total_pages,
            has_prev=page > 1,
        )


class Page(BaseModel, Generic[ItemT]):
    """``{"data": [...], "pagination": {...}}``"""

    data: list[ItemT]
    pagination: Pagination


# --- organizations -----------------------------------------------------------------


def _clean_text(value: str | None) -> str | None:
    if value is None:
        return None
    if any((ord(ch) < 32 and ch not in "\n\t") or ord(ch) == 127 for ch in value):
        raise ValueError("must not contain control characters")
    return value.strip()


def _non_empty(value: str | None) -> str | None:
    if value is not None and not value:
        raise ValueError("must not be empty")
    return value


OrgName = Annotated[
    str,
    Field(min_length=1, max_length=ORG_NAME_MAX_LENGTH),
    AfterValidator(_clean_text),
    AfterValidator(_non_empty),
]
Slug = Annotated[str, Field(max_length=SLUG_MAX_LENGTH, pattern=SLUG_PATTERN)]
Description = Annotated[
    str | None, Field(max_length=DESCRIPTION_MAX_LENGTH), AfterValidator(_clean_text)
]


class OrganizationCreate(RequestModel):
    name: OrgName
    slug: Slug | None = None
    description: Description = None


class AdminOrganizationCreate(OrganizationCreate):
    owner_id: uuid.UUID | None = None


class OrganizationUpdate(PatchModel):
    NOT_NULL = ("name", "slug")

    name: OrgName | None = None
    slug: Slug | None = None
    description: Description = None


class OrganizationRead(BaseModel):
    id: uuid.UUID
    name: str
    slug: str
    description: str | None
    created_at: datetime
    updated_at: datetime
    member_count: int


#: A role key in a body or query: built in or one of the organization's custom roles (an
#: unknown key answers 422 ``UNKNOWN_ROLE``).
RoleRef = Annotated[str, Field(min_length=1, max_length=ROLE_MAX_LENGTH)]


class MyOrganizationRead(OrganizationRead):
    role: str
    permissions: list[str] = Field(description="Your effective permissions, sorted.")


class MemberRead(BaseModel):
    user_id: uuid.UUID
    email: str
    first_name: str | None
    last_name: str | None
    role: str
    permissions: list[str] = Field(description="The role's effective permissions, sorted.")
    joined_at: datetime


class MemberAdd(RequestModel):
    email: LoginEmail | None = None
    user_id: uuid.UUID | None = None
    role: RoleRef = OrgRole.MEMBER

    @model_validator(mode="after")
    def _exactly_one_identifier(self) -> MemberAdd:
        if (self.email is None) == (self.user_id is None):
            raise ValueError("give exactly one of email or user_id")
        return self


class MemberRoleUpdate(RequestModel):
    role: RoleRef


class OwnershipTransfer(RequestModel):
    user_id: uuid.UUID = Field(description="The member who becomes an owner.")


class OwnershipTransferRead(BaseModel):
    owner: MemberRead = Field(description="The new owner.")
    previous_owner: MemberRead | None = Field(
        description="Your membership afterwards (now admin); null for a superuser who is "
        "not a member."
    )


# --- roles and permissions ---------------------------------------------------------

RoleKey = Annotated[str, Field(max_length=ROLE_MAX_LENGTH, pattern=ROLE_KEY_PATTERN)]


def _role_name(value: str) -> str:
    cleaned = _clean_name(value)
    if not cleaned:
        raise ValueError("must not be empty")
    return cleaned


RoleName = Annotated[
    str, Field(min_length=1, max_length=ROLE_NAME_MAX_LENGTH), AfterValidator(_role_name)
]
RoleDescription = Annotated[
    str | None, Field(max_length=ROLE_DESCRIPTION_MAX_LENGTH), AfterValidator(_clean_text)
]
PermissionKeys = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=PERMISSION_MAX_LENGTH)]],
    Field(max_length=100),
]


class RoleCreate(RequestModel):
    key: RoleKey
    name: RoleName
    description: RoleDescription = None
    permissions: PermissionKeys


class RoleUpdate(PatchModel):
    NOT_NULL = ("name", "permissions")

    name: RoleName | None = None
    description: RoleDescription = None
    permissions: PermissionKeys | None = None


class RoleRead(BaseModel):
    key: str
    name: str
    description: str | None
    permissions: list[str]
    built_in: bool
    member_count: int
    created_at: datetime | None
    updated_at: datetime | None


class PermissionRead(BaseModel):
    key: str
    description: str
    built_in: bool


# --- invitations ---------------------------------------------------------------------

InvitationStatus = Literal["pending", "accepted", "declined", "revoked", "expired"]
InvitationDays = Annotated[int, Field(ge=1, le=30)]


class InvitationCreate(RequestModel):
    email: Email
    role: RoleRef = OrgRole.MEMBER
    expires_in_days: InvitationDays | None = None


class InvitationResend(RequestModel):
    expires_in_days: InvitationDays | None = None


class InvitationRead(BaseModel):
    """An invitation; never its token."""

    id: uuid.UUID
    organization_id: uuid.UUID
    organization_name: str
    email: str
    role: str
    status: InvitationStatus
    inviter_id: uuid.UUID | None
    created_at: datetime
    expires_at: datetime
    responded_at: datetime | None


class InvitationAnswer(RequestModel):
    """``{token}`` (from the email) or ``{invitation_id}`` (from ``/invitations/me``)."""

    token: OpaqueToken | None = None
    invitation_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.token is None) == (self.invitation_id is None):
            raise ValueError("give exactly one of token or invitation_id")
        return self


class InvitationAccepted(BaseModel):
    invitation: InvitationRead
    member: MemberRead


# --- audit log -----------------------------------------------------------------------


class AuditActorRead(BaseModel):
    type: str
    id: uuid.UUID | None


class AuditTargetRead(BaseModel):
    type: str
    id: uuid.UUID


class AuditContextRead(BaseModel):
    ip: str | None
    user_agent: str | None


class AuditEventRead(BaseModel):
    id: uuid.UUID
    occurred_at: datetime
    action: str
    organization_id: uuid.UUID | None
    actor: AuditActorRead
    impersonator_id: uuid.UUID | None
    targets: list[AuditTargetRead]
    context: AuditContextRead
    metadata: dict[str, Any]


class AuditPage(BaseModel):
    data: list[AuditEventRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


# --- API keys ----------------------------------------------------------------------

ApiKeyName = Annotated[
    str,
    Field(min_length=1, max_length=API_KEY_NAME_MAX_LENGTH),
    AfterValidator(_clean_text),
    AfterValidator(_non_empty),
]
ApiKeyPermissions = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=PERMISSION_MAX_LENGTH)]],
    Field(min_length=1, max_length=100),
]
ApiKeyStatus = Literal["active", "expired", "revoked"]


class ApiKeyCreate(RequestModel):
    name: ApiKeyName
    permissions: ApiKeyPermissions = Field(description="Catalog keys you hold; duplicates ignored.")
    expires_in_days: Annotated[int, Field(ge=1, le=365)] | None = Field(
        default=None, description="1-365; default 90. No key lives forever."
    )


class ApiKeyRead(BaseModel):
    """An API key; never the key itself (only its first 12 characters, ``start``)."""

    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    start: str
    permissions: list[str]
    created_by: uuid.UUID | None
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    status: ApiKeyStatus


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The key (`oa_live_…`): shown only in this answer.")


# --- webhooks ----------------------------------------------------------------------

WebhookUrlInput = Annotated[str, Field(min_length=1, max_length=WEBHOOK_URL_MAX_LENGTH)]
WebhookDescription = Annotated[
    str | None, Field(max_length=WEBHOOK_DESCRIPTION_MAX_LENGTH), AfterValidator(_clean_text)
]


def _event_types(values: list[str]) -> list[str]:
    unknown = sorted({value for value in values if value not in SUBSCRIBABLE_EVENTS})
    if unknown:
        raise ValueError(f"unknown event types: {', '.join(unknown)}")
    if len(set(values)) != len(values):
        raise ValueError("event types must be distinct")
    return values


WebhookEvents = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=WEBHOOK_EVENT_TYPE_MAX_LENGTH)]],
    Field(min_length=1, max_length=MAX_ENDPOINT_EVENTS),
    AfterValidator(_event_types),
]


class WebhookEndpointCreate(RequestModel):
    url: WebhookUrlInput
    events: WebhookEvents = Field(description="Event types, or `*` for every type.")
    description: WebhookDescription = None
    enabled: bool = True


class WebhookEndpointUpdate(PatchModel):
    NOT_NULL = ("url", "events", "enabled")

    url: WebhookUrlInput | None = None
    events: WebhookEvents | None = None
    description: WebhookDescription = None
    enabled: bool | None = None


class WebhookEndpointRead(BaseModel):
    """A webhook endpoint; never its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    organization_id: uuid.UUID
    url: str
    description: str | None
    events: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    secret_rotated_at: datetime | None


class WebhookEndpointWithSecret(WebhookEndpointRead):
    secret: str = Field(description="The signing secret (`whsec_…`): shown only in this answer.")


DeliveryStatus = Literal["pending", "succeeded", "failed"]


class WebhookDeliveryRead(BaseModel):
    id: str = Field(description="The `webhook-id` header: `msg_` + 32 hex.")
    event_id: str = Field(description="The payload's `id`: `evt_` + 32 hex.")
    event_type: str
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    payload: dict[str, Any] = Field(description="The JSON object sent.")


# --- admin -------------------------------------------------------------------------


class AdminUserCreate(RegisterRequest):
    is_active: bool = True
    is_superuser: bool = False
    email_verified: bool = True  # an admin vouches for the address; no email is sent


class AdminUserUpdate(PatchModel):
    NOT_NULL = ("email", "is_active", "is_superuser", "email_verified")

    first_name: Name = None
    last_name: Name = None
    email: Email | None = None
    is_active: bool | None = None
    is_superuser: bool | None = None
    email_verified: bool | None = None


class BulkAction(RequestModel):
    action: Literal["activate", "deactivate", "delete"]
    user_ids: list[uuid.UUID] = Field(min_length=1, max_length=100)


class BulkActionResult(BaseModel):
    affected: int
    skipped_ids: list[uuid.UUID]


class AdminSessionRead(SessionBase):
    user_id: uuid.UUID
    revoked_at: datetime | None
    is_active: bool


class UserStats(BaseModel):
    total: int
    active: int
    superusers: int


class OrganizationStats(BaseModel):
    total: int


class SessionStats(BaseModel):
    active: int


class DailyCount(BaseModel):
    date: date
    count: int


class AdminStats(BaseModel):
    users: UserStats
    organizations: OrganizationStats
    sessions: SessionStats
    registrations_last_30_days: list[DailyCount]
