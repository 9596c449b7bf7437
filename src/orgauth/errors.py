"""Error codes and the one mapping from orgauth errors to HTTP responses.

Every orgauth error answers ``{"detail": {"code": ..., "message": ...}}``; services raise
:class:`OrgAuthError` subclasses and never import FastAPI.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar


class ErrorCode(enum.StrEnum):
    """Stable, documented error codes."""

    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    INVALID_TOKEN = "INVALID_TOKEN"
    NOT_AUTHENTICATED = "NOT_AUTHENTICATED"
    INVALID_REFRESH_TOKEN = "INVALID_REFRESH_TOKEN"
    INVALID_RESET_TOKEN = "INVALID_RESET_TOKEN"
    INVALID_VERIFICATION_TOKEN = "INVALID_VERIFICATION_TOKEN"
    EMAIL_NOT_VERIFIED = "EMAIL_NOT_VERIFIED"
    EMAIL_UNCHANGED = "EMAIL_UNCHANGED"
    INVALID_INVITATION = "INVALID_INVITATION"
    INVITATION_NOT_FOUND = "INVITATION_NOT_FOUND"
    INVITATION_NOT_PENDING = "INVITATION_NOT_PENDING"
    INVITATION_EMAIL_MISMATCH = "INVITATION_EMAIL_MISMATCH"
    INVITATION_LIMIT_REACHED = "INVITATION_LIMIT_REACHED"
    MEMBER_LIMIT_REACHED = "MEMBER_LIMIT_REACHED"
    DIRECT_ADD_DISABLED = "DIRECT_ADD_DISABLED"
    INVALID_CURSOR = "INVALID_CURSOR"
    INVALID_API_KEY = "INVALID_API_KEY"
    API_KEY_NOT_ALLOWED = "API_KEY_NOT_ALLOWED"
    API_KEY_NOT_FOUND = "API_KEY_NOT_FOUND"
    API_KEY_LIMIT_REACHED = "API_KEY_LIMIT_REACHED"
    WEBHOOK_URL_NOT_ALLOWED = "WEBHOOK_URL_NOT_ALLOWED"
    WEBHOOK_NOT_FOUND = "WEBHOOK_NOT_FOUND"
    WEBHOOK_LIMIT_REACHED = "WEBHOOK_LIMIT_REACHED"
    DELIVERY_NOT_FOUND = "DELIVERY_NOT_FOUND"
    DELIVERY_PENDING = "DELIVERY_PENDING"
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
    UNKNOWN_PERMISSION = "UNKNOWN_PERMISSION"
    UNKNOWN_ROLE = "UNKNOWN_ROLE"
    ROLE_NOT_FOUND = "ROLE_NOT_FOUND"
    ROLE_KEY_TAKEN = "ROLE_KEY_TAKEN"
    BUILT_IN_ROLE = "BUILT_IN_ROLE"
    ROLE_IN_USE = "ROLE_IN_USE"
    ROLE_LIMIT_REACHED = "ROLE_LIMIT_REACHED"
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
    """An error with a status code, a stable code and a message safe to show the client.

    The classes below fix the status; the code always comes from the raiser (or, for the
    few errors with a single meaning, from the class), never from a default that could be
    wrong.
    """

    status_code: int = 400
    default_code: ClassVar[ErrorCode | None] = None
    message: str = "Request failed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: ErrorCode | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        chosen = code or self.default_code
        if chosen is None:
            raise TypeError(f"{type(self).__name__} needs an error code")
        self.code: ErrorCode = chosen
        self.message = message or self.message
        self.headers = headers or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message)


class AuthenticationError(OrgAuthError):
    """401; carries ``WWW-Authenticate: Bearer``."""

    status_code = 401

    def __init__(self, message: str, *, code: ErrorCode) -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": "Bearer"})


class BadRequestError(OrgAuthError):
    status_code = 400


class PermissionDeniedError(OrgAuthError):
    status_code = 403


class NotFoundError(OrgAuthError):
    status_code = 404


class ConflictError(OrgAuthError):
    status_code = 409


class UnprocessableError(OrgAuthError):
    status_code = 422


class ServiceUnavailableError(OrgAuthError):
    status_code = 503
    default_code = ErrorCode.SERVICE_UNAVAILABLE
    message = "The service is temporarily unavailable; try again shortly."


def error_body(code: ErrorCode, message: str) -> dict[str, Any]:
    """orgauth's error body: ``{"detail": {"code": ..., "message": ...}}``."""
    return {"detail": {"code": str(code), "message": message}}
