"""Who is calling: the one place that reads the client's address and User-Agent."""

from __future__ import annotations

from fastapi import Request

from orgauth.security.network import TrustedProxies
from orgauth.services.context import ClientInfo

MAX_USER_AGENT_INPUT = 1024


def client_ip(request: Request, proxies: TrustedProxies) -> str | None:
    """The client's IP: the socket peer, or behind a trusted proxy what it forwarded.

    ``X-Forwarded-For`` may arrive as several header lines (a proxy appending its own line
    after the client's): every line counts, joined in order, so the entries our proxies
    added stay on the right where :meth:`TrustedProxies.client_ip` looks for them.
    """
    peer = request.client.host if request.client else None
    forwarded = ",".join(request.headers.getlist("x-forwarded-for")) or None
    return proxies.client_ip(peer, forwarded)


def client_info(request: Request, proxies: TrustedProxies) -> ClientInfo:
    """The client's IP (see :func:`client_ip`) and its User-Agent (bounded)."""
    user_agent = request.headers.get("user-agent")
    return ClientInfo(
        ip=client_ip(request, proxies),
        user_agent=user_agent[:MAX_USER_AGENT_INPUT] if user_agent else None,
    )
