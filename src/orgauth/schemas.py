"""Request and response models of the HTTP API.

Request models forbid unknown fields, so privileged fields (``is_superuser``, ``id``, ...)
are refused with 422 rather than silently ignored. Response models list exactly what a
client may see: never a password hash.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from orgauth.models import EMAIL_MAX_LENGTH, NAME_MAX_LENGTH
from orgauth.validation import normalize_email

# Passwords are bounded here only to keep hostile bodies cheap; the policy (8..128
# characters after normalisation) answers with WEAK_PASSWORD.
PASSWORD_INPUT_MAX_LENGTH = 1024
OPAQUE_TOKEN_MAX_LENGTH = 512


def _clean_name(value: str | None) -> str | None:
    if value is None:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must not contain control characters")
    value = value.strip()
    return value or None


def _valid_email(value: str) -> str:
    return normalize_email(value)


Email = Annotated[str, Field(max_length=EMAIL_MAX_LENGTH), AfterValidator(_valid_email)]
LoginEmail = Annotated[str, Field(max_length=EMAIL_MAX_LENGTH)]
Name = Annotated[str | None, Field(max_length=NAME_MAX_LENGTH), AfterValidator(_clean_name)]
Password = Annotated[str, Field(min_length=1, max_length=PASSWORD_INPUT_MAX_LENGTH)]
OpaqueToken = Annotated[str, Field(min_length=1, max_length=OPAQUE_TOKEN_MAX_LENGTH)]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=PASSWORD_INPUT_MAX_LENGTH)


# --- users -------------------------------------------------------------------------


class UserRead(BaseModel):
    """A user as clients see it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    first_name: str | None
    last_name: str | None
    is_active: bool
    is_superuser: bool
    created_at: datetime
    updated_at: datetime


class RegisterRequest(RequestModel):
    email: Email
    password: Password
    first_name: Name = None
    last_name: Name = None


class UserUpdateMe(RequestModel):
    first_name: Name = None
    last_name: Name = None


class PasswordChangeRequest(RequestModel):
    current_password: Password
    new_password: Password


# --- auth --------------------------------------------------------------------------


class LoginRequest(RequestModel):
    email: LoginEmail
    password: Password


class RefreshRequest(RequestModel):
    refresh_token: OpaqueToken


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    user: UserRead


class PasswordResetRequest(RequestModel):
    email: LoginEmail


class PasswordResetConfirm(RequestModel):
    token: OpaqueToken
    new_password: Password


class MessageResponse(BaseModel):
    message: str


class RevokedResponse(BaseModel):
    revoked: int


# --- sessions ----------------------------------------------------------------------


class SessionRead(BaseModel):
    id: uuid.UUID
    device_name: str | None
    device_type: str | None
    browser: str | None
    os: str | None
    ip_address: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    is_current: bool


class SessionList(BaseModel):
    sessions: list[SessionRead]
    total: int


# --- errors (for OpenAPI) ----------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    detail: ErrorDetail
