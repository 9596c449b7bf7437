"""Email delivery: ``console`` (development), ``file`` and ``smtp`` backends
(docs/CONFIGURATION.md, docs/SECURITY.md).

Every backend turns an :class:`EmailMessage` into the same RFC 5322 message, so what a test
reads from the file backend is what SMTP would have sent. Header injection is impossible:
recipients and subjects with line breaks are refused before anything is built.
"""

from __future__ import annotations

import asyncio
import email.message
import email.policy
import email.utils
import html
import logging
import os
import ssl
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal, Protocol
from urllib.parse import quote

import aiosmtplib

from orgauth.settings import OrgAuthSettings

logger = logging.getLogger("orgauth.email")

SmtpTlsMode = Literal["starttls", "tls", "none"]

DEFAULT_SENDER: Final = "orgauth <no-reply@localhost>"
# CR and LF end a header line; NUL is refused by every SMTP server. None of them has any
# business in a single header value.
_FORBIDDEN_HEADER_CHARS: Final = frozenset("\r\n\x00")
_FALLBACK_MESSAGE_ID_DOMAIN: Final = "orgauth.localhost"


class EmailDeliveryError(RuntimeError):
    """A message could not be handed to its backend (SMTP refused it, disk full, ...)."""


@dataclass(frozen=True)
class EmailMessage:
    """One plain-text email with an optional HTML alternative, to a single recipient."""

    to: str
    subject: str
    text: str
    html: str | None = None

    def __post_init__(self) -> None:
        _check_header("to", self.to)
        _check_header("subject", self.subject)
        _check_single_address(self.to)


class EmailSender(Protocol):
    """Delivers messages; implementations must not block the event loop."""

    async def send(self, message: EmailMessage) -> None: ...


def _check_header(name: str, value: str) -> None:
    if any(char in _FORBIDDEN_HEADER_CHARS for char in value):
        raise ValueError(f"email {name} must not contain line breaks or NUL characters")


def _check_single_address(value: str) -> None:
    # A comma would smuggle in more recipients without any line break.
    addresses = email.utils.getaddresses([value])
    if len(addresses) != 1 or "@" not in addresses[0][1]:
        raise ValueError("email recipient must be exactly one address")


def _message_id_domain(sender: str) -> str:
    # make_msgid() without a domain asks DNS for this host's FQDN, which can stall for
    # seconds on a badly configured machine; the sender's domain is unique enough.
    address = email.utils.parseaddr(sender)[1]
    domain = address.rpartition("@")[2]
    return domain or _FALLBACK_MESSAGE_ID_DOMAIN


def build_mime_message(message: EmailMessage, *, sender: str) -> email.message.EmailMessage:
    """The RFC 5322 message for ``message``: From, To, Subject, Date, Message-ID, body."""
    _check_header("sender", sender)
    # Checked again here: dataclasses can be bypassed (object.__setattr__, replace).
    _check_header("to", message.to)
    _check_header("subject", message.subject)
    mime = email.message.EmailMessage(policy=email.policy.SMTP)
    mime["From"] = sender
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = email.utils.formatdate(usegmt=True)
    mime["Message-ID"] = email.utils.make_msgid(domain=_message_id_domain(sender))
    mime.set_content(message.text)
    if message.html is not None:
        mime.add_alternative(message.html, subtype="html")
    return mime


class ConsoleEmailSender:
    """Logs each message on ``orgauth.email`` instead of sending it. Development only.

    This is the one place a raw password-reset token may reach a log: the link is in the
    message body, so a developer can follow it without a mail server.
    """

    def __init__(self, *, sender: str = DEFAULT_SENDER) -> None:
        _check_header("sender", sender)
        self.sender = sender

    async def send(self, message: EmailMessage) -> None:
        mime = build_mime_message(message, sender=self.sender)
        body = message.text if message.html is None else f"{message.text}\n\n[html]\n{message.html}"
        logger.info(
            "Email not sent (console backend, development only)\n"
            "From: %s\nTo: %s\nSubject: %s\nDate: %s\nMessage-ID: %s\n\n%s",
            mime["From"],
            mime["To"],
            mime["Subject"],
            mime["Date"],
            mime["Message-ID"],
            body,
            extra={"to": message.to, "subject": message.subject},
        )


