"""What the auth services need besides a database session, bundled once per OrgAuth."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from orgauth.email import EmailSender
from orgauth.hooks import Hooks
from orgauth.security.passwords import PasswordHasher
from orgauth.security.ratelimit import AccountLimits
from orgauth.security.tokens import AccessTokenCodec
from orgauth.settings import OrgAuthSettings


@dataclass(frozen=True)
class ClientInfo:
    """Who is calling: the client IP (after trusted-proxy handling) and User-Agent."""

    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class AuthContext:
    """Settings and collaborators shared by every auth service call."""

    settings: OrgAuthSettings
    passwords: PasswordHasher
    access_tokens: AccessTokenCodec
    email: EmailSender
    hooks: Hooks
    account_limits: AccountLimits

    @property
    def refresh_lifetime(self) -> timedelta:
        return timedelta(days=self.settings.refresh_token_expire_days)

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(days=self.settings.session_max_lifetime_days)

    @property
    def reuse_grace(self) -> timedelta:
        return timedelta(seconds=self.settings.refresh_reuse_grace_seconds)

    @property
    def reset_lifetime(self) -> timedelta:
        return timedelta(minutes=self.settings.password_reset_expire_minutes)

    @property
    def verification_lifetime(self) -> timedelta:
        return timedelta(hours=self.settings.email_verify_expire_hours)
