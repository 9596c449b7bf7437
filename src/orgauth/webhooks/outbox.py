"""The webhook outbox: the events that reach webhooks, and their delivery rows.

An organization event recorded with :func:`orgauth.events.record` whose type is one of
:data:`WEBHOOK_EVENT_TYPES` becomes, in the same transaction, one ``webhook_deliveries``
row per enabled endpoint of its organization that subscribes to it: a rolled-back change
sends nothing (docs/ARCHITECTURE.md, "Webhooks").
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from orgauth.models import DELIVERY_PENDING, WebhookDelivery, WebhookEndpoint

if TYPE_CHECKING:
    from orgauth.events import EventRow

#: Every event type an endpoint can subscribe to (``*`` subscribes to all of them).
WEBHOOK_EVENT_TYPES: frozenset[str] = frozenset(
    {
        "organization.updated",
        "organization.deleted",
        "organization.ownership_transferred",
        "member.added",
        "member.role_changed",
        "member.removed",
        "invitation.created",
        "invitation.resent",
        "invitation.accepted",
        "invitation.declined",
        "invitation.revoked",
        "role.created",
        "role.updated",
        "role.deleted",
        "api_key.created",
        "api_key.revoked",
    }
)
ALL_EVENTS = "*"
SUBSCRIBABLE_EVENTS: frozenset[str] = WEBHOOK_EVENT_TYPES | {ALL_EVENTS}
MAX_ENDPOINT_EVENTS = 50

# Audit actions whose webhook type differs: a member leaving is a removal to receivers.
_TYPE_OF_ACTION = {"member.left": "member.removed"}


def webhook_type(action: str) -> str | None:
    """The webhook event type of an audit action, or None when webhooks never see it."""
    kind = _TYPE_OF_ACTION.get(action, action)
    return kind if kind in WEBHOOK_EVENT_TYPES else None


def subscribes(events: Sequence[str], event_type: str) -> bool:
    return ALL_EVENTS in events or event_type in events


def event_id(row: EventRow) -> str:
    """``evt_`` + 32 hex: the event's id in payloads, shared with its audit row."""
    return f"evt_{row.id.hex}"


def delivery_id(delivery_uuid: uuid.UUID) -> str:
    """``msg_`` + 32 hex: the ``webhook-id`` header, stable across attempts."""
    return f"msg_{delivery_uuid.hex}"


@dataclass(frozen=True)
class OutboxEvent:
    """An event waiting for its transaction to commit: the audit row and the payload."""

    row: EventRow
    type: str
    data: Mapping[str, Any]

    def body(self) -> str:
        """The compact UTF-8 JSON sent, byte-identical, on every attempt."""
        row = self.row
        document = {
            "id": event_id(row),
            "type": self.type,
            "timestamp": row.occurred_at.isoformat(),
            "organization_id": str(row.organization_id),
            "actor": {
                "type": row.actor_type,
                "id": str(row.actor_id) if row.actor_id is not None else None,
                "impersonator_id": (
                    str(row.impersonator_id) if row.impersonator_id is not None else None
                ),
            },
            "data": self.data,
        }
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=str)


_endpoints = WebhookEndpoint.__table__  # type: ignore[attr-defined]
_ENABLED_ENDPOINTS = select(
    _endpoints.c.id,
    _endpoints.c.organization_id,
    _endpoints.c.url,
    _endpoints.c.events,
    _endpoints.c.secret_encrypted,
).where(
    _endpoints.c.organization_id.in_(bindparam("org_ids", expanding=True)),
    _endpoints.c.enabled.is_(True),
)
_INSERT_DELIVERIES = insert(WebhookDelivery.__table__)  # type: ignore[attr-defined]


def enqueue(session: Session, pending: Sequence[OutboxEvent]) -> int:
    """Insert the delivery rows of ``pending`` in ``session``'s transaction: one SELECT of
    the organizations' enabled endpoints and one multi-row INSERT. Returns the row count."""
    org_ids = list({event.row.organization_id for event in pending})
    connection = session.connection()  # Core on the transaction's connection: no ORM work
    endpoints = connection.execute(_ENABLED_ENDPOINTS, {"org_ids": org_ids}).all()
    rows: list[dict[str, Any]] = []
    for event in pending:
        body: str | None = None
        for endpoint in endpoints:
            if endpoint.organization_id != event.row.organization_id:
                continue
            if not subscribes(endpoint.events, event.type):
                continue
            body = body if body is not None else event.body()
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "endpoint_id": endpoint.id,
                    "organization_id": event.row.organization_id,
                    "event_id": event.row.id,
                    "event_type": event.type,
                    "payload": body,
                    "url": endpoint.url,
                    "secret_encrypted": endpoint.secret_encrypted,
                    "status": DELIVERY_PENDING,
                    "attempts": 0,
                    "next_attempt_at": event.row.occurred_at,
                    "created_at": event.row.occurred_at,
                }
            )
    if rows:
        connection.execute(_INSERT_DELIVERIES, rows)
    return len(rows)
