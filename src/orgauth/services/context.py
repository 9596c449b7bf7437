"""What the auth services need besides a database session, bundled once per OrgAuth."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from orgauth.data.sessions import NEVER_IDLE
from orgauth.email import EmailSender
from orgauth.hooks import Hooks
from orgauth.security.passwords import PasswordHasher
from orgauth.security.ratelimit import AccountLimits
from orgauth.security.tokens import AccessTokenCodec
from orgauth.settings import OrgAuthSettings

#: ``last_used_at`` is written at most this often (less with a short idle timeout).
SESSION_TOUCH_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True)
class SessionPolicy:
    """``SESSION_IDLE_TIMEOUT_MINUTES`` and ``MAX_SESSIONS_PER_USER`` (docs/CONFIGURATION.md)."""

    idle_timeout: timedelta | None = None
    max_sessions: int = 0

    @classmethod
    def of(cls, settings: OrgAuthSettings) -> SessionPolicy:
        minutes = settings.session_idle_timeout_minutes
        return cls(
            idle_timeout=timedelta(minutes=minutes) if minutes > 0 else None,
            max_sessions=settings.max_sessions_per_user,
        )

    def idle_since(self, now: datetime) -> datetime:
        """Sessions last used at or before this are over (idle)."""
        return now - self.idle_timeout if self.idle_timeout is not None else NEVER_IDLE

    @property
    def touch_interval(self) -> timedelta:
        """At most once a minute, and at most every half timeout under 2 minutes, so an
        active session never looks idle."""
        if self.idle_timeout is None:
            return SESSION_TOUCH_INTERVAL
        return min(SESSION_TOUCH_INTERVAL, self.idle_timeout / 2)


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

    @cached_property
    def session_policy(self) -> SessionPolicy:
        return SessionPolicy.of(self.settings)

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
