"""The stored audit log (docs/API.md, "Audit log"): an organization's events under
``/organizations/{org_id}/audit-logs`` and every event under ``/admin/audit-logs``."""

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession

from orgauth.api.audit_export import MEDIA_TYPES, stream_export
from orgauth.api.routes._pagination import NO_NUL
from orgauth.api.routes._responses import errors
from orgauth.lengths import ACTION_MAX_LENGTH
from orgauth.models import AuditEvent
from orgauth.schemas import (
    AuditActorRead,
    AuditContextRead,
    AuditEventRead,
    AuditPage,
    AuditTargetRead,
)
from orgauth.services import audit_log
from orgauth.services import organizations as org_service
from orgauth.services.audit_log import MAX_ACTION_FILTERS, MAX_CURSOR_LENGTH, AuditFilters
from orgauth.services.organizations import Actor

if TYPE_CHECKING:
    from orgauth.extension import OrgAuth

CursorParam = Annotated[str | None, Query(min_length=1, max_length=MAX_CURSOR_LENGTH)]
AuditLimit = Annotated[int, Query(ge=1, le=100, description="Events per page (1-100).")]
ActionName = Annotated[
    str, StringConstraints(min_length=1, max_length=ACTION_MAX_LENGTH, pattern=NO_NUL)
]
Actions = Annotated[
    list[ActionName] | None,
    Query(max_length=MAX_ACTION_FILTERS, description="Exact action names (repeatable, ≤ 20)."),
]
Since = Annotated[AwareDatetime | None, Query(description="Inclusive, with an offset.")]
Until = Annotated[AwareDatetime | None, Query(description="Exclusive, with an offset.")]
ExportFormat = Annotated[Literal["csv", "jsonl"], Query(alias="format")]


def audit_event_read(row: AuditEvent) -> AuditEventRead:
    return AuditEventRead(
        id=row.id,
        occurred_at=row.occurred_at,
        action=row.action,
        organization_id=row.organization_id,
        actor=AuditActorRead(type=row.actor_type, id=row.actor_id),
        impersonator_id=row.impersonator_id,
        targets=[AuditTargetRead(type=t["type"], id=uuid.UUID(t["id"])) for t in row.targets],
        context=AuditContextRead(ip=row.ip_address, user_agent=row.user_agent),
        metadata=row.event_metadata,
    )


def _actions(values: list[str] | None) -> tuple[str, ...]:
    return tuple(values or ())


async def _page(
    db: AsyncSession, filters: AuditFilters, cursor: str | None, limit: int
) -> AuditPage:
    rows, next_cursor = await audit_log.list_events(db, filters, cursor=cursor, limit=limit)
    return AuditPage(data=[audit_event_read(row) for row in rows], next_cursor=next_cursor)


async def _export(
    auth: "OrgAuth",
    db: AsyncSession,
    actor: Actor,
    filters: AuditFilters,
    export_format: str,
) -> StreamingResponse:
    """Start the export (its limit and its audit row) and stream the events, oldest first."""
    await audit_log.start_export(
        db, auth.context.account_limits, actor, filters=filters, export_format=export_format
    )
    body = stream_export(
        auth.sessionmaker,
        filters,
        export_format,
        lambda row: audit_event_read(row).model_dump_json(),
    )
    return StreamingResponse(
        body,
        media_type=MEDIA_TYPES[export_format],
        headers={
            "Content-Disposition": f'attachment; filename="audit-events.{export_format}"',
            "Cache-Control": "no-store",
        },
    )


def build_organization_audit_routes(
    router: APIRouter, auth: "OrgAuth", actor_dependency: Callable[..., Awaitable[Actor]]
) -> None:
    """``GET /organizations/{org_id}/audit-logs``, for holders of ``audit_logs:read``."""
    Db = Annotated[AsyncSession, Depends(auth.dependencies.get_db)]
    ActorDep = Annotated[Actor, Depends(actor_dependency)]

    @router.get(
        "/{org_id}/audit-logs",
        operation_id="organizations_list_audit_events",
        response_model=AuditPage,
        responses=errors(401, 403, 404, 422),
        summary="The organization's audit log, newest first",
    )
    async def list_audit_events(
        org_id: uuid.UUID,
        actor: ActorDep,
        db: Db,
        cursor: CursorParam = None,
        limit: AuditLimit = 50,
        action: Actions = None,
        actor_id: uuid.UUID | None = None,
        since: Since = None,
        until: Until = None,
    ) -> AuditPage:
        await org_service.require_permission_in(db, actor, org_id, "audit_logs:read")
        filters = AuditFilters(org_id, _actions(action), actor_id, since, until)
        return await _page(db, filters, cursor, limit)

    @router.get(
        "/{org_id}/audit-logs/export",
        operation_id="organizations_export_audit_events",
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/csv": {}, "application/x-ndjson": {}}},
            **errors(401, 403, 404, 422, 429),
        },
        summary="Export the organization's audit log (CSV or JSON Lines), oldest first",
    )
    async def export_audit_events(
        org_id: uuid.UUID,
        actor: ActorDep,
        db: Db,
        export_format: ExportFormat,
        action: Actions = None,
        actor_id: uuid.UUID | None = None,
        since: Since = None,
        until: Until = None,
    ) -> StreamingResponse:
        await org_service.require_permission_in(db, actor, org_id, "audit_logs:read")
        filters = AuditFilters(org_id, _actions(action), actor_id, since, until)
        return await _export(auth, db, actor, filters, export_format)


def build_admin_audit_routes(
    router: APIRouter, auth: "OrgAuth", actor_dependency: Callable[..., Awaitable[Actor]]
) -> None:
    """``GET /admin/audit-logs`` and its export: every event (the router requires a
    superuser)."""
    Db = Annotated[AsyncSession, Depends(auth.dependencies.get_db)]
    ActorDep = Annotated[Actor, Depends(actor_dependency)]

    @router.get(
        "/audit-logs",
        operation_id="admin_list_audit_events",
        response_model=AuditPage,
        responses=errors(401, 403, 422),
        summary="Every audit event, newest first",
    )
    async def list_all_audit_events(
        db: Db,
        cursor: CursorParam = None,
        limit: AuditLimit = 50,
        action: Actions = None,
        actor_id: uuid.UUID | None = None,
        organization_id: uuid.UUID | None = None,
        since: Since = None,
        until: Until = None,
    ) -> AuditPage:
        filters = AuditFilters(organization_id, _actions(action), actor_id, since, until)
        return await _page(db, filters, cursor, limit)

    @router.get(
        "/audit-logs/export",
        operation_id="admin_export_audit_events",
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/csv": {}, "application/x-ndjson": {}}},
            **errors(401, 403, 422, 429),
        },
        summary="Export every audit event (CSV or JSON Lines), oldest first",
    )
    async def export_all_audit_events(
        db: Db,
        actor: ActorDep,
        export_format: ExportFormat,
        action: Actions = None,
        actor_id: uuid.UUID | None = None,
        organization_id: uuid.UUID | None = None,
        since: Since = None,
        until: Until = None,
    ) -> StreamingResponse:
        filters = AuditFilters(organization_id, _actions(action), actor_id, since, until)
        return await _export(auth, db, actor, filters, export_format)
