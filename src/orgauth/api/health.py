"""GET /health: version, environment, a real database probe and the schema version
(docs/API.md)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from orgauth._version import __version__
from orgauth.db import ping

if TYPE_CHECKING:
    from orgauth.extension import OrgAuth

HEALTH_PROBE_TIMEOUT_S = 3.0
logger = logging.getLogger("orgauth.health")


class DatabaseCheck(BaseModel):
    status: Literal["ok", "error"]
    latency_ms: float | None = None
    error: str | None = None


class MigrationsCheck(BaseModel):
    status: Literal["ok", "error"]
    current: str | None = None
    latest: str | None = None
    error: str | None = None


class HealthChecks(BaseModel):
    database: DatabaseCheck
    migrations: MigrationsCheck | None = None


class HealthResponse(BaseModel):
    status: Literal["healthy", "unhealthy"]
    version: str
    environment: str
    timestamp: datetime
    checks: HealthChecks


class ProbeCoalescer:
    """Runs at most one database probe at a time; requests arriving while one is in
    flight share its result (each answer still comes from a probe that finished after
    the request arrived). Under heavy polling the database sees one probe per round trip
    instead of one per request."""

    def __init__(self) -> None:
        self._inflight: asyncio.Future[float] | None = None

    async def probe(self, auth: OrgAuth) -> float:
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(ping(auth.statements))
        return await asyncio.shield(self._inflight)


async def check_health(
    auth: OrgAuth, coalescer: ProbeCoalescer | None = None
) -> tuple[int, dict[str, Any]]:
    """Probe the database with a bounded timeout; the status code and the report.

    Built as a plain dict (the schema above documents it): this route is polled by load
    balancers and should cost little more than the probe itself.
    """
    checks: dict[str, Any] = {}
    try:
        async with asyncio.timeout(HEALTH_PROBE_TIMEOUT_S):
            latency = await (coalescer.probe(auth) if coalescer else ping(auth.statements))
            schema = await auth.schema.report(auth.engine)
        checks["database"] = {"status": "ok", "latency_ms": round(latency, 2)}
        checks["migrations"] = (
            {"status": "ok", "current": schema.current, "latest": schema.head}
            if schema.at_head
            else {
                "status": "error",
                "current": schema.current,
                "latest": schema.head,
                "error": schema.problem(),
            }
        )
    except Exception as exc:  # any failure of the probe means unhealthy, never a 500
        logger.warning("health probe failed", extra={"error": type(exc).__name__})
        checks["database"] = {"status": "error", "error": "database unreachable"}
    healthy = all(check["status"] == "ok" for check in checks.values())
    report = {
        "status": "healthy" if healthy else "unhealthy",
        "version": __version__,
        "environment": auth.settings.environment,
        "timestamp": datetime.now(UTC).isoformat(),
        "checks": checks,
    }
    return (200 if healthy else 503), report


def build_health_router(auth: OrgAuth) -> APIRouter:
    """A router with ``GET /health``, for apps that mount orgauth's routes themselves."""
    router = APIRouter()
    add_health_route(router, auth)
    return router


def add_health_route(router: APIRouter, auth: OrgAuth) -> None:
    """Add ``GET /health`` to ``router`` (the app's own router, so probes stay cheap)."""
    coalescer = ProbeCoalescer()

    async def health() -> Any:
        status_code, report = await check_health(auth, coalescer)
        return JSONResponse(report, status_code=status_code)

    router.add_api_route(
        "/health",
        health,
        methods=["GET"],
        response_model=HealthResponse,
        responses={
            503: {
                "model": HealthResponse,
                "description": "Database unreachable, or not at orgauth's latest migration",
            }
        },
        summary="Service health with a database probe",
        tags=["health"],
        operation_id="health",
    )
