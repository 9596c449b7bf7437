"""The standalone server process (``orgauth serve``): what uvicorn runs it with.

* :class:`BoundedHttpToolsProtocol`: uvicorn's httptools protocol with the request head
  (target and headers) bounded, since uvicorn bounds it only for its slower h11 parser;
* :func:`freeze_startup_objects`: keeps the objects loaded at startup out of the garbage
  collector's full collections.

Both are usable by an app embedding orgauth under its own uvicorn (docs/DEPLOYMENT.md).
"""

from __future__ import annotations

import gc
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


def freeze_startup_objects() -> None:
    """Collect the garbage of the startup, then freeze what is left (``gc.freeze``).

    Those objects live as long as the process (over 100 000 of them: FastAPI, pydantic,
    SQLAlchemy, the routes), and each full collection would walk them all again: about
    120 ms during which the event loop answers nobody, twice a second under load. Frozen,
    they are still freed when unreferenced; full collections walk only what came later.
    """
    gc.collect()
    gc.freeze()


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
