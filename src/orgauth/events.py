"""The one event pipeline (docs/ARCHITECTURE.md, "Events").

A change records its event once, with :func:`record`, inside the transaction that makes
the change: the event becomes an ``audit_events`` row of that transaction and, for the
organization events webhooks carry, the ``webhook_deliveries`` rows of the subscribed
endpoints (written as the transaction commits); once it has committed the event is also
logged on ``orgauth.audit`` with the same fields. A rolled-back change leaves none of
them. Refusals and failures, which change nothing, record and commit on their own.

Nothing secret ever enters an event: field names that would hold one are refused (a
programming error), and metadata values are bounded (docs/SECURITY.md, "Audit events").
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from orgauth.lengths import IP_MAX_LENGTH, USER_AGENT_MAX_LENGTH
from orgauth.models import AuditEvent, utcnow
from orgauth.services.context import ClientInfo
from orgauth.webhooks.outbox import OutboxEvent, enqueue, webhook_type

audit_logger = logging.getLogger("orgauth.audit")

MAX_METADATA_KEYS = 50
MAX_METADATA_LIST = 100
MAX_METADATA_STRING = 500
_FORBIDDEN_KEYS = frozenset(
    {
        "password",
        "token",
        "refresh_token",
        "access_token",
        "hash",
        "token_hash",
        "secret",
        "code",
        "recovery_code",
        "api_key",
    }
)
_PENDING = "orgauth_pending_events"
_ROWS = "orgauth_pending_audit_rows"
# Attributes a LogRecord has of its own: a metadata key among them (``name``) is logged as
# ``meta_<key>``, since logging refuses to overwrite them.
_RESERVED_LOG_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, None, None, None).__dict__) | {
    "message",
    "asctime",
}
_OUTBOX = "orgauth_pending_webhooks"


@dataclass(frozen=True)
class EventActor:
    """Who caused an event: a ``user`` (``impersonator_id`` set while a superuser acts as
    them), an ``api_key``, the ``system`` (CLI, periodic jobs) or ``anonymous``."""

    type: str
    id: uuid.UUID | None = None
    impersonator_id: uuid.UUID | None = None

    @classmethod
    def user(cls, user_id: uuid.UUID | None) -> EventActor:
        return cls("user", user_id) if user_id is not None else ANONYMOUS


SYSTEM = EventActor("system")
ANONYMOUS = EventActor("anonymous")


@dataclass(frozen=True)
class Target:
    """What an event is about: ``{type, id}``."""

    type: str
    id: uuid.UUID

    def as_json(self) -> dict[str, str]:
        return {"type": self.type, "id": str(self.id)}


def user(user_id: uuid.UUID) -> Target:
    return Target("user", user_id)


def session(session_id: uuid.UUID) -> Target:
    return Target("session", session_id)


def organization(org_id: uuid.UUID) -> Target:
    return Target("organization", org_id)


def invitation(invitation_id: uuid.UUID) -> Target:
    return Target("invitation", invitation_id)


def role(role_id: uuid.UUID) -> Target:
    return Target("role", role_id)


def api_key(key_id: uuid.UUID) -> Target:
    return Target("api_key", key_id)


def webhook_endpoint(endpoint_id: uuid.UUID) -> Target:
    return Target("webhook_endpoint", endpoint_id)


def webhook_delivery(delivery_id: uuid.UUID) -> Target:
    return Target("webhook_delivery", delivery_id)


def clean_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Bounded, JSON-ready metadata: at most 50 keys of scalars or lists of at most 100
    strings, every string cut at 500 characters; ids and timestamps become strings."""
    leaked = _FORBIDDEN_KEYS.intersection(metadata)
    if leaked:  # a programming error; never let a secret reach the log or the table
        raise ValueError(f"event metadata must not include secrets: {sorted(leaked)}")
    if len(metadata) > MAX_METADATA_KEYS:
        raise ValueError(f"event metadata has more than {MAX_METADATA_KEYS} keys")
    return {key: _bounded(value) for key, value in metadata.items()}


