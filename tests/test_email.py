"""Email backends: what they write, log and send, and what they refuse (docs/CONFIGURATION.md,
docs/SECURITY.md)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import shutil
import socket
import ssl
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from orgauth.email import (
    ConsoleEmailSender,
    EmailDeliveryError,
    EmailMessage,
    FileEmailSender,
    SmtpEmailSender,
    build_mime_message,
    build_reset_url,
    create_email_sender,
    password_reset_message,
)
from orgauth.settings import OrgAuthSettings

SENDER = "orgauth tests <no-reply@example.test>"
TOKEN = "tok_Abc-123_+/=?&#%"


def _message(**overrides: Any) -> EmailMessage:
    values: dict[str, Any] = {
        "to": "alice@example.com",
        "subject": "Réinitialiser 🔑",
        "text": "Hello Alice,\nhere is your link: https://app.example.com/x?token=abc\n",
        "html": "<p>Hello <b>Alice</b></p>",
    }
    values.update(overrides)
    return EmailMessage(**values)


def _parse(data: bytes) -> MimeMessage:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, MimeMessage)
    return parsed


def _files(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


def _body(message: MimeMessage, kind: str) -> str:
    part = message.get_body(preferencelist=(kind,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


# --- message building and header injection ---------------------------------------------


@pytest.mark.parametrize(
    ("to", "subject"),
    [
        ("alice@example.com\r\nBcc: mallory@evil.test", "Hi"),
        ("alice@example.com\nBcc: mallory@evil.test", "Hi"),
        ("alice@example.com", "Hi\r\nBcc: mallory@evil.test"),
        ("alice@example.com", "Hi\rX-Injected: 1"),
        ("alice@example.com", "Hi\nX-Injected: 1"),
        ("alice@example.com\x00", "Hi"),
    ],
)
def test_line_breaks_in_recipient_or_subject_are_refused(to: str, subject: str) -> None:
    with pytest.raises(ValueError, match="line breaks"):
        EmailMessage(to=to, subject=subject, text="body")


@pytest.mark.parametrize("to", ["alice@example.com, mallory@evil.test", "not-an-address", ""])
def test_recipient_must_be_exactly_one_address(to: str) -> None:
    with pytest.raises(ValueError, match="exactly one address"):
        EmailMessage(to=to, subject="Hi", text="body")


def test_injection_is_refused_even_when_the_dataclass_check_is_bypassed() -> None:
    message = _message()
    object.__setattr__(message, "subject", "Hi\r\nBcc: mallory@evil.test")
    with pytest.raises(ValueError, match="line breaks"):
        build_mime_message(message, sender=SENDER)


@pytest.mark.parametrize(
    "factory", [ConsoleEmailSender, lambda sender: FileEmailSender("x", sender=sender)]
)
def test_sender_with_line_breaks_is_refused(factory: Any) -> None:
    with pytest.raises(ValueError, match="line breaks"):
        factory(sender="orgauth <a@example.com>\r\nBcc: mallory@evil.test")


def test_mime_message_has_the_standard_headers_and_both_parts() -> None:
    mime = build_mime_message(_message(), sender=SENDER)
    parsed = _parse(mime.as_bytes())
    assert parsed["From"] == SENDER
    assert parsed["To"] == "alice@example.com"
    assert parsed["Subject"] == "Réinitialiser 🔑"
    assert parsed["Date"]
    assert parsed["Message-ID"].endswith("@example.test>")
    assert parsed.get_content_type() == "multipart/alternative"
    assert "here is your link" in _body(parsed, "plain")
    assert "<b>Alice</b>" in _body(parsed, "html")
    # Non-ASCII subjects travel encoded, never as raw 8-bit header bytes.
    assert b"=?utf-8?" in mime.as_bytes()


def test_text_only_message_is_a_single_plain_part() -> None:
    parsed = _parse(build_mime_message(_message(html=None), sender=SENDER).as_bytes())
    assert parsed.get_content_type() == "text/plain"


# --- reset links and the reset email ---------------------------------------------------


def test_build_reset_url_quotes_the_token_and_uses_the_frontend_url() -> None:
    url = build_reset_url("https://app.example.com", TOKEN)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "app.example.com",
        "/reset-password",
    )
    assert parse_qs(parts.query) == {"token": [TOKEN]}
    assert "&#" not in url
    assert "+/" not in url


def test_build_reset_url_tolerates_a_trailing_slash_and_a_base_path() -> None:
    assert build_reset_url("https://example.com/app/", "abc") == (
        "https://example.com/app/reset-password?token=abc"
    )


def test_password_reset_message_carries_the_link_in_text_and_escaped_html() -> None:
    url = build_reset_url("https://app.example.com", "abc") + '&x="<script>'
    message = password_reset_message(to="alice@example.com", reset_url=url, expires_minutes=60)
    assert message.to == "alice@example.com"
    assert url in message.text
    assert "1 hour" in message.text
    assert message.html is not None
    assert "<script>" not in message.html
    assert "&quot;&lt;script&gt;" in message.html


@pytest.mark.parametrize(
    ("minutes", "wording"),
    [
        (15, "15 minutes"),
        (1, "1 minute"),
        (0.5, "30 seconds"),
        (120, "2 hours"),
        (90, "90 minutes"),
    ],
)
def test_password_reset_message_states_the_lifetime(minutes: float, wording: str) -> None:
    message = password_reset_message(
        to="a@example.com", reset_url="https://x.test/r", expires_minutes=minutes
    )
    assert f"within {wording}:" in message.text


def test_password_reset_message_refuses_non_http_links() -> None:
    with pytest.raises(ValueError, match="http"):
        password_reset_message(
            to="a@example.com", reset_url="javascript:alert(1)", expires_minutes=60
        )


# --- console backend -----------------------------------------------------------------


async def test_console_backend_logs_the_whole_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="orgauth.email")
    url = build_reset_url("http://localhost:3000", TOKEN)
    message = password_reset_message(to="alice@example.com", reset_url=url, expires_minutes=60)
    await ConsoleEmailSender(sender=SENDER).send(message)
    [record] = [r for r in caplog.records if r.name == "orgauth.email"]
    assert record.levelno == logging.INFO
    logged = record.getMessage()
    assert "To: alice@example.com" in logged
    assert "Subject: Reset your password" in logged
    assert f"From: {SENDER}" in logged
    assert url in logged  # the development backend is where the link is read
    assert record.__dict__["to"] == "alice@example.com"


# --- file backend --------------------------------------------------------------------


async def test_file_backend_writes_one_private_parseable_file_per_message(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "mail" / "out"
    sender = FileEmailSender(directory, sender=SENDER)
    await sender.send(_message())
    await sender.send(_message(to="bob@example.com", html=None))

    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = _files(directory)
    assert len(files) == 2
    for path in files:
        assert path.suffix == ".eml"
        stamp, _, rest = path.stem.partition("-")
        assert stamp.endswith("Z")
        assert len(rest) == 32
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first, second = (_parse(path.read_bytes()) for path in files)
    assert first["To"] == "alice@example.com"
    assert first["From"] == SENDER
    assert first["Subject"] == "Réinitialiser 🔑"
    assert first["Date"]
    assert first["Message-ID"]
    assert "here is your link" in _body(first, "plain")
    assert second["To"] == "bob@example.com"
    assert first["Message-ID"] != second["Message-ID"]


async def test_file_backend_handles_concurrent_sends_without_leftovers(tmp_path: Path) -> None:
    sender = FileEmailSender(tmp_path, sender=SENDER)
    await asyncio.gather(*(sender.send(_message(subject=f"n{i}")) for i in range(20)))
    names = [path.name for path in _files(tmp_path)]
    assert len(names) == 20
    assert not [name for name in names if name.startswith(".") or name.endswith(".tmp")]
    subjects = {_parse((tmp_path / name).read_bytes())["Subject"] for name in names}
    assert subjects == {f"n{i}" for i in range(20)}


async def test_file_backend_reports_an_unwritable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    with pytest.raises(EmailDeliveryError):
        await FileEmailSender(blocker / "emails", sender=SENDER).send(_message())


# --- SMTP backend against a real local server ----------------------------------------


@dataclass
class RecordingHandler:
    envelopes: list[Envelope] = field(default_factory=list)
    logins: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        if session.auth_data is not None:
            self.logins.append(session.auth_data)
        return "250 OK"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"mailer",
        b"s3cret-pw",
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, RecordingHandler]]:
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (made with the openssl CLI)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def _server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def _smtp_sender(controller: Controller, **overrides: Any) -> SmtpEmailSender:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": controller.port,
        "username": None,
        "password": None,
        "tls_mode": "none",
        "sender": SENDER,
        "timeout": 10,
    }
    values.update(overrides)
    return SmtpEmailSender(**values)


async def test_smtp_backend_delivers_in_plain_mode(
    smtp_server: tuple[Controller, RecordingHandler],
) -> None:
    controller, handler = smtp_server
    await _smtp_sender(controller).send(_message())
    [envelope] = handler.envelopes
    assert envelope.mail_from == "no-reply@example.test"
    assert envelope.rcpt_tos == ["alice@example.com"]
    assert isinstance(envelope.content, bytes)
    delivered = _parse(envelope.content)
    assert delivered["Subject"] == "Réinitialiser 🔑"
    assert "here is your link" in _body(delivered, "plain")


async def _check_authentication(
    controller: Controller, handler: RecordingHandler, **kw: Any
) -> None:
    await _smtp_sender(controller, username="mailer", password="s3cret-pw", **kw).send(_message())
    assert handler.logins == [b"mailer"]
    with pytest.raises(EmailDeliveryError) as caught:
        await _smtp_sender(controller, username="mailer", password="wrong", **kw).send(_message())
    assert "wrong" not in str(caught.value)
    with pytest.raises(EmailDeliveryError):  # the server requires AUTH
        await _smtp_sender(controller, **kw).send(_message())
    assert len(handler.envelopes) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_smtp_backend_authenticates_in_plain_mode() -> None:
    handler = RecordingHandler()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=_free_port(),
        authenticator=_authenticator,
        auth_required=True,
        auth_require_tls=False,  # plain-text AUTH is acceptable on loopback in a test only
    )
    controller.start()
    try:
        await _check_authentication(controller, handler)
    finally:
        controller.stop()


async def test_smtp_backend_authenticates_after_starttls(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    handler = RecordingHandler()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=_free_port(),
        tls_context=_server_context(cert, key),
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,  # and AUTH only after TLS, aiosmtpd's default
    )
    controller.start()
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        await _check_authentication(controller, handler, tls_mode="starttls", tls_context=trusted)
    finally:
        controller.stop()


async def test_smtp_backend_upgrades_with_starttls_and_verifies_the_certificate(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    handler = RecordingHandler()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=_free_port(),
        tls_context=_server_context(cert, key),
        require_starttls=True,  # the server refuses MAIL before STARTTLS
    )
    controller.start()
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        await _smtp_sender(controller, tls_mode="starttls", tls_context=trusted).send(_message())
        assert len(handler.envelopes) == 1
        # Without trusting the self-signed certificate, the upgrade must fail.
        with pytest.raises(EmailDeliveryError):
            await _smtp_sender(controller, tls_mode="starttls").send(_message())
        assert len(handler.envelopes) == 1
    finally:
        controller.stop()


async def test_smtp_starttls_mode_refuses_a_server_without_starttls(
    smtp_server: tuple[Controller, RecordingHandler],
) -> None:
    controller, handler = smtp_server
    with pytest.raises(EmailDeliveryError):
        await _smtp_sender(controller, tls_mode="starttls").send(_message())
    assert handler.envelopes == []  # never downgraded to clear text


async def test_smtp_backend_speaks_implicit_tls(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    handler = RecordingHandler()
    controller = Controller(
        handler, hostname="127.0.0.1", port=_free_port(), ssl_context=_server_context(cert, key)
    )
    controller.start()
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        await _smtp_sender(controller, tls_mode="tls", tls_context=trusted).send(_message())
        assert len(handler.envelopes) == 1
    finally:
        controller.stop()


async def test_smtp_backend_reports_an_unreachable_server() -> None:
    sender = SmtpEmailSender("127.0.0.1", _free_port(), None, None, "none", SENDER, timeout=5)
    with pytest.raises(EmailDeliveryError):
        await sender.send(_message())


def test_smtp_sender_repr_hides_the_password() -> None:
    sender = SmtpEmailSender("mail.test", 587, "mailer", "s3cret-pw", "starttls", SENDER)
    assert "s3cret-pw" not in repr(sender)


def test_smtp_sender_needs_both_username_and_password() -> None:
    with pytest.raises(ValueError, match="together"):
        SmtpEmailSender("mail.test", 587, "mailer", None, "starttls", SENDER)
    with pytest.raises(ValueError, match="together"):
        SmtpEmailSender("mail.test", 587, None, "s3cret-pw", "starttls", SENDER)


def test_smtp_sender_refuses_an_unknown_tls_mode() -> None:
    with pytest.raises(ValueError, match="TLS mode"):
        SmtpEmailSender("mail.test", 587, None, None, "ssl", SENDER)  # type: ignore[arg-type]


# --- backend selection ---------------------------------------------------------------


def _settings(**values: Any) -> OrgAuthSettings:
    return OrgAuthSettings(_env_file=None, **values)


def test_create_email_sender_picks_the_configured_backend(tmp_path: Path) -> None:
    console = create_email_sender(_settings(email_backend="console", email_from=SENDER))
    assert isinstance(console, ConsoleEmailSender)
    assert console.sender == SENDER

    file_sender = create_email_sender(
        _settings(email_backend="file", email_file_dir=str(tmp_path / "mail"))
    )
    assert isinstance(file_sender, FileEmailSender)
    assert file_sender.directory == tmp_path / "mail"

    smtp = create_email_sender(
        _settings(
            email_backend="smtp",
            smtp_host="mail.example.com",
            smtp_port=465,
            smtp_user="mailer",
            smtp_password="s3cret-pw",
            smtp_tls="tls",
            email_from=SENDER,
        )
    )
    assert isinstance(smtp, SmtpEmailSender)
    assert (smtp.host, smtp.port, smtp.username, smtp.tls_mode, smtp.sender) == (
        "mail.example.com",
        465,
        "mailer",
        "tls",
        SENDER,
    )


async def test_configured_file_backend_delivers(tmp_path: Path) -> None:
    sender = create_email_sender(
        _settings(email_backend="file", email_file_dir=str(tmp_path / "mail"), email_from=SENDER)
    )
    await sender.send(_message())
    [path] = _files(tmp_path / "mail")
    assert _parse(path.read_bytes())["From"] == SENDER
