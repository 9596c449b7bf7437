"""Exception handlers: orgauth errors, database outages and unexpected failures."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from orgauth.errors import ErrorCode, OrgAuthError, ServiceUnavailableError, error_body

logger = logging.getLogger("orgauth.errors")


async def _orgauth_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OrgAuthError)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


def _is_outage(exc: BaseException) -> bool:
    if isinstance(exc, PoolTimeoutError | OperationalError | InterfaceError | ConnectionError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OSError | TimeoutError)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if _is_outage(exc):
        logger.warning("database unavailable", extra={"error": type(exc).__name__})
        unavailable = ServiceUnavailableError()
        return JSONResponse(unavailable.body(), status_code=503, headers={"Retry-After": "5"})
    return await _unexpected_error(request, exc)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error(
        "unhandled error", exc_info=exc, extra={"path": request.url.path, "method": request.method}
    )
    return JSONResponse(
        error_body(ErrorCode.INTERNAL_ERROR, "An unexpected error occurred."), status_code=500
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers once per app."""
    if getattr(app.state, "orgauth_error_handlers", False):
        return
    app.add_exception_handler(OrgAuthError, _orgauth_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeoutError, _database_error)
    app.add_exception_handler(ConnectionError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.state.orgauth_error_handlers = True