def _bounded(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else list(value)
        return [str(item)[:MAX_METADATA_STRING] for item in items[:MAX_METADATA_LIST]]
    return str(value)[:MAX_METADATA_STRING]


@dataclass(slots=True)
class EventRow:
    """One ``audit_events`` row (:class:`orgauth.models.AuditEvent`), inserted when its
    transaction commits: plain values, so recording costs no ORM unit of work."""

    action: str
    actor_type: str
    occurred_at: datetime = field(default_factory=utcnow)
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    organization_id: uuid.UUID | None = None
    actor_id: uuid.UUID | None = None
    impersonator_id: uuid.UUID | None = None
    targets: list[dict[str, str]] = field(default_factory=list)
    ip_address: str | None = None
    user_agent: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def values(self) -> dict[str, Any]:
        """The row by column name."""
        return {
            "id": self.id,
            "occurred_at": self.occurred_at,
            "action": self.action,
            "organization_id": self.organization_id,
            "actor_type": self.actor_type,
            "actor_id": self.actor_id,
            "impersonator_id": self.impersonator_id,
            "targets": self.targets,
            "ip_address": self.ip_address,
            "user_agent": self.user_agent,
            "metadata": self.metadata,
        }


_AUDIT_INSERT = insert(AuditEvent.__table__)  # type: ignore[attr-defined]


def record(
    db: AsyncSession,
    action: str,
    /,
    *,
    actor: EventActor = ANONYMOUS,
    organization_id: uuid.UUID | None = None,
    targets: Iterable[Target] = (),
    client: ClientInfo | None = None,
    data: Mapping[str, Any] | None = None,
    **metadata: Any,
) -> EventRow:
    """Add ``action`` to the transaction of ``db`` (the caller commits): one
    ``audit_events`` row, logged on ``orgauth.audit`` once the transaction commits.

    An organization event that webhooks carry (``member.added``, …) needs ``data``, the
    payload's ``data`` object (docs/API.md, "Webhooks"); it goes to the outbox.
    """
    row = EventRow(
        action=action,
        organization_id=organization_id,
        actor_type=actor.type,
        actor_id=actor.id,
        impersonator_id=actor.impersonator_id,
        targets=[target.as_json() for target in targets],
        ip_address=client.ip[:IP_MAX_LENGTH] if client and client.ip else None,
        # Bounded like a session's: a client may send any User-Agent.
        user_agent=client.user_agent[:USER_AGENT_MAX_LENGTH]
        if client and client.user_agent
        else None,
        metadata=clean_metadata(metadata),
    )
    sync_session = db.sync_session
    if not sync_session.in_transaction():
        # No connection yet (that stays lazy): a transaction, so that a rollback before
        # any statement also drops the event.
        sync_session.begin()
    info = sync_session.info
    info.setdefault(_ROWS, []).append(row)
    kind = webhook_type(action) if organization_id is not None else None
    if kind is not None:
        if data is None:  # a programming error: every such event feeds webhooks
            raise ValueError(f"the {action} event needs its webhook data")
        info.setdefault(_OUTBOX, []).append(OutboxEvent(row, kind, data))
    info.setdefault(_PENDING, []).append((action, _log_fields(row)))
    return row


async def write_outbox(db: AsyncSession) -> None:
    """Write the pending events' delivery rows now rather than at commit: before a change
    that removes the endpoints they go to (deleting the organization)."""
    await db.run_sync(_write_outbox)


def _write_audit_rows(sync_session: Session) -> None:
    rows = sync_session.info.pop(_ROWS, None)
    if rows:
        sync_session.connection().execute(_AUDIT_INSERT, [row.values() for row in rows])


def _write_outbox(sync_session: Session) -> None:
    pending = sync_session.info.pop(_OUTBOX, None)
    if pending:
        enqueue(sync_session, pending)


async def record_alone(db: AsyncSession, action: str, /, **fields: Any) -> None:
    """Record an event that accompanies no change (a refusal, a failure) and commit it."""
    record(db, action, **fields)
    await db.commit()


def log_line(action: str, /, **fields: Any) -> None:
    """An ``orgauth.audit`` line with no stored row, for events too frequent to keep
    (``token.refreshed``)."""
    clean_metadata(fields)
    audit_logger.info(action, extra={_log_key(k): _plain(v) for k, v in fields.items()})


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str | list):
        return value
    return str(value)


def _log_fields(row: EventRow) -> dict[str, Any]:
    """The logged form: actor, organization, one ``<type>_id`` per target type (a list
    when there are several; ``user_id`` defaults to a user actor's own id), the client and
    the metadata."""
    fields: dict[str, Any] = {"actor_type": row.actor_type}
    if row.actor_id is not None:
        fields["actor_id"] = str(row.actor_id)
    if row.impersonator_id is not None:
        fields["impersonator_id"] = str(row.impersonator_id)
    if row.organization_id is not None:
        fields["organization_id"] = str(row.organization_id)
    by_type: dict[str, list[str]] = {}
    for target in row.targets:
        by_type.setdefault(f"{target['type']}_id", []).append(target["id"])
    for key, ids in by_type.items():
        fields[key] = ids[0] if len(ids) == 1 else ids
    if "user_id" not in fields and row.actor_type == "user" and row.actor_id is not None:
        fields["user_id"] = str(row.actor_id)  # the account concerned: the actor's own
    if row.ip_address is not None:
        fields["ip"] = row.ip_address
    for key, value in row.metadata.items():
        fields.setdefault(_log_key(key), value)
    return fields


def _log_key(key: str) -> str:
    return f"meta_{key}" if key in _RESERVED_LOG_FIELDS else key


@event.listens_for(Session, "before_commit")
def _write_before_commit(sync_session: Session) -> None:
    _write_audit_rows(sync_session)
    _write_outbox(sync_session)


@event.listens_for(Session, "after_commit")
def _log_committed(sync_session: Session) -> None:
    for action, fields in sync_session.info.pop(_PENDING, ()):
        audit_logger.info(action, extra=fields)


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(sync_session: Session, previous_transaction: SessionTransaction) -> None:
    # Every rollback of the outermost transaction, also one that never reached the
    # database (events recorded before any statement ran).
    if previous_transaction.parent is not None:
        return
    for key in (_PENDING, _ROWS, _OUTBOX):
        sync_session.info.pop(key, None)
