"""Pure ASGI middleware: security headers and the request body limit.

Plain ASGI (not BaseHTTPMiddleware) keeps the per-request cost to a function call.
"""

from __future__ import annotations

import json
import logging

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orgauth.errors import ErrorCode, error_body
from orgauth.lengths import MAX_BODY_BYTES
from orgauth.security.headers import SecurityHeaders

logger = logging.getLogger("orgauth.errors")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response, errors and 404s included.

    A header the response already has is left as it is: a host route with its own
    ``Content-Security-Policy`` (say, for a page of its own) keeps it.
    """

    def __init__(self, app: ASGIApp, headers: SecurityHeaders) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers.for_path(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(pair for pair in extra if pair[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def send_error(
    send: Send, status: int, code: ErrorCode, message: str, *, close: bool = False
) -> None:
    """Answer with orgauth's error body straight from ASGI middleware."""
    body = json.dumps(error_body(code, message)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _too_large(send: Send) -> None:
    await send_error(
        send,
        413,
        ErrorCode.PAYLOAD_TOO_LARGE,
        "The request body is too large.",
        close=True,
    )


class BodyLimitMiddleware:
    """Refuses bodies over ``max_bytes`` with 413, by Content-Length or while streaming
    (chunked uploads are read up to the limit, then refused before the app sees them)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_bytes + 1
                if declared > self.max_bytes:
                    await _too_large(send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False
        body = b"".join(chunks)

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class StrictCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, except that credentials are granted only to listed
    origins (Starlette also sends ``Access-Control-Allow-Credentials`` to other ones)."""

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        origin = request_headers.get("origin", "")
        if message["type"] != "http.response.start" or self.is_allowed_origin(origin):
            await super().send(message, send, request_headers)
            return

        async def without_credentials(outgoing: Message) -> None:
            if outgoing["type"] == "http.response.start":
                headers = MutableHeaders(scope=outgoing)
                if "access-control-allow-credentials" in headers:
                    del headers["access-control-allow-credentials"]
            await send(outgoing)

        await super().send(message, without_credentials, request_headers)

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        refused = not self.is_allowed_origin(request_headers.get("origin", ""))
        if refused and "access-control-allow-credentials" in response.headers:
            del response.headers["access-control-allow-credentials"]
        return response


class UnhandledErrorMiddleware:
    """Turns an unexpected exception into the generic 500 body (details only in the log).

    It sits inside the security-header and CORS middleware, so even a 500 carries them.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = completed = False

        async def tracking_send(message: Message) -> None:
            nonlocal started, completed
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                completed = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception(
                "unhandled error", extra={"path": scope.get("path"), "method": scope.get("method")}
            )
            if completed:
                # The client has its whole response (the failure was in clean-up after it,
                # e.g. a dependency's teardown): keep the connection open for its next one.
                return
            if started:
                raise  # a truncated response: the server must drop the connection
            await send_error(send, 500, ErrorCode.INTERNAL_ERROR, "An unexpected error occurred.")
