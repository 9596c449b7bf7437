"""Rate limits (docs/CONFIGURATION.md, docs/SECURITY.md), built on the ``limits`` library.

Counters live in memory (one process) or in Redis (shared by every worker and host). If
Redis fails mid-run, each process falls back to its own in-memory counters (so limits
still apply, per process) and logs it; Redis is tried again a few seconds later. An
outage of the limiter never becomes an outage of sign-in, nor an open door.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid

from limits import RateLimitItem, parse_many
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from orgauth.errors import ErrorCode, OrgAuthError
from orgauth.settings import OrgAuthSettings
from orgauth.validation import InvalidEmailError, normalize_email

logger = logging.getLogger("orgauth.ratelimit")
# After a storage failure, wait this long before trying the storage again.
STORAGE_RETRY_SECONDS = 5.0
REDIS_TIMEOUT_SECONDS = 0.5


class RateLimitedError(OrgAuthError):
    status_code = 429
    default_code = ErrorCode.RATE_LIMITED
    message = "Too many requests; try again later."

    def __init__(self, retry_after: int) -> None:
        super().__init__(headers={"Retry-After": str(max(1, retry_after))})


def _storage_uri(uri: str) -> str:
    return uri if uri.startswith("async+") else f"async+{uri}"


class RateLimiter:
    """Checks named limits for a key; one instance per OrgAuth."""

    def __init__(self, settings: OrgAuthSettings, *, namespace: str = "orgauth") -> None:
        self.enabled = settings.rate_limit_enabled
        self._namespace = namespace
        self._storage_uri = _storage_uri(settings.rate_limit_storage_uri)
        self._limiter: MovingWindowRateLimiter | None = None
        self._failed_until = 0.0
        self._fallback: MovingWindowRateLimiter | None = None

    def _get_limiter(self) -> MovingWindowRateLimiter:
        if self._limiter is None:
            options: dict[str, float | str | bool] = {}
            if "redis" in self._storage_uri:
                # redis-py (the `redis` extra); short timeouts so an outage fails open fast.
                options = {
                    "implementation": "redispy",
                    "socket_timeout": REDIS_TIMEOUT_SECONDS,
                    "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
                }
            storage = storage_from_string(self._storage_uri, **options)
            self._limiter = MovingWindowRateLimiter(storage)
        return self._limiter

    def _get_fallback(self) -> MovingWindowRateLimiter:
        if self._fallback is None:
            self._fallback = MovingWindowRateLimiter(storage_from_string("async+memory://"))
        return self._fallback

    async def hit(self, name: str, items: list[RateLimitItem], key: str) -> None:
        """Count one request for ``key`` against every item; raise RateLimitedError if over."""
        if not self.enabled:
            return
        if time.monotonic() < self._failed_until:
            await self._hit(self._get_fallback(), name, items, key)
            return
        try:
            await self._hit(self._get_limiter(), name, items, key)
        except RateLimitedError:
            raise
        except Exception as exc:  # storage unreachable: per-process counters meanwhile
            self._failed_until = time.monotonic() + STORAGE_RETRY_SECONDS
            logger.error(
                "rate limit storage unavailable; using in-memory counters",
                extra={"error": type(exc).__name__},
            )
            await self._hit(self._get_fallback(), name, items, key)

    async def _hit(
        self, limiter: MovingWindowRateLimiter, name: str, items: list[RateLimitItem], key: str
    ) -> None:
        for item in items:
            if not await limiter.hit(item, self._namespace, name, key):
                stats = await limiter.get_window_stats(item, self._namespace, name, key)
                raise RateLimitedError(math.ceil(stats.reset_time - time.time()))

    async def reset(self) -> None:
        """Forget every counter (tests and operators)."""
        limiter = self._get_limiter()
        await limiter.storage.reset()


def _key_digest(value: str) -> str:
    # Keys never hold raw emails: the storage may be shared and inspected.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class AccountLimits:
    """Limits counted per account (the normalised email, known or not) rather than per IP.

    Unknown emails are counted exactly like known ones, so the answer never tells them
    apart. Keys are digests: the storage may be shared and inspected.
    """

    def __init__(self, settings: OrgAuthSettings, limiter: RateLimiter) -> None:
        self.limiter = limiter
        self._login = parse_many(settings.rate_limit_login)
        self._password_reset = parse_many(settings.rate_limit_password_reset)
        self._verify_email = parse_many(settings.rate_limit_verify_email)
        self._invite = parse_many(settings.rate_limit_invite)
        self._audit_export = parse_many(settings.rate_limit_audit_export)
        self._api_key = parse_many(settings.rate_limit_api_key)

    async def login(self, email: str) -> None:
        """Count a sign-in attempt for ``email``; RateLimitedError when over the limit."""
        await self.limiter.hit("login_account", self._login, _account_key(email))

    async def password_reset(self, email: str) -> None:
        """Count a reset email to ``email``; RateLimitedError when over the limit."""
        await self.limiter.hit("password_reset_account", self._password_reset, _account_key(email))

    async def verify_email(self, email: str) -> None:
        """Count a verification request for ``email``; RateLimitedError when over the limit."""
        await self.limiter.hit("verify_email_account", self._verify_email, _account_key(email))

    async def change_email(self, user_id: uuid.UUID) -> None:
        """Count an email-change request of the user; RateLimitedError when over."""
        await self.limiter.hit("change_email", self._verify_email, str(user_id))

    async def invite(self, inviter: uuid.UUID) -> None:
        """Count an invitation sent, resent or a direct add by ``inviter`` (a user or API
        key id); RateLimitedError when over ``RATE_LIMIT_INVITE``."""
        await self.limiter.hit("invite", self._invite, str(inviter))

    async def audit_export(self, principal: uuid.UUID) -> None:
        """Count an audit export by ``principal`` (a user or API key id); RateLimitedError
        when over ``RATE_LIMIT_AUDIT_EXPORT``."""
        await self.limiter.hit("audit_export", self._audit_export, str(principal))

    async def api_key(self, key_id: uuid.UUID) -> None:
        """Count a request authenticated with the key; RateLimitedError when over
        ``RATE_LIMIT_API_KEY``."""
        await self.limiter.hit("api_key", self._api_key, str(key_id))


def _account_key(email: str) -> str:
    try:
        normalized = normalize_email(email)
    except InvalidEmailError:
        normalized = email.strip().lower()
    return _key_digest(normalized)
