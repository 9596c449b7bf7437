"""A real HTTP webhook receiver on 127.0.0.1 for the tests, and helpers around it."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from orgauth.models import WebhookDelivery
from tests.support.http import API


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """Records every POST; answers with the next scripted status (then ``default``)."""

    url: str
    received: list[Received] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    default: int = 200
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> int:
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    def of_type(self, event_type: str) -> list[Received]:
        return [item for item in self.received if item.json["type"] == event_type]

    def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.received)


@contextmanager
def running_receiver(path: str = "/hooks") -> Iterator[Receiver]:
    """A threaded HTTP server on 127.0.0.1 (a free port) for as long as the block runs."""
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            receiver = state["receiver"]
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with receiver.lock:
                receiver.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
            if receiver.delay:
                time.sleep(receiver.delay)
            code = receiver.answer()
            self.send_response(code)
            if 300 <= code < 400:
                self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return

    class Server(ThreadingHTTPServer):
        request_queue_size = 256  # workers open up to 50 connections at once

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    state["receiver"] = Receiver(url=f"http://127.0.0.1:{port}{path}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["receiver"]
    finally:
        server.shutdown()
        server.server_close()


def webhooks_url(org_id: uuid.UUID | str) -> str:
    return f"{API}/organizations/{org_id}/webhooks"


async def create_endpoint(
    client: httpx.AsyncClient,
    org_id: uuid.UUID | str,
    headers: dict[str, str],
    url: str,
    events: list[str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    response = await client.post(
        webhooks_url(org_id),
        json={"url": url, "events": events or ["*"], **fields},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def deliveries(engine: AsyncEngine) -> list[WebhookDelivery]:
    """Every delivery row, oldest first."""
    async with AsyncSession(engine) as session:
        rows = await session.scalars(
            select(WebhookDelivery).order_by(
                col(WebhookDelivery.created_at), col(WebhookDelivery.id)
            )
        )
        return list(rows)
