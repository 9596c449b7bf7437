"""Reading the stored audit log (docs/API.md, "Audit log"): filtered, newest first, with a
keyset cursor on (``occurred_at``, ``id``), so pages neither skip nor repeat rows while new
events arrive."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from orgauth.data.statements import affected_rows
from orgauth.errors import ErrorCode, UnprocessableError
from orgauth.events import SYSTEM, record
from orgauth.models import AuditEvent, utcnow
from orgauth.security.ratelimit import AccountLimits

if TYPE_CHECKING:
    from orgauth.services.organizations import Actor

MAX_CURSOR_LENGTH = 200
MAX_ACTION_FILTERS = 20


def invalid_cursor() -> UnprocessableError:
    return UnprocessableError("The cursor cannot be read.", code=ErrorCode.INVALID_CURSOR)


@dataclass(frozen=True)
class AuditFilters:
    """What a page or an export is limited to; ``organization_id`` is forced on an
    organization's routes."""

    organization_id: uuid.UUID | None = None
    actions: Sequence[str] = field(default_factory=tuple)
    actor_id: uuid.UUID | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.organization_id is not None:
            found.append(col(AuditEvent.organization_id) == self.organization_id)
        if self.actions:
            found.append(col(AuditEvent.action).in_(list(self.actions)))
        if self.actor_id is not None:
            found.append(col(AuditEvent.actor_id) == self.actor_id)
        if self.since is not None:
            found.append(col(AuditEvent.occurred_at) >= self.since)
        if self.until is not None:
            found.append(col(AuditEvent.occurred_at) < self.until)
        return found


@dataclass(frozen=True)
class Position:
    """Where a page ended: the (``occurred_at``, ``id``) of its last row."""

    occurred_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = json.dumps([self.occurred_at.isoformat(), self.id.hex], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> Position:
        """The position a cursor names; 422 ``INVALID_CURSOR`` for anything unreadable."""
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise invalid_cursor()
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            at, identifier = json.loads(raw)
            if not isinstance(at, str) or not isinstance(identifier, str):
                raise ValueError("cursor fields must be strings")
            occurred_at = datetime.fromisoformat(at)
            if occurred_at.tzinfo is None:
                raise ValueError("naive timestamp")
            return cls(occurred_at, uuid.UUID(hex=identifier))
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
            raise invalid_cursor() from None

    # Row-value comparisons: one range of the (…, occurred_at, id) index, where the
    # equivalent OR of two conditions makes PostgreSQL read every earlier row.

    def after(self) -> ColumnElement[bool]:
        """Rows after this one in oldest-first order."""
        return (self.occurred_at, self.id) < _KEY

    def before(self) -> ColumnElement[bool]:
        """Rows after this one in newest-first order."""
        return (self.occurred_at, self.id) > _KEY


_KEY = tuple_(col(AuditEvent.occurred_at), col(AuditEvent.id))


async def list_events(
    db: AsyncSession, filters: AuditFilters, *, cursor: str | None, limit: int
) -> tuple[list[AuditEvent], str | None]:
    """One page, newest first, and the cursor of the next page (None at the end). One
    indexed query: the (``organization_id``, ``occurred_at``, ``id``) index for an
    organization, (``occurred_at``, ``id``) otherwise."""
    conditions = filters.conditions()
    if cursor is not None:
        conditions.append(Position.decode(cursor).before())
    rows = list(
        (
            await db.execute(
                select(AuditEvent)
                .where(*conditions)
                .order_by(col(AuditEvent.occurred_at).desc(), col(AuditEvent.id).desc())
                .limit(limit + 1)
            )
        )
        .scalars()
        .all()
    )
    await db.commit()
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    return page, Position(page[-1].occurred_at, page[-1].id).encode()


async def prune_events(db: AsyncSession, *, older_than_days: int) -> int:
    """Delete events older than ``older_than_days`` days (caller commits); a prune that
    deleted rows records one ``audit.pruned`` event of the ``system``."""
    cutoff = utcnow() - timedelta(days=older_than_days)
    deleted = affected_rows(
        await db.execute(delete(AuditEvent).where(col(AuditEvent.occurred_at) < cutoff))
    )
    if deleted:
        record(db, "audit.pruned", actor=SYSTEM, deleted=deleted, older_than_days=older_than_days)
    return deleted


EXPORT_BATCH = 500


async def export_batches(
    sessionmaker: async_sessionmaker[AsyncSession], filters: AuditFilters
) -> AsyncIterator[list[AuditEvent]]:
    """Every matching event, oldest first, in keyset batches of 500, each read on a short
    session of its own: an export never holds its result in memory or a transaction open
    while the client reads."""
    position: Position | None = None
    while True:
        conditions = filters.conditions()
        if position is not None:
            conditions.append(position.after())
        async with sessionmaker() as db:
            batch = list(
                (
                    await db.execute(
                        select(AuditEvent)
                        .where(*conditions)
                        .order_by(col(AuditEvent.occurred_at), col(AuditEvent.id))
                        .limit(EXPORT_BATCH)
                    )
                )
                .scalars()
                .all()
            )
        if not batch:
            return
        yield batch
        if len(batch) < EXPORT_BATCH:
            return
        position = Position(batch[-1].occurred_at, batch[-1].id)


async def start_export(
    db: AsyncSession,
    limits: AccountLimits,
    actor: Actor,
    *,
    filters: AuditFilters,
    export_format: str,
) -> None:
    """What every export does before it streams: count against the caller's (user or API
    key) ``RATE_LIMIT_AUDIT_EXPORT`` (429) and record ``audit.exported`` with the filters."""
    await limits.audit_export(actor.principal_id)
    record(
        db,
        "audit.exported",
        actor=actor.event_actor,
        organization_id=filters.organization_id,
        client=actor.client,
        format=export_format,
        actions=list(filters.actions),
        actor_id=str(filters.actor_id) if filters.actor_id else None,
        since=filters.since.isoformat() if filters.since else None,
        until=filters.until.isoformat() if filters.until else None,
    )
    await db.commit()
