"""create_app(settings): the standalone orgauth server."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from orgauth._version import __version__
from orgauth.api.docs import install_docs
from orgauth.api.errors import install_standalone_error_handlers
from orgauth.extension import OrgAuth
from orgauth.logs import configure_logging
from orgauth.settings import OrgAuthSettings, load_settings

#: Upper bound on a request's target and headers in ``orgauth serve``: as much as nginx's
#: default buffers (4 x 8 KiB), twice h11's default.
MAX_REQUEST_HEAD_BYTES = 32 * 1024
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 31\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"Request header fields too large"
)


def create_app(settings: OrgAuthSettings | None = None) -> FastAPI:
    """Build the standalone app: every orgauth route, ``/health`` and (optionally) the docs."""
    return _create_app(settings if settings is not None else load_settings(), server=False)


def create_app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` (used by ``orgauth serve``).

    The app for a server process: once its startup is complete, everything loaded so far
    (modules, routes, compiled statements) is moved out of the garbage collector's way,
    see :func:`freeze_startup_objects`.
    """
    return _create_app(load_settings(), server=True)


def freeze_startup_objects() -> None:
    """Collect the garbage of the startup, then freeze what is left (``gc.freeze``).

    Those objects live as long as the process (over 100 000 of them: FastAPI, pydantic,
    SQLAlchemy, the routes), and each full collection would walk them all again: about
    120 ms during which the event loop answers nobody, twice a second under load. Frozen,
    they are still freed when unreferenced; full collections walk only what came later.
    """
    gc.collect()
    gc.freeze()


def _create_app(settings: OrgAuthSettings, *, server: bool) -> FastAPI:
    configure_logging(settings)
    auth = OrgAuth(settings)
    docs = settings.docs_are_enabled
    openapi_url = f"{settings.api_prefix}/openapi.json"
    app = FastAPI(
        title="orgauth",
        version=__version__,
        description="Authentication, sessions and organizations.",
        lifespan=_server_lifespan(auth) if server else auth.lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=openapi_url if docs else None,
        # Starlette would answer "/users/me/" with a redirect to an absolute URL built from
        # the request's Host header; orgauth's routes have one spelling, the rest is 404.
        redirect_slashes=False,
    )
    auth.install(app)  # first: routes are matched in order, and /health and /users/me are hot
    if docs:
        install_docs(app, openapi_url=openapi_url, title="orgauth")
    install_standalone_error_handlers(app)
    return app


def _server_lifespan(
    auth: OrgAuth,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with auth.lifespan(app):
            freeze_startup_objects()
            yield

    return lifespan


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the request head bounded (``orgauth serve``).

    httptools keeps any amount of request line and headers in memory until the head is
    complete (one 30 MiB header grew the worker's peak memory by 60 MiB), and uvicorn's
    bound, ``h11_max_incomplete_event_size``, exists for its h11 parser only, which parses
    in Python (about a third fewer ``/health`` requests per second). This keeps httptools
    and answers 431, closing the connection, when a request's target and headers add up
    to more than :data:`MAX_REQUEST_HEAD_BYTES`: once they are complete, or as soon as more
    than that has arrived of an unfinished head, so a client cannot make the worker hold
    more than that and two reads (256 KiB each).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_message = False  # from a request's first byte to the end of its body
        self._head_open = False  # from a request's first byte to the end of its headers
        self._heads = 0  # requests begun on this connection
        self._head_bytes = 0  # of the unfinished head, counted by whole reads
        self._refused = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_message = self._head_open = True
        self._heads += 1
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._head_open = False
        if self._refused:
            return
        size = len(self.url) + sum(len(name) + len(value) for name, value in self.headers)
        if size > MAX_REQUEST_HEAD_BYTES:
            self._refuse()
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        if not self._refused:
            super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        idle, heads = not self._in_message, self._heads
        super().data_received(data)
        # A read counts when all of it is head: the head was open before it or began with
        # it, and is still unfinished after it. (A head that begins in the middle of a
        # read, after a pipelined request, counts from its next read on.)
        if self._head_open and (self._heads == heads or (idle and self._heads == heads + 1)):
            self._head_bytes += len(data)
            if self._head_bytes > MAX_REQUEST_HEAD_BYTES:
                self._refuse()

    def _refuse(self) -> None:
        self._refused = True
        if not self.transport.is_closing():
            self.logger.warning("Request header fields too large.")
            self.transport.write(_HEAD_TOO_LARGE)
            self.transport.close()
