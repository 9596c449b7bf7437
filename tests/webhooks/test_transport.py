"""Webhook delivery attempts against real local HTTP(S) receivers (threads on 127.0.0.1).

Names such as ``hooks.test`` reach 127.0.0.1 through an injected resolver, which is also
how the tests play a rebinding DNS server. TLS uses a throwaway CA made per test session.
"""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from orgauth.webhooks.addresses import WebhookUrl, check_webhook_url, parse_webhook_url
from orgauth.webhooks.transport import MAX_RESPONSE_BODY_BYTES, AttemptResult, WebhookTransport

BODY = b'{"type":"member.added","data":{"id":"\xc3\xa9t\xc3\xa9"}}'
HEADERS = [
    ("Content-Type", "application/json"),
    ("User-Agent", "orgauth-webhooks/test"),
    ("webhook-id", "msg_2b1"),
    ("webhook-timestamp", "1700000000"),
    ("webhook-signature", "v1,c2lnbmF0dXJl"),
]


# --- receivers -------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


Responder = Callable[["_Handler"], None]


def answer(
    status: int = 200, headers: tuple[tuple[str, str], ...] = (), body: bytes = b"ok"
) -> Responder:
    def respond(handler: _Handler) -> None:
        handler.send_response(status)
        for name, value in headers:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return respond


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 5  # a stuck client never holds a server thread for long

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()
        with self.server.receiver.lock:
            self.server.receiver.connections += 1

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        received = Received(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=self.rfile.read(length),
        )
        with self.server.receiver.lock:
            self.server.receiver.requests.append(received)
        self.server.receiver.respond(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.receiver.tls is not None:
            # The handshake runs in the handler's thread (setup), not in the accept loop.
            sock = self.receiver.tls.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        with self.receiver.lock:
            self.receiver.errors.append(sys.exc_info()[1])


@dataclass
class Receiver:
    respond: Responder = field(default_factory=answer)
    tls: ssl.SSLContext | None = None
    keep_alive: bool = True
    requests: list[Received] = field(default_factory=list)
    connections: int = 0
    server_names: list[str | None] = field(default_factory=list)
    errors: list[BaseException | None] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        if self.tls is not None:
            self.tls.sni_callback = self._record_server_name
        self._server = _Server(self)
        # HTTP/1.0 answers close the connection after every request.
        self._server.RequestHandlerClass = type(
            "Handler",
            (_Handler,),
            {"protocol_version": "HTTP/1.1" if self.keep_alive else "HTTP/1.0"},
        )
        # A short poll interval keeps shutdown() (one poll at most) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def _record_server_name(self, _sock: Any, name: str | None, _context: Any) -> None:
        self.server_names.append(name)

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def start_receiver() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(**kwargs: Any) -> Receiver:
        receiver = Receiver(**kwargs)
        receiver.start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose connections are accepted by the kernel and never answered."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


# --- TLS material ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_pem: str
    directory: Path
    _ca_key: ec.EllipticCurvePrivateKey
    _ca_cert: x509.Certificate

    def server_context(self, name: str, *, self_signed: bool = False) -> ssl.SSLContext:
        """A server context with a certificate for ``name`` (signed by the CA unless
        ``self_signed``)."""
        key = ec.generate_private_key(ec.SECP256R1())
        issuer_key = key if self_signed else self._ca_key
        issuer = _name(name) if self_signed else self._ca_cert.subject
        cert = (
            _builder(_name(name), issuer, key.public_key(), issuer_key.public_key())
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(issuer_key, hashes.SHA256())
        )
        stem = self.directory / f"{name}-{'self' if self_signed else 'ca'}"
        cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """What a deployment would use, plus trust in the test CA."""
        return ssl.create_default_context(cadata=self.ca_pem)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer_public_key: ec.EllipticCurvePublicKey,
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False
        )
    )


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name("orgauth webhook test CA")
    cert = (
        _builder(subject, subject, key.public_key(), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Pki(
        ca_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        directory=tmp_path_factory.mktemp("webhook-pki"),
        _ca_key=key,
        _ca_cert=cert,
    )


# --- helpers ---------------------------------------------------------------------------


class FakeResolver:
    """Answers each lookup with the next entry of ``answers`` (the last one repeats), or
    with ``socket.gaierror`` for names it does not know; records every call."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        sequence = self.answers[host]
        return sequence[min(len(self.calls_for(host)) - 1, len(sequence) - 1)]

    def calls_for(self, host: str) -> list[tuple[str, int]]:
        return [call for call in self.calls if call[0] == host]


def url(text: str) -> WebhookUrl:
    return parse_webhook_url(text, allow_http=True)


async def wait_until(condition: Callable[[], bool], within: float = 5.0) -> bool:
    """Poll without blocking the event loop (which must run to close sockets)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


async def timed(call: Awaitable[AttemptResult]) -> tuple[AttemptResult, float]:
    started = time.monotonic()
    result = await call
    return result, time.monotonic() - started


PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


# --- plain HTTP ------------------------------------------------------------------------


async def test_success_sends_exact_request_and_ignores_proxy_variables(
    start_receiver: Callable[..., Receiver], closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in PROXY_VARIABLES:
        monkeypatch.setenv(variable, f"http://127.0.0.1:{closed_port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    receiver = start_receiver()
    async with WebhookTransport(timeout_seconds=5, allow_private=True) as transport:
        result = await transport.post(
            url(f"http://127.0.0.1:{receiver.port}/hooks/in?org=7"), headers=HEADERS, body=BODY
        )
    assert result == AttemptResult(status_code=200, error=None)
    assert result.succeeded
    [received] = receiver.requests
    assert received.method == "POST"
    assert received.target == "/hooks/in?org=7"  # origin-form: not sent through a proxy
    assert received.body == BODY
    assert received.header("Host") == [f"127.0.0.1:{receiver.port}"]
    assert received.header("Content-Length") == [str(len(BODY))]
    for name, value in HEADERS:
        assert received.header(name) == [value]


async def test_callers_host_and_length_headers_are_replaced(
    start_receiver: Callable[..., Receiver],
) -> None:
    receiver = start_receiver()
    headers = [*HEADERS, ("Host", "evil.example"), ("content-length", "1")]
    async with WebhookTransport(timeout_seconds=5, allow_private=True) as transport:
        result = await transport.post(
            url(f"http://127.0.0.1:{receiver.port}/"), headers=headers, body=BODY
        )
    assert result.succeeded
    [received] = receiver.requests
    assert received.header("Host") == [f"127.0.0.1:{receiver.port}"]
    assert received.header("Content-Length") == [str(len(BODY))]
    assert received.body == BODY


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (200, None),
        (201, None),
        (202, None),
        (204, None),
        (299, None),
        (400, "http_status"),
        (401, "http_status"),
        (404, "http_status"),
        (410, "http_status"),
        (429, "http_status"),
        (500, "http_status"),
        (503, "http_status"),
    ],
)
async def test_status_codes(
    start_receiver: Callable[..., Receiver], status: int, error: str | None
) -> None:
    receiver = start_receiver(respond=answer(status, body=b"" if status == 204 else b"answer"))
    async with WebhookTransport(timeout_seconds=5, allow_private=True) as transport:
        result = await transport.post(
            url(f"http://127.0.0.1:{receiver.port}/"), headers=HEADERS, body=BODY
        )
    assert result == AttemptResult(status_code=status, error=error)
    assert result.succeeded is (error is None)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_not_followed(
    start_receiver: Callable[..., Receiver], status: int
) -> None:
    elsewhere = start_receiver()
    receiver = start_receiver(
        respond=answer(
            status, headers=(("Location", f"http://127.0.0.1:{elsewhere.port}/landing"),)
        )
    )
    async with WebhookTransport(timeout_seconds=5, allow_private=True) as transport:
        result = await transport.post(
            url(f"http://127.0.0.1:{receiver.port}/"), headers=HEADERS, body=BODY
        )
    assert result == AttemptResult(status_code=status, error="redirect")
    assert len(receiver.requests) == 1
    assert elsewhere.requests == []
    assert elsewhere.connections == 0


async def test_receiver_that_never_answers_times_out(silent_port: int) -> None:
    async with WebhookTransport(timeout_seconds=0.5, allow_private=True) as transport:
        result, elapsed = await timed(
            transport.post(url(f"http://127.0.0.1:{silent_port}/"), headers=HEADERS, body=BODY)
        )
    assert result == AttemptResult(status_code=None, error="timeout")
    assert 0.4 <= elapsed < 2.0


async def test_slow_resolver_counts_against_the_timeout() -> None:
    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(10)
        return ["127.0.0.1"]

    async with WebhookTransport(
        timeout_seconds=0.3, allow_private=True, resolver=slow
    ) as transport:
        result, elapsed = await timed(
            transport.post(url("http://slow.test/"), headers=HEADERS, body=BODY)
        )
    assert result == AttemptResult(status_code=None, error="timeout")
    assert elapsed < 2.0


async def test_closed_port_is_a_connection_error(closed_port: int) -> None:
    async with WebhookTransport(timeout_seconds=5, allow_private=True) as transport:
        result = await transport.post(
            url(f"http://127.0.0.1:{closed_port}/"), headers=HEADERS, body=BODY
        )
    assert result == AttemptResult(status_code=None, error="connection_error")


async def test_every_resolved_address_is_tried_in_order(
    start_receiver: Callable[..., Receiver],
) -> None:
    receiver = start_receiver()
    # Nothing listens on 127.0.0.2:<receiver's port>: the first address fails, the second
    # answers, and no second lookup happens.
    resolver = FakeResolver({"multi.test": [["127.0.0.2", "127.0.0.1"]]})
    async with WebhookTransport(
        timeout_seconds=5, allow_private=True, resolver=resolver
    ) as transport:
        result = await transport.post(
            url(f"http://multi.test:{receiver.port}/"), headers=HEADERS, body=BODY
        )
    assert result.succeeded
    assert resolver.calls == [("multi.test", receiver.port)]


async def test_head_then_broken_body_still_counts_the_status(
    start_receiver: Callable[..., Receiver],
) -> None:
    def truncated(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        handler.wfile.write(b"only a little")
        handler.close_connection = True

    receiver = start_receiver(respond=truncated)
    async with WebhookTransport(timeout_seconds=5, allow_private=True) as transport:
        result = await transport.post(
            url(f"http://127.0.0.1:{receiver.port}/"), headers=HEADERS, body=BODY
        )
    assert result == AttemptResult(status_code=200, error=None)


@dataclass
class Progress:
    written: int = 0
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


async def test_huge_response_body_is_not_read(start_receiver: Callable[..., Receiver]) -> None:
    total = 64 * 1024 * 1024  # more than any socket buffers on loopback can hold
    progress = Progress()

    def huge(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(total))
        handler.end_headers()
        chunk = b"x" * 65536
        try:
            while progress.written < total:
                handler.wfile.write(chunk)
                progress.written += len(chunk)
        except OSError as exc:
            progress.error = exc
            handler.close_connection = True
        finally:
            progress.done.set()

    receiver = start_receiver(respond=huge)
    async with WebhookTransport(timeout_seconds=5, allow_private=True) as transport:
        result, elapsed = await timed(
            transport.post(url(f"http://127.0.0.1:{receiver.port}/"), headers=HEADERS, body=BODY)
        )
        assert result == AttemptResult(status_code=200, error=None)
        assert elapsed < 2.0
        # The client closed the connection after 64 KiB, so the server's writes failed
        # (a reset, not its own 5 s socket timeout) long before the end.
        assert await wait_until(progress.done.is_set, within=4.0)
    assert isinstance(progress.error, ConnectionError)
    assert progress.written < total // 2
    assert MAX_RESPONSE_BODY_BYTES == 64 * 1024


# --- address checks --------------------------------------------------------------------


async def test_blocked_ip_literal_sends_nothing(start_receiver: Callable[..., Receiver]) -> None:
    receiver = start_receiver()
    async with WebhookTransport(timeout_seconds=5, allow_private=False) as transport:
        result = await transport.post(
            url(f"http://127.0.0.1:{receiver.port}/"), headers=HEADERS, body=BODY
        )
        assert result == AttemptResult(status_code=None, error="blocked_address")
        result = await transport.post(
            url(f"http://[::1]:{receiver.port}/"), headers=HEADERS, body=BODY
        )
        assert result == AttemptResult(status_code=None, error="blocked_address")
    assert receiver.requests == []
    assert receiver.connections == 0


async def test_localhost_names_are_blocked_without_lookup(
    start_receiver: Callable[..., Receiver],
) -> None:
    receiver = start_receiver()
    resolver = FakeResolver({"localhost": [["8.8.8.8"]], "api.localhost": [["8.8.8.8"]]})
    async with WebhookTransport(
        timeout_seconds=5, allow_private=False, resolver=resolver
    ) as transport:
        for host in ("localhost", "api.localhost"):
            result = await transport.post(
                url(f"http://{host}:{receiver.port}/"), headers=HEADERS, body=BODY
            )
            assert result == AttemptResult(status_code=None, error="blocked_address")
    assert resolver.calls == []
    assert receiver.connections == 0


async def test_dns_rebinding_is_blocked(start_receiver: Callable[..., Receiver]) -> None:
    receiver = start_receiver()
    # A public address when the endpoint is saved, loopback when the delivery connects.
    resolver = FakeResolver({"rebind.test": [["93.184.215.14"], ["127.0.0.1"]]})
    checked = await check_webhook_url(
        f"http://rebind.test:{receiver.port}/hook",
        allow_http=True,
        allow_private=False,
        resolver=resolver,
    )
    async with WebhookTransport(
        timeout_seconds=5, allow_private=False, resolver=resolver
    ) as transport:
        result = await transport.post(checked, headers=HEADERS, body=BODY)
    assert result == AttemptResult(status_code=None, error="blocked_address")
    assert len(resolver.calls) == 2
    assert receiver.requests == []
    assert receiver.connections == 0


async def test_one_refused_address_blocks_the_delivery(
    start_receiver: Callable[..., Receiver],
) -> None:
    receiver = start_receiver()
    resolver = FakeResolver({"mixed.test": [["93.184.215.14", "127.0.0.1"]]})
    async with WebhookTransport(
        timeout_seconds=5, allow_private=False, resolver=resolver
    ) as transport:
        result = await transport.post(
            url(f"http://mixed.test:{receiver.port}/"), headers=HEADERS, body=BODY
        )
    assert result == AttemptResult(status_code=None, error="blocked_address")
    assert receiver.connections == 0


@pytest.mark.parametrize("allow_private", [True, False])
async def test_name_that_does_not_resolve(allow_private: bool) -> None:
    resolver = FakeResolver({"empty.test": [[]]})
    async with WebhookTransport(
        timeout_seconds=5, allow_private=allow_private, resolver=resolver
    ) as transport:
        result = await transport.post(url("https://nowhere.test/"), headers=HEADERS, body=BODY)
        assert result == AttemptResult(status_code=None, error="dns_error")
        result = await transport.post(url("https://empty.test/"), headers=HEADERS, body=BODY)
        assert result == AttemptResult(status_code=None, error="dns_error")


async def test_each_new_connection_resolves_once(start_receiver: Callable[..., Receiver]) -> None:
    receiver = start_receiver(keep_alive=False)
    resolver = FakeResolver({"hooks.test": [["127.0.0.1"]]})
    async with WebhookTransport(
        timeout_seconds=5, allow_private=True, resolver=resolver
    ) as transport:
        for _ in range(3):
            result = await transport.post(
                url(f"http://hooks.test:{receiver.port}/"), headers=HEADERS, body=BODY
            )
            assert result.succeeded
    assert receiver.connections == 3
    assert resolver.calls == [("hooks.test", receiver.port)] * 3
    assert [r.header("Host") for r in receiver.requests] == [[f"hooks.test:{receiver.port}"]] * 3


# --- TLS -------------------------------------------------------------------------------


async def test_tls_is_pinned_but_verified_for_the_name(
    start_receiver: Callable[..., Receiver], pki: Pki
) -> None:
    receiver = start_receiver(tls=pki.server_context("hooks.test"))
    resolver = FakeResolver({"hooks.test": [["127.0.0.1"]]})
    async with WebhookTransport(
        timeout_seconds=5, allow_private=True, resolver=resolver, ssl_context=pki.client_context()
    ) as transport:
        target = url(f"https://hooks.test:{receiver.port}/tls?x=1")
        first = await transport.post(target, headers=HEADERS, body=BODY)
        second = await transport.post(target, headers=HEADERS, body=b"second")
    assert first == second == AttemptResult(status_code=200, error=None)
    # One connection, kept alive and reused for the same name; one lookup for it.
    assert receiver.connections == 1
    assert resolver.calls == [("hooks.test", receiver.port)]
    assert receiver.server_names == ["hooks.test"]
    assert [r.body for r in receiver.requests] == [BODY, b"second"]
    assert receiver.requests[0].header("Host") == [f"hooks.test:{receiver.port}"]
    assert receiver.requests[0].target == "/tls?x=1"


async def test_certificate_for_another_name_is_a_tls_error(
    start_receiver: Callable[..., Receiver], pki: Pki
) -> None:
    receiver = start_receiver(tls=pki.server_context("other.test"))
    resolver = FakeResolver({"hooks.test": [["127.0.0.1"]]})
    async with WebhookTransport(
        timeout_seconds=5, allow_private=True, resolver=resolver, ssl_context=pki.client_context()
    ) as transport:
        result = await transport.post(
            url(f"https://hooks.test:{receiver.port}/"), headers=HEADERS, body=BODY
        )
    assert result == AttemptResult(status_code=None, error="tls_error")
    assert receiver.requests == []


async def test_self_signed_certificate_is_a_tls_error(
    start_receiver: Callable[..., Receiver], pki: Pki
) -> None:
    receiver = start_receiver(tls=pki.server_context("hooks.test", self_signed=True))
    resolver = FakeResolver({"hooks.test": [["127.0.0.1"]]})
    async with WebhookTransport(
        timeout_seconds=5, allow_private=True, resolver=resolver, ssl_context=pki.client_context()
    ) as transport:
        result = await transport.post(
            url(f"https://hooks.test:{receiver.port}/"), headers=HEADERS, body=BODY
        )
    assert result == AttemptResult(status_code=None, error="tls_error")
    assert receiver.requests == []


async def test_default_context_verifies_certificates(
    start_receiver: Callable[..., Receiver], pki: Pki
) -> None:
    # Without the test CA the system trust store is used, and it does not know our CA.
    receiver = start_receiver(tls=pki.server_context("hooks.test"))
    resolver = FakeResolver({"hooks.test": [["127.0.0.1"]]})
    async with WebhookTransport(
        timeout_seconds=5, allow_private=True, resolver=resolver
    ) as transport:
        result = await transport.post(
            url(f"https://hooks.test:{receiver.port}/"), headers=HEADERS, body=BODY
        )
    assert result == AttemptResult(status_code=None, error="tls_error")
    assert receiver.requests == []


async def test_https_to_a_plain_http_server_is_a_tls_error(
    start_receiver: Callable[..., Receiver], pki: Pki
) -> None:
    receiver = start_receiver()
    resolver = FakeResolver({"hooks.test": [["127.0.0.1"]]})
    async with WebhookTransport(
        timeout_seconds=5, allow_private=True, resolver=resolver, ssl_context=pki.client_context()
    ) as transport:
        result = await transport.post(
            url(f"https://hooks.test:{receiver.port}/"), headers=HEADERS, body=BODY
        )
    assert result == AttemptResult(status_code=None, error="tls_error")
    assert receiver.requests == []
