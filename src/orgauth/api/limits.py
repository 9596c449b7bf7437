"""Per-IP rate limits of the sensitive routes, as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from limits import parse_many

from orgauth.api.client import client_ip
from orgauth.security.network import TrustedProxies
from orgauth.security.ratelimit import RateLimiter
from orgauth.settings import OrgAuthSettings


class RouteLimits:
    """One dependency per limited route: counts the request against the client's IP."""

    def __init__(self, settings: OrgAuthSettings, limiter: RateLimiter) -> None:
        proxies = TrustedProxies(settings.forwarded_allow_ips)
        self.login = _per_ip(limiter, proxies, "login", settings.rate_limit_login)
        self.register = _per_ip(limiter, proxies, "register", settings.rate_limit_register)
        self.refresh = _per_ip(limiter, proxies, "refresh", settings.rate_limit_refresh)
        self.password_reset = _per_ip(
            limiter, proxies, "password_reset", settings.rate_limit_password_reset
        )
        self.password_change = _per_ip(
            limiter, proxies, "password_change", settings.rate_limit_password_change
        )
        self.verify_email = _per_ip(
            limiter, proxies, "verify_email", settings.rate_limit_verify_email
        )
        # Email-change requests: RATE_LIMIT_VERIFY_EMAIL per IP too (the per-user count is
        # AccountLimits.change_email).
        self.change_email = _per_ip(
            limiter, proxies, "change_email_ip", settings.rate_limit_verify_email
        )
        # One counter per IP shared by every route that redeems an emailed or one-time
        # token (docs/API.md): guessing spread over several such routes counts once.
        self.token_confirm = _per_ip(
            limiter, proxies, "token_confirm", settings.rate_limit_token_confirm
        )


def _per_ip(
    limiter: RateLimiter, proxies: TrustedProxies, name: str, notation: str
) -> Callable[[Request], Awaitable[None]]:
    items = parse_many(notation)

    async def enforce(request: Request) -> None:
        await limiter.hit(name, items, client_ip(request, proxies) or "unknown")

    enforce.__name__ = f"rate_limit_{name}"
    return enforce