class FileEmailSender:
    """Writes each message as one ``.eml`` file in ``directory``.

    Files are named ``<UTC timestamp>-<uuid4 hex>.eml`` (sorting by name sorts by time) and
    appear atomically: they are written under a hidden ``.…tmp`` name and renamed, so a
    reader that ignores dot-files never sees half a message. The directory is created
    with mode 0700 and files with 0600, since messages carry reset links.
    """

    def __init__(self, directory: str | os.PathLike[str], *, sender: str = DEFAULT_SENDER) -> None:
        _check_header("sender", sender)
        self.directory = Path(directory)
        self.sender = sender

    async def send(self, message: EmailMessage) -> None:
        data = build_mime_message(message, sender=self.sender).as_bytes()
        try:
            await asyncio.to_thread(self._write, data)
        except OSError as exc:
            raise EmailDeliveryError(f"cannot write email file: {exc.strerror}") from exc

    def _write(self, data: bytes) -> Path:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{stamp}-{uuid.uuid4().hex}.eml"
        final = self.directory / name
        temporary = self.directory / f".{name}.tmp"
        # O_EXCL: never follow or reuse a file (or symlink) that is already there.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)  # whatever the umask says
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return final


class SmtpEmailSender:
    """Sends through an SMTP server with aiosmtplib, one connection per message.

    ``tls_mode``: ``"tls"`` is implicit TLS (usually port 465), ``"starttls"`` upgrades a
    plain connection and fails if the server cannot (usually port 587), ``"none"`` sends in
    clear text (local relays only). Certificates are verified; pass ``tls_context`` to
    trust a private CA.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        tls_mode: SmtpTlsMode,
        sender: str,
        timeout: float = 10,
        *,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if tls_mode not in ("starttls", "tls", "none"):
            raise ValueError(f"unknown SMTP TLS mode {tls_mode!r}")
        _check_header("sender", sender)
        if bool(username) != bool(password):
            raise ValueError("SMTP_USER and SMTP_PASSWORD must be set together")
        self.host = host
        self.port = port
        self.username = username or None
        self._password = password or None
        self.tls_mode = tls_mode
        self.sender = sender
        self.timeout = timeout
        self.tls_context = tls_context

    def __repr__(self) -> str:  # never shows the password
        return (
            f"SmtpEmailSender(host={self.host!r}, port={self.port}, "
            f"username={self.username!r}, tls_mode={self.tls_mode!r})"
        )

    async def send(self, message: EmailMessage) -> None:
        mime = build_mime_message(message, sender=self.sender)
        try:
            await aiosmtplib.send(
                mime,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self._password,
                use_tls=self.tls_mode == "tls",
                # False, not None: None would mean "upgrade if offered" and let an attacker
                # strip STARTTLS; "none" means none, "starttls" means required.
                start_tls=self.tls_mode == "starttls",
                tls_context=self.tls_context,
                timeout=self.timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            # The type is enough to act on; an SMTP reply could echo the recipient.
            raise EmailDeliveryError(
                f"SMTP delivery via {self.host}:{self.port} failed ({type(exc).__name__})"
            ) from exc


def create_email_sender(settings: OrgAuthSettings) -> EmailSender:
    """The backend chosen by ``EMAIL_BACKEND``, configured from ``settings``."""
    if settings.email_backend == "smtp":
        if not settings.smtp_host:  # the settings validator already requires it
            raise ValueError("SMTP_HOST is required when EMAIL_BACKEND=smtp")
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return SmtpEmailSender(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_user,
            password=password,
            tls_mode=settings.smtp_tls,
            sender=settings.email_from,
        )
    if settings.email_backend == "file":
        return FileEmailSender(settings.email_file_dir, sender=settings.email_from)
    return ConsoleEmailSender(sender=settings.email_from)


def build_reset_url(frontend_url: str, token: str) -> str:
    """The password-reset link: always ``FRONTEND_URL``-based, never a request's Host."""
    return f"{frontend_url.rstrip('/')}/reset-password?token={quote(token, safe='')}"


