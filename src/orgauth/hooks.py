"""Event hooks: async callbacks a host app registers to react to orgauth events.

Each hook is awaited after the event has been committed. A hook that raises does not undo
the event; the error is logged (by type only, never with secrets) and the request still
succeeds, except for hooks documented otherwise.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orgauth.models import User

if TYPE_CHECKING:
    from orgauth.services.auth import ResetDelivery
    from orgauth.services.invitations import InvitationDelivery
    from orgauth.services.verification import VerificationDelivery

logger = logging.getLogger("orgauth.hooks")

UserHook = Callable[[User], Awaitable[None]]
#: (organization id, user id, role key — ``owner``/``admin``/``member`` or a custom role;
#: None on removal)
MemberHook = Callable[[uuid.UUID, uuid.UUID, str | None], Awaitable[None]]
ResetHook = Callable[["ResetDelivery"], Awaitable[None]]
VerificationHook = Callable[["VerificationDelivery"], Awaitable[None]]
InvitationHook = Callable[["InvitationDelivery"], Awaitable[None]]


@dataclass
class Hooks:
    """Callbacks for orgauth events. Register with ``auth.hooks.on_register.append(fn)``."""

    on_register: list[UserHook] = field(default_factory=list)
    on_login: list[UserHook] = field(default_factory=list)
    on_password_change: list[UserHook] = field(default_factory=list)
    on_member_added: list[MemberHook] = field(default_factory=list)
    on_member_removed: list[MemberHook] = field(default_factory=list)
    # When any is registered, orgauth does not send the reset email itself.
    on_password_reset_requested: list[ResetHook] = field(default_factory=list)
    # When any is registered, orgauth does not send verification or email-change links
    # itself (``VerificationDelivery.purpose`` tells them apart).
    on_email_verification_requested: list[VerificationHook] = field(default_factory=list)
    # When any is registered, orgauth does not send the invitation email itself.
    on_invitation_sent: list[InvitationHook] = field(default_factory=list)

    async def _run(self, name: str, callbacks: list[Any], *arguments: Any) -> None:
        for callback in callbacks:
            try:
                await callback(*arguments)
            except Exception as exc:  # a host bug must not break sign-in
                logger.error("hook failed", extra={"hook": name, "error": type(exc).__name__})

    async def after_register(self, user: User) -> None:
        await self._run("after_register", self.on_register, user)

    async def after_login(self, user: User) -> None:
        await self._run("after_login", self.on_login, user)

    async def after_password_change(self, user: User) -> None:
        await self._run("after_password_change", self.on_password_change, user)

    async def after_member_added(
        self, organization_id: uuid.UUID, user_id: uuid.UUID, role: str
    ) -> None:
        await self._run("after_member_added", self.on_member_added, organization_id, user_id, role)

    async def after_member_removed(self, organization_id: uuid.UUID, user_id: uuid.UUID) -> None:
        await self._run(
            "after_member_removed", self.on_member_removed, organization_id, user_id, None
        )

    async def password_reset_requested(self, delivery: ResetDelivery) -> bool:
        """Run reset hooks; True when a hook took over sending the email."""
        if not self.on_password_reset_requested:
            return False
        await self._run("password_reset_requested", self.on_password_reset_requested, delivery)
        return True

    async def email_verification_requested(self, delivery: VerificationDelivery) -> bool:
        """Run verification hooks; True when a hook took over sending the email."""
        if not self.on_email_verification_requested:
            return False
        await self._run(
            "email_verification_requested", self.on_email_verification_requested, delivery
        )
        return True

    async def invitation_sent(self, delivery: InvitationDelivery) -> bool:
        """Run invitation hooks; True when a hook took over sending the email."""
        if not self.on_invitation_sent:
            return False
        await self._run("invitation_sent", self.on_invitation_sent, delivery)
        return True
