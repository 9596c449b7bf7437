"""One webhook delivery attempt over HTTP(S), connected only to checked addresses.

Built on ``httpcore`` rather than a full client on purpose: httpcore never reads proxy
environment variables (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``) and
never follows redirects, so a delivery goes to the endpoint's own host and nowhere else.
Keep it that way: no proxy support, no redirect handling.

DNS rebinding is stopped by :class:`_PinnedBackend`: httpcore asks its network backend to
connect to the origin's *host name*; the backend resolves it once, checks every address
(docs/SECURITY.md) and connects to those addresses only. The request itself keeps the
host name, so ``Host``, TLS SNI and certificate verification all use the name.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, TypeAlias, cast

import httpcore

from orgauth.webhooks.addresses import (
    DEFAULT_PORTS,
    Resolver,
    WebhookUrl,
    address_allowed,
    host_is_localhost,
    system_resolver,
)

logger = logging.getLogger(__name__)

#: At most this much of a response body is read (and thrown away): enough for a normal
#: answer to finish on a kept-alive connection, never enough to tie the worker up.
MAX_RESPONSE_BODY_BYTES = 64 * 1024

AttemptError: TypeAlias = Literal[
    "timeout",
    "connection_error",
    "tls_error",
    "http_status",
    "redirect",
    "blocked_address",
    "dns_error",
]


@dataclass(frozen=True)
class AttemptResult:
    """What one delivery attempt came to; nothing of the response body is kept."""

    status_code: int | None  #: None when no response head arrived
    #: None on success (a 2xx status). The transport only sets :data:`AttemptError`
    #: values; ``str`` so that callers may record their own reasons in the same shape.
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.error is None


class BlockedAddressError(Exception):
    """The host is, or resolves to, an address webhooks may not reach; nothing was sent."""


class NameResolutionError(Exception):
    """The host name did not resolve."""


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that connects only to addresses it has just checked.

    httpcore calls :meth:`connect_tcp` with the origin's host name once per new
    connection (pooled connections are keyed by scheme, host name and port, so one is
    only ever reused for the same name). The name is resolved exactly once here and the
    wrapped backend gets IP addresses, so it performs no second lookup that a rebinding
    DNS server could answer differently.
    """

    def __init__(
        self,
        *,
        resolver: Resolver,
        allow_private: bool,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._resolver = resolver
        self._allow_private = allow_private
        # httpcore's default backend on asyncio is AnyIOBackend (AutoBackend picks it),
        # and AnyIOBackend is the public name for it.
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def _addresses(self, host: str, port: int) -> list[str]:
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            if not self._allow_private and host_is_localhost(host):
                raise BlockedAddressError
            try:
                addresses = await self._resolver(host, port)
            except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
                raise NameResolutionError from exc
            if not addresses:
                raise NameResolutionError
        if not self._allow_private and not all(address_allowed(a) for a in addresses):
            # Refuse if any address is bad rather than picking the good ones: a name that
            # mixes public and internal addresses is not one we deliver to.
            raise BlockedAddressError
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        # httpcore's interface: it passes its "connect" timeout by this name.
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._addresses(host, port)
        last_error: Exception = NameResolutionError()
        # Try the checked addresses in the resolver's order, as getaddrinfo users do.
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # Never used (the pool has no ``uds``); refuse rather than reach a local socket.
        raise BlockedAddressError

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _is_tls_error(exc: BaseException) -> bool:
    """Whether an ``ssl`` error is the exception, its argument, or in its cause chain.

    httpcore turns a failed handshake into ``ConnectError(ssl_error)`` raised ``from`` the
    ``ssl.SSLError`` (``ssl.CertificateError`` is a subclass); its pool then re-raises it
    ``from None``, which clears ``__cause__`` but keeps ``__context__`` and the argument.
    """
    tls_errors = (ssl.SSLError, ssl.CertificateError)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, tls_errors) or any(isinstance(a, tls_errors) for a in current.args):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _classify(exc: Exception) -> AttemptError:
    if isinstance(exc, BlockedAddressError):
        return "blocked_address"
    if isinstance(exc, NameResolutionError):
        return "dns_error"
    if isinstance(exc, httpcore.TimeoutException | TimeoutError):
        return "timeout"
    if _is_tls_error(exc):
        return "tls_error"
    if not isinstance(exc, httpcore.NetworkError | httpcore.ProtocolError | OSError):
        # Not a network failure: most likely a bad header from the caller. Log the type
        # only; messages and the request could carry the URL or signature headers.
        logger.warning("webhook attempt failed unexpectedly: %s", type(exc).__name__)
    return "connection_error"


