"""SQLModel tables of orgauth (docs/ARCHITECTURE.md).

All tables live in SQLModel's shared metadata so host models can point foreign keys at
``users.id`` and ``organizations.id``; orgauth's migrations only ever look at the tables
listed in ``ORGAUTH_TABLES``. Every string column has an explicit length, every
constraint and index an explicit name (needed for SQLite batch migrations).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    Uuid,
    text,
)
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

from orgauth.lengths import (
    ACTION_MAX_LENGTH,
    ACTOR_TYPE_MAX_LENGTH,
    API_KEY_NAME_MAX_LENGTH,
    API_KEY_START_LENGTH,
    BROWSER_MAX_LENGTH,
    DESCRIPTION_MAX_LENGTH,
    DEVICE_NAME_MAX_LENGTH,
    DEVICE_TYPE_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    ENCRYPTED_SECRET_MAX_LENGTH,
    IP_MAX_LENGTH,
    NAME_MAX_LENGTH,
    ORG_NAME_MAX_LENGTH,
    OS_MAX_LENGTH,
    PASSWORD_HASH_MAX_LENGTH,
    REASON_MAX_LENGTH,
    ROLE_DESCRIPTION_MAX_LENGTH,
    ROLE_MAX_LENGTH,
    ROLE_NAME_MAX_LENGTH,
    SLUG_MAX_LENGTH,
    STATUS_MAX_LENGTH,
    TOKEN_HASH_LENGTH,
    TOKEN_PURPOSE_MAX_LENGTH,
    USER_AGENT_MAX_LENGTH,
    WEBHOOK_DESCRIPTION_MAX_LENGTH,
    WEBHOOK_ERROR_MAX_LENGTH,
    WEBHOOK_EVENT_TYPE_MAX_LENGTH,
    WEBHOOK_URL_MAX_LENGTH,
)
from orgauth.roles import OrgRole as OrgRole  # re-exported: orgauth.models.OrgRole


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored with its time zone and always read back as aware UTC.

    SQLite has no time zone type and hands back naive values; this keeps both databases
    returning the same aware datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


def _uuid_fk(target: str, *, name: str, primary_key: bool = False) -> Column[uuid.UUID]:
    """A non-null UUID foreign key whose rows go with their parent (ON DELETE CASCADE)."""
    return Column(
        Uuid(),
        ForeignKey(target, ondelete="CASCADE", name=name),
        nullable=False,
        primary_key=primary_key,
    )


class User(SQLModel, table=True):
    """An account. ``email`` is stored normalised (lower case): unique regardless of case."""

    __tablename__: ClassVar[str] = "users"
    __table_args__ = (
        Index("ix_users_email", "email", unique=True),
        # Admin user list, newest first (the default sort) without sorting the table.
        Index("ix_users_created_at_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(sa_column=Column(String(EMAIL_MAX_LENGTH), nullable=False))
    hashed_password: str = Field(
        sa_column=Column(String(PASSWORD_HASH_MAX_LENGTH), nullable=False), repr=False
    )
    first_name: str | None = Field(default=None, sa_column=Column(String(NAME_MAX_LENGTH)))
    last_name: str | None = Field(default=None, sa_column=Column(String(NAME_MAX_LENGTH)))
    is_active: bool = Field(default=True, sa_column=Column(Boolean(), nullable=False))
    is_superuser: bool = Field(default=False, sa_column=Column(Boolean(), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    password_changed_at: datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, nullable=False
    )
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    email_verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)

    @property
    def email_verified(self) -> bool:
        """True exactly when the current address has been proven (or vouched for)."""
        return self.email_verified_at is not None


class UserSession(SQLModel, table=True):
    """A signed-in device. Access tokens name it (``sid``); refresh tokens belong to it."""

    __tablename__: ClassVar[str] = "user_sessions"
    __table_args__ = (
        Index("ix_user_sessions_user_id_last_used_at", "user_id", "last_used_at"),
        Index("ix_user_sessions_expires_at", "expires_at"),
        # Admin session list, most recently used first.
        Index("ix_user_sessions_last_used_at_id", "last_used_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=_uuid_fk("users.id", name="fk_user_sessions_user_id"))
    device_name: str | None = Field(default=None, sa_column=Column(String(DEVICE_NAME_MAX_LENGTH)))
    device_type: str | None = Field(default=None, sa_column=Column(String(DEVICE_TYPE_MAX_LENGTH)))
    browser: str | None = Field(default=None, sa_column=Column(String(BROWSER_MAX_LENGTH)))
    os: str | None = Field(default=None, sa_column=Column(String(OS_MAX_LENGTH)))
    ip_address: str | None = Field(default=None, sa_column=Column(String(IP_MAX_LENGTH)))
    user_agent: str | None = Field(default=None, sa_column=Column(String(USER_AGENT_MAX_LENGTH)))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    last_used_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    revoked_reason: str | None = Field(default=None, sa_column=Column(String(REASON_MAX_LENGTH)))


class RefreshToken(SQLModel, table=True):
    """One issued refresh token, stored only as its SHA-256 hash.

    Rotated tokens are kept (``rotated_at`` set) until they expire so that presenting one
    again is recognised as theft and revokes the session.
    """

    __tablename__: ClassVar[str] = "refresh_tokens"
    __table_args__ = (
        Index("ix_refresh_tokens_token_hash", "token_hash", unique=True),
        Index("ix_refresh_tokens_session_id", "session_id"),
        Index("ix_refresh_tokens_expires_at", "expires_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    session_id: uuid.UUID = Field(
        sa_column=_uuid_fk("user_sessions.id", name="fk_refresh_tokens_session_id")
    )
    token_hash: str = Field(sa_column=Column(String(TOKEN_HASH_LENGTH), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    rotated_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class Organization(SQLModel, table=True):
    """A tenant. ``slug`` is unique and URL-safe."""

    __tablename__: ClassVar[str] = "organizations"
    __table_args__ = (Index("ix_organizations_slug", "slug", unique=True),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(sa_column=Column(String(ORG_NAME_MAX_LENGTH), nullable=False))
    slug: str = Field(sa_column=Column(String(SLUG_MAX_LENGTH), nullable=False))
    description: str | None = Field(default=None, sa_column=Column(String(DESCRIPTION_MAX_LENGTH)))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Membership(SQLModel, table=True):
    """A user's role in an organization; one row per (organization, user) pair.

    ``role`` is a role key: ``owner``, ``admin``, ``member`` (built in, defined in code) or
    the key of one of the organization's :class:`OrganizationRole` rows.
    """

    __tablename__: ClassVar[str] = "organization_members"
    __table_args__ = (
        Index("ix_organization_members_user_id", "user_id"),
        Index("ix_organization_members_organization_id_role", "organization_id", "role"),
        # Member pages in join order: read in index order and stop after one page.
        Index(
            "ix_organization_members_organization_id_joined_at",
            "organization_id",
            "joined_at",
            "user_id",
        ),
    )

    organization_id: uuid.UUID = Field(
        sa_column=_uuid_fk(
            "organizations.id", name="fk_organization_members_organization_id", primary_key=True
        )
    )
    user_id: uuid.UUID = Field(
        sa_column=_uuid_fk("users.id", name="fk_organization_members_user_id", primary_key=True)
    )
    role: str = Field(sa_column=Column(String(ROLE_MAX_LENGTH), nullable=False))
    joined_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class OrganizationRole(SQLModel, table=True):
    """A custom role of one organization: a key and the permissions it grants."""

    __tablename__: ClassVar[str] = "organization_roles"
    __table_args__ = (
        Index("ix_organization_roles_organization_id_key", "organization_id", "key", unique=True),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    organization_id: uuid.UUID = Field(
        sa_column=_uuid_fk("organizations.id", name="fk_organization_roles_organization_id")
    )
    key: str = Field(sa_column=Column(String(ROLE_MAX_LENGTH), nullable=False))
    name: str = Field(sa_column=Column(String(ROLE_NAME_MAX_LENGTH), nullable=False))
    description: str | None = Field(
        default=None, sa_column=Column(String(ROLE_DESCRIPTION_MAX_LENGTH))
    )
    permissions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class PasswordResetToken(SQLModel, table=True):
    """A single-use password reset token, stored only as its SHA-256 hash."""

    __tablename__: ClassVar[str] = "password_reset_tokens"
    __table_args__ = (
        Index("ix_password_reset_tokens_token_hash", "token_hash", unique=True),
        Index("ix_password_reset_tokens_user_id", "user_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(
        sa_column=_uuid_fk("users.id", name="fk_password_reset_tokens_user_id")
    )
    token_hash: str = Field(sa_column=Column(String(TOKEN_HASH_LENGTH), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class EmailVerificationToken(SQLModel, table=True):
    """A single-use token proving ``email`` (``purpose`` ``verify``; ``change`` is for the
    email-change flow), stored only as its SHA-256 hash."""

    __tablename__: ClassVar[str] = "email_verification_tokens"
    __table_args__ = (
        Index("ix_email_verification_tokens_token_hash", "token_hash", unique=True),
        Index("ix_email_verification_tokens_user_id", "user_id"),
        CheckConstraint(
            "purpose IN ('verify', 'change')", name="ck_email_verification_tokens_purpose"
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(
        sa_column=_uuid_fk("users.id", name="fk_email_verification_tokens_user_id")
    )
    email: str = Field(sa_column=Column(String(EMAIL_MAX_LENGTH), nullable=False))
    purpose: str = Field(sa_column=Column(String(TOKEN_PURPOSE_MAX_LENGTH), nullable=False))
    session_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(
            Uuid(),
            ForeignKey(
                "user_sessions.id",
                ondelete="SET NULL",
                name="fk_email_verification_tokens_session_id",
            ),
            nullable=True,
        ),
    )
    token_hash: str = Field(sa_column=Column(String(TOKEN_HASH_LENGTH), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


#: ``EmailVerificationToken.purpose``: prove the account's current address, or a new one.
PURPOSE_VERIFY = "verify"
PURPOSE_CHANGE = "change"


class Invitation(SQLModel, table=True):
    """An invitation of an email address into an organization with a role key.

    ``status`` is ``pending``, ``accepted``, ``declined`` or ``revoked``; a pending row
    whose ``expires_at`` has passed reads as ``expired`` (never stored). At most one
    pending row per (organization, email), held by a partial unique index. The token lives
    only in the email: the row keeps its SHA-256 hash.
    """

    __tablename__: ClassVar[str] = "organization_invitations"
    __table_args__ = (
        Index("ix_organization_invitations_token_hash", "token_hash", unique=True),
        Index(
            "ux_organization_invitations_live",
            "organization_id",
            "email",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_organization_invitations_organization_id_status_created_at",
            "organization_id",
            "status",
            "created_at",
        ),
        Index("ix_organization_invitations_email_status", "email", "status"),
        CheckConstraint(
            "status IN ('pending', 'accepted', 'declined', 'revoked')",
            name="ck_organization_invitations_status",
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    organization_id: uuid.UUID = Field(
        sa_column=_uuid_fk("organizations.id", name="fk_organization_invitations_organization_id")
    )
    email: str = Field(sa_column=Column(String(EMAIL_MAX_LENGTH), nullable=False))
    role: str = Field(sa_column=Column(String(ROLE_MAX_LENGTH), nullable=False))
    status: str = Field(sa_column=Column(String(STATUS_MAX_LENGTH), nullable=False))
    token_hash: str = Field(sa_column=Column(String(TOKEN_HASH_LENGTH), nullable=False))
    inviter_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(
            Uuid(),
            ForeignKey(
                "users.id", ondelete="SET NULL", name="fk_organization_invitations_inviter_id"
            ),
            nullable=True,
        ),
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    responded_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


#: ``Invitation.status`` values (``expired`` is derived, never stored).
INVITATION_PENDING = "pending"
INVITATION_ACCEPTED = "accepted"
INVITATION_DECLINED = "declined"
INVITATION_REVOKED = "revoked"
INVITATION_EXPIRED = "expired"


class OrganizationApiKey(SQLModel, table=True):
    """An organization's API key (docs/API.md, "API keys"). Only the SHA-256 of the key
    (``key_hash``, the lookup path) and its first 12 characters are stored. A key whose
    ``revoked_at`` is set or whose ``expires_at`` has passed no longer works; keys go with
    their organization."""

    __tablename__: ClassVar[str] = "organization_api_keys"
    __table_args__ = (
        Index("ix_organization_api_keys_key_hash", "key_hash", unique=True),
        Index(
            "ix_organization_api_keys_organization_id_created_at", "organization_id", "created_at"
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    organization_id: uuid.UUID = Field(
        sa_column=_uuid_fk("organizations.id", name="fk_organization_api_keys_organization_id")
    )
    name: str = Field(sa_column=Column(String(API_KEY_NAME_MAX_LENGTH), nullable=False))
    start: str = Field(sa_column=Column(String(API_KEY_START_LENGTH), nullable=False))
    key_hash: str = Field(sa_column=Column(String(TOKEN_HASH_LENGTH), nullable=False))
    permissions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_by: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(
            Uuid(),
            ForeignKey("users.id", ondelete="SET NULL", name="fk_organization_api_keys_created_by"),
            nullable=True,
        ),
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class AuditEvent(SQLModel, table=True):
    """One stored audit event (docs/API.md, "Audit log"). Append-only: orgauth never
    updates a row, and only pruning deletes. ``organization_id`` has no foreign key, so
    events outlive their organization."""

    __tablename__: ClassVar[str] = "audit_events"
    __table_args__ = (
        Index(
            "ix_audit_events_organization_id_occurred_at_id",
            "organization_id",
            "occurred_at",
            "id",
        ),
        Index("ix_audit_events_occurred_at_id", "occurred_at", "id"),
        Index("ix_audit_events_actor_id_occurred_at", "actor_id", "occurred_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    action: str = Field(sa_column=Column(String(ACTION_MAX_LENGTH), nullable=False))
    organization_id: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid(), nullable=True))
    actor_type: str = Field(sa_column=Column(String(ACTOR_TYPE_MAX_LENGTH), nullable=False))
    actor_id: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid(), nullable=True))
    impersonator_id: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid(), nullable=True))
    targets: list[dict[str, str]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    ip_address: str | None = Field(default=None, sa_column=Column(String(IP_MAX_LENGTH)))
    user_agent: str | None = Field(default=None, sa_column=Column(String(USER_AGENT_MAX_LENGTH)))
    # ``metadata`` is the column's name; the attribute cannot be (SQLAlchemy reserves it).
    event_metadata: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSON, nullable=False)
    )


class WebhookEndpoint(SQLModel, table=True):
    """An organization's webhook endpoint (docs/API.md, "Webhooks"). The signing secret is
    stored only encrypted (``secret_encrypted``, bound to the endpoint id); for a day after
    a rotation the previous one signs too."""

    __tablename__: ClassVar[str] = "webhook_endpoints"
    __table_args__ = (
        Index("ix_webhook_endpoints_organization_id_created_at", "organization_id", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    organization_id: uuid.UUID = Field(
        sa_column=_uuid_fk("organizations.id", name="fk_webhook_endpoints_organization_id")
    )
    url: str = Field(sa_column=Column(String(WEBHOOK_URL_MAX_LENGTH), nullable=False))
    description: str | None = Field(
        default=None, sa_column=Column(String(WEBHOOK_DESCRIPTION_MAX_LENGTH), nullable=True)
    )
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    enabled: bool = Field(default=True, sa_column=Column(Boolean, nullable=False))
    secret_encrypted: str = Field(
        sa_column=Column(String(ENCRYPTED_SECRET_MAX_LENGTH), nullable=False)
    )
    previous_secret_encrypted: str | None = Field(
        default=None, sa_column=Column(String(ENCRYPTED_SECRET_MAX_LENGTH), nullable=True)
    )
    previous_secret_expires_at: datetime | None = Field(
        default=None, sa_type=UTCDateTime, nullable=True
    )
    secret_rotated_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    created_by: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(
            Uuid(),
            ForeignKey("users.id", ondelete="SET NULL", name="fk_webhook_endpoints_created_by"),
            nullable=True,
        ),
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class WebhookDelivery(SQLModel, table=True):
    """One event to send to one endpoint: the outbox row, written in the transaction of
    the change (docs/ARCHITECTURE.md, "Webhooks").

    ``payload`` is the exact body, sent byte-identical on every attempt. ``url`` and
    ``secret_encrypted`` are the endpoint's when the event was enqueued, so a delivery
    outlives its endpoint (``endpoint_id`` then names an endpoint that is gone; the
    snapshot stays sealed for that id). ``locked_until`` and
    ``lock_token`` are a worker's lease on the row while it sends.
    """

    __tablename__: ClassVar[str] = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_id_created_at", "endpoint_id", "created_at"),
        CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed')", name="ck_webhook_deliveries_status"
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # No foreign key: the secret snapshot is sealed for this endpoint id, which must stay
    # readable after the endpoint goes with its organization (docs/ARCHITECTURE.md).
    endpoint_id: uuid.UUID = Field(sa_column=Column(Uuid(), nullable=False))
    organization_id: uuid.UUID = Field(sa_column=Column(Uuid(), nullable=False))
    event_id: uuid.UUID = Field(sa_column=Column(Uuid(), nullable=False))
    event_type: str = Field(sa_column=Column(String(WEBHOOK_EVENT_TYPE_MAX_LENGTH), nullable=False))
    payload: str = Field(sa_column=Column(Text, nullable=False))
    url: str = Field(sa_column=Column(String(WEBHOOK_URL_MAX_LENGTH), nullable=False))
    secret_encrypted: str = Field(
        sa_column=Column(String(ENCRYPTED_SECRET_MAX_LENGTH), nullable=False)
    )
    status: str = Field(sa_column=Column(String(STATUS_MAX_LENGTH), nullable=False))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    last_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    last_status_code: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    last_error: str | None = Field(
        default=None, sa_column=Column(String(WEBHOOK_ERROR_MAX_LENGTH), nullable=True)
    )
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    lock_token: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid(), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


#: ``WebhookDelivery.status`` values.
DELIVERY_PENDING = "pending"
DELIVERY_SUCCEEDED = "succeeded"
DELIVERY_FAILED = "failed"


ORGAUTH_MODELS: tuple[type[SQLModel], ...] = (
    User,
    UserSession,
    RefreshToken,
    Organization,
    Membership,
    OrganizationRole,
    PasswordResetToken,
    EmailVerificationToken,
    Invitation,
    OrganizationApiKey,
    AuditEvent,
    WebhookEndpoint,
    WebhookDelivery,
)
ORGAUTH_TABLES: frozenset[str] = frozenset(
    model.__table__.name  # type: ignore[attr-defined]
    for model in ORGAUTH_MODELS
)