def build_verify_url(frontend_url: str, token: str) -> str:
    """The email-verification link: always ``FRONTEND_URL``-based, never a request's Host."""
    return f"{frontend_url.rstrip('/')}/verify-email?token={quote(token, safe='')}"


def build_invitation_url(frontend_url: str, token: str) -> str:
    """The invitation link: always ``FRONTEND_URL``-based, never a request's Host."""
    return f"{frontend_url.rstrip('/')}/accept-invitation?token={quote(token, safe='')}"


def build_confirm_email_url(frontend_url: str, token: str) -> str:
    """The email-change link: always ``FRONTEND_URL``-based, never a request's Host."""
    return f"{frontend_url.rstrip('/')}/confirm-email?token={quote(token, safe='')}"


def _describe_minutes(minutes: float) -> str:
    seconds = max(1, round(minutes * 60))
    if seconds % 3600 == 0:
        value, unit = seconds // 3600, "hour"
    elif seconds % 60 == 0 or seconds > 3600:
        value, unit = round(seconds / 60), "minute"
    else:
        value, unit = seconds, "second"
    return f"{value} {unit}{'' if value == 1 else 's'}"


def password_reset_message(*, to: str, reset_url: str, expires_minutes: float) -> EmailMessage:
    """The password-reset email for ``to`` with the link ``reset_url`` (see build_reset_url)."""
    if not reset_url.startswith(("https://", "http://")):
        raise ValueError("reset_url must be an http(s) URL")
    lifetime = _describe_minutes(expires_minutes)
    text = (
        "Someone asked to reset the password of your account.\n\n"
        f"To choose a new password, open this link within {lifetime}:\n\n"
        f"{reset_url}\n\n"
        "The link works once. If you did not ask for this, ignore this email: your "
        "password stays as it is.\n"
    )
    link = html.escape(reset_url, quote=True)
    html_body = (
        "<!DOCTYPE html>\n<html><body>\n"
        "<p>Someone asked to reset the password of your account.</p>\n"
        f"<p>To choose a new password, open this link within {lifetime}:</p>\n"
        f'<p><a href="{link}">Reset your password</a></p>\n'
        f"<p>Or copy this address into your browser:<br>{link}</p>\n"
        "<p>The link works once. If you did not ask for this, ignore this email: your "
        "password stays as it is.</p>\n"
        "</body></html>\n"
    )
    return EmailMessage(to=to, subject="Reset your password", text=text, html=html_body)


def verification_message(*, to: str, verify_url: str, expires_hours: float) -> EmailMessage:
    """The ``Verify your email address`` email for ``to`` with the link ``verify_url``."""
    if not verify_url.startswith(("https://", "http://")):
        raise ValueError("verify_url must be an http(s) URL")
    lifetime = _describe_minutes(expires_hours * 60)
    text = (
        "Please confirm that this email address belongs to your account.\n\n"
        f"Open this link within {lifetime}:\n\n"
        f"{verify_url}\n\n"
        "The link works once. If you did not create an account, ignore this email.\n"
    )
    link = html.escape(verify_url, quote=True)
    html_body = (
        "<!DOCTYPE html>\n<html><body>\n"
        "<p>Please confirm that this email address belongs to your account.</p>\n"
        f"<p>Open this link within {lifetime}:</p>\n"
        f'<p><a href="{link}">Verify your email address</a></p>\n'
        f"<p>Or copy this address into your browser:<br>{link}</p>\n"
        "<p>The link works once. If you did not create an account, ignore this email.</p>\n"
        "</body></html>\n"
    )
    return EmailMessage(to=to, subject="Verify your email address", text=text, html=html_body)


