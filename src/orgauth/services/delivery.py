"""Handing an email to the host's hooks or to the email backend, after the response
(docs/EMBEDDING.md, "Hooks")."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from orgauth.email import EmailMessage
from orgauth.services.context import AuthContext

email_logger = logging.getLogger("orgauth.email")


async def deliver(
    ctx: AuthContext,
    message: Callable[[], EmailMessage],
    *,
    hooks: Awaitable[bool] | None,
    failure: str,
    **context: str,
) -> None:
    """Send ``message()`` through the email backend unless ``hooks`` (the host's hooks for
    this email, run here) took over sending. A failure is logged on ``orgauth.email`` as
    ``failure`` with ``context`` and the error's type, never the token, and never raised:
    nobody is waiting for an answer."""
    try:
        if hooks is None or not await hooks:
            await ctx.email.send(message())
    except Exception as exc:
        email_logger.error(failure, extra={**context, "error": type(exc).__name__})
