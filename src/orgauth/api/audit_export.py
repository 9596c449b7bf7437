"""Streaming an audit export as CSV or JSON Lines (docs/API.md, "Audit log")."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orgauth.models import AuditEvent
from orgauth.services.audit_log import AuditFilters, export_batches

CSV_COLUMNS = (
    "id",
    "occurred_at",
    "action",
    "organization_id",
    "actor_type",
    "actor_id",
    "impersonator_id",
    "targets",
    "ip_address",
    "user_agent",
    "metadata",
)
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
# A spreadsheet would run a cell starting with one of these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_row(row: AuditEvent) -> list[str]:
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    return [
        _cell(value)
        for value in (
            row.id,
            row.occurred_at.isoformat(),
            row.action,
            row.organization_id,
            row.actor_type,
            row.actor_id,
            row.impersonator_id,
            json.dumps(row.targets, **compact),  # type: ignore[arg-type]
            row.ip_address,
            row.user_agent,
            json.dumps(row.event_metadata, **compact),  # type: ignore[arg-type]
        )
    ]


async def stream_export(
    sessionmaker: async_sessionmaker[AsyncSession],
    filters: AuditFilters,
    export_format: str,
    as_json: Callable[[AuditEvent], str],
) -> AsyncIterator[str]:
    """The export's text, batch by batch (RFC 4180 CSV with a header row, or one
    AuditEvent JSON object per line)."""
    if export_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        yield buffer.getvalue()
    async for batch in export_batches(sessionmaker, filters):
        if export_format == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\r\n")
            writer.writerows(_csv_row(row) for row in batch)
            yield buffer.getvalue()
        else:
            yield "".join(as_json(row) + "\n" for row in batch)