def invitation_message(
    *,
    to: str,
    accept_url: str,
    organization_name: str,
    inviter: str | None,
    role: str,
    expires_at: datetime,
) -> EmailMessage:
    """The ``You have been invited to join {organization}`` email: who invites, to which
    organization, with which role, until when, and the link ``accept_url``."""
    if not accept_url.startswith(("https://", "http://")):
        raise ValueError("accept_url must be an http(s) URL")
    who = inviter or "Someone"
    until = expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        f"{who} invited you to join {organization_name} with the role {role}.\n\n"
        f"To accept, open this link before {until}:\n\n"
        f"{accept_url}\n\n"
        "The link works once. If you do not want to join, ignore this email or decline "
        "the invitation from that page.\n"
    )
    link = html.escape(accept_url, quote=True)
    html_body = (
        "<!DOCTYPE html>\n<html><body>\n"
        f"<p>{html.escape(who)} invited you to join <strong>{html.escape(organization_name)}"
        f"</strong> with the role <strong>{html.escape(role)}</strong>.</p>\n"
        f"<p>To accept, open this link before {until}:</p>\n"
        f'<p><a href="{link}">Accept the invitation</a></p>\n'
        f"<p>Or copy this address into your browser:<br>{link}</p>\n"
        "<p>The link works once. If you do not want to join, ignore this email or decline "
        "the invitation from that page.</p>\n"
        "</body></html>\n"
    )
    return EmailMessage(
        to=to,
        subject=f"You have been invited to join {organization_name}",
        text=text,
        html=html_body,
    )


def email_change_message(*, to: str, confirm_url: str, expires_hours: float) -> EmailMessage:
    """The ``Confirm your new email address`` email, to the new address ``to``, with the
    link ``confirm_url`` (see build_confirm_email_url)."""
    if not confirm_url.startswith(("https://", "http://")):
        raise ValueError("confirm_url must be an http(s) URL")
    lifetime = _describe_minutes(expires_hours * 60)
    text = (
        "Someone asked to make this the email address of their account.\n\n"
        f"To confirm the change, open this link within {lifetime}:\n\n"
        f"{confirm_url}\n\n"
        "The link works once. If you did not ask for this, ignore this email: nothing "
        "changes.\n"
    )
    link = html.escape(confirm_url, quote=True)
    html_body = (
        "<!DOCTYPE html>\n<html><body>\n"
        "<p>Someone asked to make this the email address of their account.</p>\n"
        f"<p>To confirm the change, open this link within {lifetime}:</p>\n"
        f'<p><a href="{link}">Confirm your new email address</a></p>\n'
        f"<p>Or copy this address into your browser:<br>{link}</p>\n"
        "<p>The link works once. If you did not ask for this, ignore this email: nothing "
        "changes.</p>\n"
        "</body></html>\n"
    )
    return EmailMessage(to=to, subject="Confirm your new email address", text=text, html=html_body)


def email_changed_message(*, to: str, new_email: str) -> EmailMessage:
    """``Your email address was changed``, to the old address ``to``: names the new
    address and carries no link and no token."""
    text = (
        "The email address of your account was changed.\n\n"
        f"The account now uses: {new_email}\n\n"
        "Sign-in and every message about the account now go to that address. If you did "
        "not make this change, contact the service's support at once.\n"
    )
    html_body = (
        "<!DOCTYPE html>\n<html><body>\n"
        "<p>The email address of your account was changed.</p>\n"
        f"<p>The account now uses: {html.escape(new_email, quote=True)}</p>\n"
        "<p>Sign-in and every message about the account now go to that address. If you did "
        "not make this change, contact the service's support at once.</p>\n"
        "</body></html>\n"
    )
    return EmailMessage(to=to, subject="Your email address was changed", text=text, html=html_body)


__all__ = [
    "ConsoleEmailSender",
    "EmailDeliveryError",
    "EmailMessage",
    "EmailSender",
    "FileEmailSender",
    "SmtpEmailSender",
    "SmtpTlsMode",
    "build_confirm_email_url",
    "build_invitation_url",
    "build_mime_message",
    "build_reset_url",
    "build_verify_url",
    "create_email_sender",
    "email_change_message",
    "email_changed_message",
    "invitation_message",
    "password_reset_message",
    "verification_message",
]
