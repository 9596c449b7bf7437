"""Exception handlers: orgauth errors, database outages and unexpected failures."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from orgauth.db import is_missing_schema_error, is_outage_error
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
    if isinstance(exc, DBAPIError) and is_outage_error(exc.orig):
        return True
    return isinstance(exc, OSError | TimeoutError)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if is_missing_schema_error(exc):
        # A setup mistake, not an outage: say what to do (in the log; the client only
        # learns that the server is not set up).
        from orgauth.schema import MIGRATE_ADVICE

        auth = getattr(request.app.state, "orgauth", None)
        if auth is not None:
            auth.schema.forget()  # /health re-reads the version table from now on
        logger.error(
            f"orgauth's tables are missing or out of date; {MIGRATE_ADVICE}",
            extra={"path": request.url.path, "error": type(exc).__name__},
        )
        return JSONResponse(
            error_body(ErrorCode.DATABASE_NOT_MIGRATED, "The server's database is not set up."),
            status_code=500,
        )
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


def _safe_text(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 shape, without echoing the submitted values (they may be passwords)."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "type": error.get("type"),
            "loc": [_safe_text(part) for part in error.get("loc", ())],
            "msg": _safe_text(error.get("msg")),
        }
        for error in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)


_HTTP_CODES = {
    400: (ErrorCode.BAD_REQUEST, "The request could not be read."),
    404: (ErrorCode.NOT_FOUND, "Not found."),
    405: (ErrorCode.METHOD_NOT_ALLOWED, "Method not allowed."),
}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown route, wrong method, unreadable body) in orgauth's
    error body."""
    assert isinstance(exc, StarletteHTTPException)
    code, message = _HTTP_CODES.get(exc.status_code, (ErrorCode.BAD_REQUEST, "Request failed."))
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


def install_standalone_error_handlers(app: FastAPI) -> None:
    """For the standalone server only: every error, unknown routes included, uses the
    orgauth body. (A host app keeps its own HTTPException format.)"""
    app.add_exception_handler(StarletteHTTPException, _http_error)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers once per app."""
    if getattr(app.state, "orgauth_error_handlers", False):
        return
    app.add_exception_handler(OrgAuthError, _orgauth_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeoutError, _database_error)
    app.add_exception_handler(ConnectionError, _database_error)
    app.add_exception_handler(TimeoutError, _database_error)  # e.g. a connect timeout
    app.add_exception_handler(Exception, _unexpected_error)
    app.state.orgauth_error_handlers = True