def _result_for_status(status: int) -> AttemptResult:
    if 200 <= status <= 299:
        return AttemptResult(status_code=status, error=None)
    if 300 <= status <= 399:
        # Redirects are never followed: the target was not checked, and would get the
        # signed payload.
        return AttemptResult(status_code=status, error="redirect")
    return AttemptResult(status_code=status, error="http_status")


def _host_header(url: WebhookUrl) -> str:
    host = f"[{url.host}]" if ":" in url.host else url.host
    if url.port != DEFAULT_PORTS[url.scheme]:
        host += f":{url.port}"
    return host


# Set by the transport itself; a caller's copy is dropped so the request stays unambiguous.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding"})


class WebhookTransport:
    """Sends webhook requests through one connection pool, with the SSRF checks applied.

    ``ssl_context`` defaults to :func:`ssl.create_default_context` (certificate and host
    name verification); tests pass one that trusts their own CA.
    """

    def __init__(
        self,
        *,
        timeout_seconds: float,
        allow_private: bool,
        max_connections: int = 50,
        resolver: Resolver = system_resolver,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._timeout_seconds = timeout_seconds
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context if ssl_context is not None else ssl.create_default_context(),
            max_connections=max_connections,
            # Idle connections are dropped after a while; a new one is resolved and
            # checked again.
            keepalive_expiry=30.0,
            http1=True,
            http2=False,
            retries=0,  # retrying is the outbox's job, with its own schedule
            network_backend=_PinnedBackend(resolver=resolver, allow_private=allow_private),
        )

    async def post(
        self, url: WebhookUrl, *, headers: list[tuple[str, str]], body: bytes
    ) -> AttemptResult:
        """POST ``body`` to ``url``; never raises except :class:`asyncio.CancelledError`."""
        request_headers = [(k, v) for k, v in headers if k.lower() not in _OWN_HEADERS]
        request_headers += [("Host", _host_header(url)), ("Content-Length", str(len(body)))]
        timeout = self._timeout_seconds
        status: int | None = None
        try:
            # The URL keeps the host *name*: httpcore hands it to our backend's
            # connect_tcp (which pins the address) and, for https, to start_tls as
            # ``server_hostname=sni_hostname or origin.host`` (httpcore 1.0,
            # AsyncHTTPConnection._connect; we never set the sni_hostname extension), so
            # SNI and certificate verification are for the name, not the pinned IP.
            request = httpcore.Request(
                "POST",
                httpcore.URL(scheme=url.scheme, host=url.host, port=url.port, target=url.target),
                headers=request_headers,
                content=body,
                extensions={
                    "timeout": {
                        "connect": timeout,
                        "read": timeout,
                        "write": timeout,
                        "pool": timeout,
                    }
                },
            )
            # httpcore's timeouts apply per operation; this bounds the whole attempt.
            async with asyncio.timeout(timeout):
                response = await self._pool.handle_async_request(request)
                status = response.status
                try:
                    await self._discard_body(response)
                finally:
                    await response.aclose()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if status is not None:
                # The head arrived; failing to read the rest does not change the answer.
                return _result_for_status(status)
            return AttemptResult(status_code=None, error=_classify(exc))
        return _result_for_status(status)

    @staticmethod
    async def _discard_body(response: httpcore.Response) -> None:
        """Read and drop at most MAX_RESPONSE_BODY_BYTES; errors here are ignored."""
        received = 0
        # aiter_stream() is an async generator: close it explicitly when stopping early.
        chunks = cast(AsyncGenerator[bytes, None], response.aiter_stream())
        with contextlib.suppress(httpcore.NetworkError, httpcore.ProtocolError):
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    received += len(chunk)
                    if received >= MAX_RESPONSE_BODY_BYTES:
                        # Closing an unfinished response closes its connection, so the
                        # rest is never read.
                        break

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def __aenter__(self) -> WebhookTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
