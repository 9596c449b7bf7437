"""Error codes and the one mapping from orgauth errors to HTTP responses.

Every orgauth error answers ``{"detail": {"code": ..., "message": ...}}``; services raise
:class:`OrgAuthError` subclasses and never import FastAPI.
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorCode(enum.StrEnum):
    """Stable, documented error codes."""

    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    INVALID_TOKEN = "INVALID_TOKEN"
    NOT_AUTHENTICATED = "NOT_AUTHENTICATED"
    INVALID_REFRESH_TOKEN = "INVALID_REFRESH_TOKEN"
    INVALID_RESET_TOKEN = "INVALID_RESET_TOKEN"
    INVALID_PASSWORD = "INVALID_PASSWORD"
    WEAK_PASSWORD = "WEAK_PASSWORD"
    REGISTRATION_FAILED = "REGISTRATION_FAILED"
    REGISTRATION_DISABLED = "REGISTRATION_DISABLED"
    EMAIL_TAKEN = "EMAIL_TAKEN"
    SLUG_TAKEN = "SLUG_TAKEN"
    ALREADY_MEMBER = "ALREADY_MEMBER"
    LAST_OWNER = "LAST_OWNER"
    INSUFFICIENT_ROLE = "INSUFFICIENT_ROLE"
    ORG_CREATION_DISABLED = "ORG_CREATION_DISABLED"
    SUPERUSER_REQUIRED = "SUPERUSER_REQUIRED"
    SELF_ACTION_FORBIDDEN = "SELF_ACTION_FORBIDDEN"
    BAD_REQUEST = "BAD_REQUEST"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    USER_NOT_FOUND = "USER_NOT_FOUND"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    ORGANIZATION_NOT_FOUND = "ORGANIZATION_NOT_FOUND"
    MEMBER_NOT_FOUND = "MEMBER_NOT_FOUND"
    RATE_LIMITED = "RATE_LIMITED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    DATABASE_NOT_MIGRATED = "DATABASE_NOT_MIGRATED"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class OrgAuthError(Exception):
    """An error with a status code, a stable code and a message safe to show the client."""

    status_code: int = 400
    code: ErrorCode = ErrorCode.NOT_FOUND
    message: str = "Request failed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: ErrorCode | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.status_code = status_code or self.status_code
        self.headers = headers or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {"detail": {"code": str(self.code), "message": self.message}}


class AuthenticationError(OrgAuthError):
    status_code = 401
    code = ErrorCode.NOT_AUTHENTICATED
    message = "Not authenticated."

    def __init__(self, message: str | None = None, *, code: ErrorCode | None = None) -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": "Bearer"})


class PermissionDeniedError(OrgAuthError):
    status_code = 403
    code = ErrorCode.INSUFFICIENT_ROLE
    message = "You do not have permission to do this."


class NotFoundError(OrgAuthError):
    status_code = 404
    code = ErrorCode.NOT_FOUND
    message = "Not found."


class ConflictError(OrgAuthError):
    status_code = 409
    code = ErrorCode.EMAIL_TAKEN
    message = "Conflict."


class BadRequestError(OrgAuthError):
    status_code = 400


class UnprocessableError(OrgAuthError):
    status_code = 422
    code = ErrorCode.WEAK_PASSWORD


class ServiceUnavailableError(OrgAuthError):
    status_code = 503
    code = ErrorCode.SERVICE_UNAVAILABLE
    message = "The service is temporarily unavailable; try again shortly."


def error_body(code: ErrorCode, message: str) -> dict[str, Any]:
    """The SPEC's error body for ``code``."""
    return {"detail": {"code": str(code), "message": message}}
