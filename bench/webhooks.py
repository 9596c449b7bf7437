"""Audit log and webhooks: ``python bench/webhooks.py [--database postgresql|sqlite|both]
[--only NAME]...``.

Four scenarios, each in-process (the app driven through ASGI, no network) on a scratch
database that is dropped afterwards:

* ``membership``: a member's role changed back and forth (``PATCH .../members/{id}``,
  sequential) in an organization with 3 enabled endpoints subscribed to ``*`` (each change
  writes 1 audit row and 3 delivery rows), against the same change with the audit event
  and the outbox switched off. "Switched off" exists for this benchmark only: the
  ``record`` name imported by ``orgauth.services.organizations`` is replaced by a no-op
  with ``unittest.mock.patch``. The variants are interleaved (on, off, off, on, ...);
  requests/s per round, their medians and the ratio, and the statements of one change in
  each variant (``before_cursor_execute``; an executemany counts as one).
* ``delivery``: ``WebhookWorker.deliver_due()`` sending pending deliveries to a receiver in
  another process (uvicorn, a tiny ASGI app answering 204, no access log), which counts
  the ``webhook-id`` headers it got; deliveries/s, and the worker process's peak RSS after
  N and after 4 x N deliveries (a child process of this script, so nothing else counts).
* ``audit-page`` (PostgreSQL): 1 000 000 ``audit_events`` rows (COPY), one organization with
  5 000 of them; p50/p95 of 200 first pages and 200 cursor pages of
  ``GET .../audit-logs?action=member.added&limit=50``, and ``EXPLAIN (ANALYZE, BUFFERS)`` of
  the exact SELECT the route sends.
* ``export``: peak RSS of a child process that only streams ``GET .../audit-logs/export``
  (JSON Lines and CSV) of 10 000 and of 100 000 rows, reading the body chunk by chunk and
  dropping it (a bare ASGI call: httpx's ``ASGITransport`` keeps the whole body).

Prints a Markdown table per scenario and writes them to
``bench/results-<database>-webhooks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

HERE = Path(__file__).resolve().parent
SCRIPT = str(Path(__file__).resolve())
PASSWORD = "Quartz-lantern-Orbit-71"
# Fixed, so that child processes accept the parent's access tokens.
SECRET_KEY = "bench-webhooks-secret-key-0123456789-abcdefghij"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SCENARIOS = ("membership", "delivery", "audit-page", "export")
CHUNK = 2_000

# --- targets --------------------------------------------------------------------------
MEMBERSHIP_RATIO_TARGET = 0.8
EXTRA_INSERTS_TARGET = 2
DELIVERY_RATE_TARGET = 200.0
AUDIT_P95_TARGET_MS = 20.0
AUDIT_INDEX = "ix_audit_events_organization_id_occurred_at_id"

# Audit actions: the account's own (no organization) and an organization's.
USER_ACTIONS = (
    "login.success",
    "login.failure",
    "user.registered",
    "user.profile_updated",
    "password.changed",
    "password.reset_requested",
    "password.reset_completed",
    "email.verified",
    "email.change_requested",
    "email.changed",
    "session.revoked",
    "mfa.enabled",
)
ORG_ACTIONS = (
    "member.added",
    "member.removed",
    "member.role_changed",
    "member.left",
    "invitation.created",
    "invitation.accepted",
    "invitation.revoked",
    "invitation.resent",
    "organization.created",
    "organization.updated",
    "role.created",
    "role.updated",
    "api_key.created",
    "api_key.revoked",
    "webhook.created",
    "webhook.updated",
    "webhook.secret_rotated",
    "audit.exported",
)


# --- common -----------------------------------------------------------------------------


def kib_to_mib(kib: float) -> float:
    return kib / 1024


def peak_rss_mib() -> float:
    """This process's peak RSS in MiB: ``VmHWM`` of its own memory since ``exec``, else
    ``ru_maxrss``. On Linux ``ru_maxrss`` survives ``execve``: a child started by this
    script would report the parent's peak (e.g. after seeding) instead of its own."""
    return status_mib("VmHWM") or maxrss_mib()


def maxrss_mib() -> float:
    """``ru_maxrss`` (KiB on Linux) in MiB."""
    return kib_to_mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def status_mib(name: str) -> float:
    """A ``/proc/self/status`` memory figure (``VmRSS``, ``VmHWM``) in MiB; 0 if absent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def current_rss_mib() -> float:
    return status_mib("VmRSS")


def reset_peak_rss() -> bool:
    """Reset this process's ``VmHWM`` to its current RSS (Linux >= 4.0); False if refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    """``median (min-max)``."""
    return (
        f"{fmt.format(statistics.median(values))} "
        f"({fmt.format(min(values))}-{fmt.format(max(values))})"
    )


def percentile(samples: list[float], pct: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def scratch_database(kind: str, postgres_url: str, workdir: Path) -> AsyncIterator[str]:
    """The URL of a new, empty database (dropped afterwards on PostgreSQL)."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / f'webhooks-{uuid.uuid4().hex[:8]}.db'}"
        return
    import asyncpg

    name = f"orgauth_bench_webhooks_{secrets.token_hex(4)}"
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        connection = await asyncpg.connect(postgres_url)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


def bench_settings(url: str, workdir: Path, **overrides: Any) -> Any:
    from orgauth.settings import OrgAuthSettings

    values: dict[str, Any] = {
        "_env_file": None,
        "database_url": url,
        "secret_key": SECRET_KEY,
        "bcrypt_rounds": 4,
        "rate_limit_enabled": False,
        "webhook_delivery_enabled": False,
        "email_backend": "file",
        "email_file_dir": str(workdir / "emails"),
        "log_level": "WARNING",
        "db_pool_size": 4,
        "db_max_overflow": 2,
    }
    values.update(overrides)
    return OrgAuthSettings(**values)


async def migrate_database(settings: Any) -> None:
    from orgauth import migrate
    from orgauth.db import create_engine

    engine = create_engine(settings)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


@asynccontextmanager
async def running_app(settings: Any) -> AsyncIterator[tuple[Any, Any]]:
    """(app, httpx client on it through ASGI), the app's lifespan running."""
    import httpx

    from orgauth.app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            yield app, client


async def call(
    client: Any, method: str, path: str, token: str | None = None, body: Any = None
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.request(method, "/api/v1" + path, json=body, headers=headers)
    if response.status_code >= 300:
        raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
    return response.json() if response.content else None


async def account(client: Any, email: str) -> tuple[str, str]:
    """(user id, access token) of a new account."""
    user = await call(client, "POST", "/auth/register", body={"email": email, "password": PASSWORD})
    login = await call(client, "POST", "/auth/login", body={"email": email, "password": PASSWORD})
    return str(user["id"]), str(login["access_token"])


async def organization(client: Any, token: str, name: str) -> str:
    return str((await call(client, "POST", "/organizations", token, {"name": name}))["id"])


@contextmanager
def capture_sql(sync_engine: Any) -> Iterator[list[tuple[str, Any]]]:
    """(statement, parameters) of everything ``sync_engine`` sends; executemany is one."""
    from sqlalchemy import event

    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(sync_engine, "before_cursor_execute", record)


def head(statement: str, width: int = 90) -> str:
    flat = " ".join(statement.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def table(header: list[str], rows: list[list[str]], marks: list[str] | None = None) -> list[str]:
    """A Markdown table; ``marks`` per column (default: the first left, the rest right)."""
    marks = marks or ["---"] + ["---:"] * (len(header) - 1)
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(marks) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


BUDGET = ["---", "---:", "---:", ":---:"]


def met(ok: bool) -> str:
    return "yes" if ok else "NO"


# --- 1. membership ------------------------------------------------------------------------

ON, OFF = "audit + outbox", "switched off"


def _no_record(*_args: Any, **_kwargs: Any) -> None:
    """The benchmark's stand-in for ``orgauth.events.record``: no event, no outbox."""


def variant(name: str) -> Any:
    if name == ON:
        return nullcontext()
    return mock.patch("orgauth.services.organizations.record", _no_record)


@dataclass
class MembershipRun:
    kind: str
    requests: int
    rounds: dict[str, list[float]] = field(default_factory=dict)  # req/s by variant
    order: list[str] = field(default_factory=list)
    statements: dict[str, list[str]] = field(default_factory=dict)
    rows_written: dict[str, tuple[int, int]] = field(default_factory=dict)  # audit, deliveries


async def count_rows(engine: Any) -> tuple[int, int]:
    async with engine.connect() as connection:
        audit = await connection.exec_driver_sql("SELECT count(*) FROM audit_events")
        deliveries = await connection.exec_driver_sql("SELECT count(*) FROM webhook_deliveries")
        return int(audit.scalar_one()), int(deliveries.scalar_one())


async def membership(kind: str, args: argparse.Namespace, workdir: Path) -> MembershipRun:
    run = MembershipRun(kind, args.requests)
    async with scratch_database(kind, args.postgres_url, workdir) as url:
        settings = bench_settings(url, workdir)
        await migrate_database(settings)
        async with running_app(settings) as (app, client):
            _, owner = await account(client, "owner@webhooks.example.com")
            org = await organization(client, owner, "Webhook Bench")
            member_email = "member@webhooks.example.com"
            member_id, _ = await account(client, member_email)
            await call(
                client,
                "POST",
                f"/organizations/{org}/members",
                owner,
                {"email": member_email, "role": "member"},
            )
            for i in range(3):
                await call(
                    client,
                    "POST",
                    f"/organizations/{org}/webhooks",
                    owner,
                    {"url": f"https://receiver-{i}.bench.invalid/hooks", "events": ["*"]},
                )
            path = f"/api/v1/organizations/{org}/members/{member_id}"
            headers = {"Authorization": f"Bearer {owner}"}
            roles = itertools.cycle(("admin", "member"))

            async def change() -> None:
                response = await client.patch(path, json={"role": next(roles)}, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"PATCH member: {response.status_code} {response.text}")

            engine = app.state.orgauth.engine
            for name in (ON, OFF):
                with variant(name):
                    for _ in range(args.warmup):
                        await change()
                    before = await count_rows(engine)
                    with capture_sql(engine.sync_engine) as seen:
                        await change()
                    after = await count_rows(engine)
                run.statements[name] = [s for s, _ in seen]
                run.rows_written[name] = (after[0] - before[0], after[1] - before[1])
            run.order = [ON, OFF, OFF, ON] * ((args.rounds + 1) // 2)
            for name in run.order:
                with variant(name):
                    started = time.perf_counter()
                    for _ in range(args.requests):
                        await change()
                    rate = args.requests / (time.perf_counter() - started)
                run.rounds.setdefault(name, []).append(rate)
                print(f"# {kind} membership {name}: {rate:.1f} req/s", file=sys.stderr)
    return run


def render_membership(run: MembershipRun) -> list[str]:
    on, off = run.rounds[ON], run.rounds[OFF]
    ratio = statistics.median(on) / statistics.median(off)
    # Per-pair ratios: each "on" round against the "off" round next to it.
    pairs = [a / b for a, b in zip(on, off, strict=True)]
    inserts = {
        name: sum(1 for s in statements if s.lstrip().upper().startswith("INSERT"))
        for name, statements in run.statements.items()
    }
    extra = inserts[ON] - inserts[OFF]
    lines = [
        f"### {run.kind}: membership change with audit + outbox against switched off",
        "",
        "`PATCH /organizations/{id}/members/{user_id}` (role admin <-> member), sequential, "
        'in-process; 3 enabled endpoints subscribed to `*`. "Switched off": '
        "`orgauth.services.organizations.record` patched with a no-op (benchmark only). "
        f"{len(on)} rounds of {run.requests} requests per variant, order "
        f"{', '.join('on' if n == ON else 'off' for n in run.order)}, after warm-up.",
        "",
    ]
    lines += table(
        ["variant", "req/s median (range)", "rounds", "statements", "INSERTs", "rows written"],
        [
            [
                name,
                spread(run.rounds[name]),
                " / ".join(f"{r:.0f}" for r in run.rounds[name]),
                str(len(run.statements[name])),
                str(inserts[name]),
                f"{run.rows_written[name][0]} audit, {run.rows_written[name][1]} deliveries",
            ]
            for name in (ON, OFF)
        ],
        ["---", "---:", "---", "---:", "---:", "---"],
    )
    lines += [
        "",
        *table(
            ["budget", "measured", "target", "met"],
            [
                [
                    "req/s with audit + outbox / switched off",
                    f"{ratio:.2f}x (pairs {min(pairs):.2f}-{max(pairs):.2f})",
                    f">= {MEMBERSHIP_RATIO_TARGET}x",
                    met(ratio >= MEMBERSHIP_RATIO_TARGET),
                ],
                [
                    "extra INSERTs per change",
                    str(extra),
                    f"<= {EXTRA_INSERTS_TARGET}",
                    met(extra <= EXTRA_INSERTS_TARGET),
                ],
            ],
            BUDGET,
        ),
    ]
    for name in (ON, OFF):
        lines += ["", f"Statements of one change, {name}:", "", "```"]
        lines += [f"{i + 1:2}. {head(s)}" for i, s in enumerate(run.statements[name])]
        lines += ["```"]
    return [*lines, ""]


# --- 2. delivery --------------------------------------------------------------------------

RECEIVER = '''
"""A webhook receiver for the benchmark: 204 to every POST /hook, counts webhook-id."""
import json

seen = {}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    if scope["path"] == "/hook":
        msg_id = dict(scope["headers"]).get(b"webhook-id", b"")
        seen[msg_id] = seen.get(msg_id, 0) + 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = json.dumps({"requests": sum(seen.values()), "unique": len(seen)}).encode()
    if scope["method"] == "DELETE":
        seen.clear()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
'''


class Receiver:
    """The receiver under uvicorn in its own process."""

    def __init__(self, workdir: Path) -> None:
        (workdir / "webhook_receiver.py").write_text(RECEIVER)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "uvicorn", "webhook_receiver:app", "--app-dir"]
        command += [str(workdir), "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--no-access-log", "--log-level", "warning"]
        self.proc = subprocess.Popen(command, cwd=workdir)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.stats()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the webhook receiver did not start") from None
                time.sleep(0.1)

    def stats(self, *, reset: bool = False) -> dict[str, int]:
        request = urllib.request.Request(self.base + "/stats", method="DELETE" if reset else "GET")
        with urllib.request.urlopen(request, timeout=10) as response:
            return dict(json.loads(response.read()))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def sample_payload(org_id: str, event: uuid.UUID, at: datetime) -> str:
    """A ``member.role_changed`` body as the outbox writes it (~600 bytes, compact)."""
    user = str(uuid.uuid4())
    document = {
        "id": f"evt_{event.hex}",
        "type": "member.role_changed",
        "timestamp": at.isoformat(),
        "organization_id": org_id,
        "actor": {"type": "user", "id": str(uuid.uuid4()), "impersonator_id": None},
        "data": {
            "member": {
                "user_id": user,
                "email": "someone.with.a.long.name@customer-company.example.com",
                "first_name": "Someone",
                "last_name": "Withalongname",
                "role": "admin",
                "permissions": [
                    "members:read",
                    "members:invite",
                    "members:update",
                    "organization:read",
                ],
                "joined_at": (at - timedelta(days=40)).isoformat(),
            },
            "previous_role": "member",
        },
    }
    return json.dumps(document, separators=(",", ":"))


async def seed_deliveries(engine: Any, endpoint: Any, count: int) -> None:
    """``count`` pending deliveries to ``endpoint``, due now, in chunks (Core insert)."""
    from sqlalchemy import insert

    from orgauth.models import DELIVERY_PENDING, WebhookDelivery, utcnow

    now = utcnow() - timedelta(seconds=1)
    org = str(endpoint.organization_id)
    for start in range(0, count, CHUNK):
        rows = []
        for _ in range(min(CHUNK, count - start)):
            event = uuid.uuid4()
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "endpoint_id": endpoint.id,
                    "organization_id": endpoint.organization_id,
                    "event_id": event,
                    "event_type": "member.role_changed",
                    "payload": sample_payload(org, event, now),
                    "url": endpoint.url,
                    "secret_encrypted": endpoint.secret_encrypted,
                    "status": DELIVERY_PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
        async with engine.begin() as connection:
            await connection.execute(insert(WebhookDelivery), rows)


def observed_worker_class() -> Any:
    """``WebhookWorker`` that also notes how many rows each claim took (nothing else
    changes): the batch bound is part of what is measured."""
    from orgauth.webhooks.worker import WebhookWorker

    class ObservedWorker(WebhookWorker):
        claims: list[int]

        async def _claim(self, token: uuid.UUID, due_by: datetime) -> Any:
            claimed = await super()._claim(token, due_by)
            self.claims.append(len(claimed))
            return claimed

    return ObservedWorker


async def delivery_child(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """The delivery scenario in this (child) process; its results as a dict."""
    with tempfile.TemporaryDirectory(prefix="orgauth-bench-webhooks-") as tmp:
        return await _delivery_child(kind, args, Path(tmp))


async def _delivery_child(kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from sqlalchemy import select

    from orgauth.models import WebhookEndpoint

    observed = observed_worker_class()
    receiver = Receiver(workdir)
    out: dict[str, Any] = {"kind": kind, "n": args.deliveries, "runs": []}
    out["analyzed"] = args.analyze_outbox
    try:
        async with scratch_database(kind, args.postgres_url, workdir) as url:
            settings = bench_settings(url, workdir, webhook_allow_private_urls=True)
            await migrate_database(settings)
            async with running_app(settings) as (app, client):
                _, owner = await account(client, "owner@webhooks.example.com")
                org = await organization(client, owner, "Delivery Bench")
                await call(
                    client,
                    "POST",
                    f"/organizations/{org}/webhooks",
                    owner,
                    {"url": receiver.base + "/hook", "events": ["*"]},
                )
                auth = app.state.orgauth
                async with auth.sessionmaker() as db:
                    endpoint = (
                        await db.execute(
                            select(
                                WebhookEndpoint.id,
                                WebhookEndpoint.organization_id,
                                WebhookEndpoint.url,
                                WebhookEndpoint.secret_encrypted,
                            )
                        )
                    ).one()
                worker = observed(auth.sessionmaker, settings)
                worker.claims = []
                out["batch"], out["concurrency"] = worker.batch_size, worker.concurrency
                out["rss_start_mib"] = peak_rss_mib()
                sizes = [args.deliveries] * args.delivery_rounds + [4 * args.deliveries]
                try:
                    for count in sizes:
                        await seed_deliveries(auth.engine, endpoint, count)
                        if args.analyze_outbox:
                            async with auth.engine.begin() as connection:
                                await connection.exec_driver_sql("ANALYZE webhook_deliveries")
                        receiver.stats(reset=True)
                        started = time.perf_counter()
                        worker.claims.clear()
                        tally = await worker.deliver_due()
                        seconds = time.perf_counter() - started
                        got = receiver.stats()
                        result = {
                            "count": count,
                            "seconds": seconds,
                            "rate": count / seconds,
                            "succeeded": tally.succeeded,
                            "failed": tally.failed,
                            "received": got["requests"],
                            "unique": got["unique"],
                            "peak_rss_mib": peak_rss_mib(),
                            "rss_mib": current_rss_mib(),
                            "batches": len([c for c in worker.claims if c]),
                            "largest_claim": max(worker.claims, default=0),
                        }
                        out["runs"].append(result)
                        print(
                            f"# {kind} delivery {count}: {result['rate']:.0f}/s, "
                            f"peak RSS {result['peak_rss_mib']:.1f} MiB",
                            file=sys.stderr,
                        )
                finally:
                    await worker.aclose()
    finally:
        receiver.stop()
    return out


def delivery(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run the delivery scenario in a fresh child process (a clean ``ru_maxrss``)."""
    command = [sys.executable, SCRIPT, "--database", kind]
    command += ["--postgres-url", args.postgres_url, "--deliveries", str(args.deliveries)]
    command += ["--delivery-rounds", str(args.delivery_rounds), "--child", "delivery"]
    command += ["--analyze-outbox"] if args.analyze_outbox else []
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"the delivery child failed ({proc.returncode})")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def render_delivery(result: dict[str, Any]) -> list[str]:
    n = result["n"]
    runs = result["runs"]
    at_n = [r for r in runs if r["count"] == n]
    at_4n = [r for r in runs if r["count"] == 4 * n]
    rates = [r["rate"] for r in runs]
    correct = all(
        r["received"] == r["count"] == r["unique"] == r["succeeded"] and r["failed"] == 0
        for r in runs
    )
    rss_n = max(r["peak_rss_mib"] for r in at_n)
    rss_4n = at_4n[-1]["peak_rss_mib"]
    largest = max(r["largest_claim"] for r in runs)
    lines = [
        f"### {result['kind']}: webhook delivery to a local receiver",
        "",
        "`WebhookWorker.deliver_due()` in one process (batch "
        f"{result['batch']}, at most {result['concurrency']} in flight), the receiver "
        "(uvicorn, 204 at once, no access log) in another; payloads ~600 bytes. Peak RSS is "
        "the worker process's own `VmHWM` (a fresh process, started by this script; "
        f"{result['rss_start_mib']:.1f} MiB with the app started, before any delivery). "
        + (
            "`ANALYZE webhook_deliveries` after each seeding."
            if result["analyzed"]
            else "No ANALYZE after seeding: the outbox's statistics are what autovacuum left."
        ),
        "",
    ]
    lines += table(
        [
            "run",
            "deliveries",
            "seconds",
            "deliveries/s",
            "received",
            "unique webhook-id",
            "failed",
            "batches",
            "largest claim",
            "peak RSS MiB",
            "RSS now MiB",
        ],
        [
            [
                str(i + 1),
                str(r["count"]),
                f"{r['seconds']:.1f}",
                f"{r['rate']:.0f}",
                str(r["received"]),
                str(r["unique"]),
                str(r["failed"]),
                str(r["batches"]),
                str(r["largest_claim"]),
                f"{r['peak_rss_mib']:.1f}",
                f"{r['rss_mib']:.1f}",
            ]
            for i, r in enumerate(runs)
        ],
    )
    lines += [
        "",
        *table(
            ["budget", "measured", "target", "met"],
            [
                [
                    "deliveries/s, median (range)",
                    spread(rates, "{:.0f}"),
                    f">= {DELIVERY_RATE_TARGET:.0f}",
                    met(statistics.median(rates) >= DELIVERY_RATE_TARGET),
                ],
                ["every delivery received once", "yes" if correct else "no", "yes", met(correct)],
                [
                    "largest claim (rows in one batch)",
                    str(largest),
                    f"<= {result['batch']}",
                    met(largest <= result["batch"]),
                ],
                [
                    f"peak RSS at {4 * n} vs {n} deliveries",
                    f"{rss_4n:.1f} vs {rss_n:.1f} MiB (+{rss_4n - rss_n:.1f})",
                    "bounded (~equal)",
                    met(rss_4n - rss_n <= 5),
                ],
            ],
            BUDGET,
        ),
    ]
    return [*lines, ""]


# --- audit rows -------------------------------------------------------------------------


async def seed_audit(
    url: str,
    *,
    total: int,
    own: dict[str, int],
    other_orgs: int = 200,
    null_share: float = 0.3,
    seed: int = 7,
) -> float:
    """``total`` audit rows over the last 365 days, oldest first (as an append-only log
    fills): ``own[org_id]`` rows of each given organization, ~``null_share`` without an
    organization (account events), the rest spread over ``other_orgs`` organizations.
    PostgreSQL: COPY; SQLite: Core insert executemany. Returns the seconds taken."""
    rng = random.Random(seed)
    started = time.perf_counter()
    owners: dict[int, str] = {}
    for org_id, rows in own.items():
        for position in rng.sample(range(total), rows):
            while position in owners:
                position = (position + 1) % total
            owners[position] = org_id
    orgs = [uuid.uuid4() for _ in range(other_orgs)]
    first = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / total
    columns = ("id", "occurred_at", "action", "organization_id", "actor_type", "actor_id")
    columns += ("targets", "metadata")

    def rows(start: int, stop: int) -> list[tuple[Any, ...]]:
        out = []
        for i in range(start, stop):
            owner = owners.get(i)
            if owner is not None:
                org: uuid.UUID | None = uuid.UUID(owner)
            elif rng.random() < null_share:
                org = None
            else:
                org = orgs[rng.randrange(other_orgs)]
            action = rng.choice(USER_ACTIONS if org is None else ORG_ACTIONS)
            actor = uuid.UUID(int=rng.getrandbits(128), version=4)
            out.append((uuid.uuid4(), first + step * i, action, org, "user", actor, "[]", "{}"))
        return out

    batch = 50_000
    if url.startswith("postgresql"):
        import asyncpg

        connection = await asyncpg.connect(url)
        try:
            for start in range(0, total, batch):
                records = rows(start, min(total, start + batch))
                await connection.copy_records_to_table(
                    "audit_events", records=records, columns=columns
                )
            await connection.execute("ANALYZE audit_events")
        finally:
            await connection.close()
    else:
        from sqlalchemy import insert

        from orgauth.db import create_engine
        from orgauth.models import AuditEvent
        from orgauth.settings import OrgAuthSettings

        engine = create_engine(OrgAuthSettings(_env_file=None, database_url=url))  # type: ignore[call-arg]
        try:
            for start in range(0, total, batch):
                dicts = [
                    {
                        "id": r[0],
                        "occurred_at": r[1],
                        "action": r[2],
                        "organization_id": r[3],
                        "actor_type": r[4],
                        "actor_id": r[5],
                        "targets": [],
                        "event_metadata": {},
                    }
                    for r in rows(start, min(total, start + batch))
                ]
                async with engine.begin() as connection:
                    for i in range(0, len(dicts), CHUNK):
                        await connection.execute(insert(AuditEvent), dicts[i : i + CHUNK])
        finally:
            await engine.dispose()
    return time.perf_counter() - started


# --- 3. audit-page ------------------------------------------------------------------------


@dataclass
class AuditPageRun:
    total: int
    org_rows: int
    matching: int
    seed_seconds: float
    first: list[float]
    cursor: list[float]
    cursor_pages: int  # pages in one walk of the cursor chain
    plans: dict[str, tuple[str, Any, list[str]]]  # label: (sql, parameters, plan lines)


async def audit_page(args: argparse.Namespace, workdir: Path) -> AuditPageRun:
    async with scratch_database("postgresql", args.postgres_url, workdir) as url:
        settings = bench_settings(url, workdir)
        await migrate_database(settings)
        async with running_app(settings) as (_app, client):
            _, owner = await account(client, "owner@audit.example.com")
            org = await organization(client, owner, "Audit Bench")
        seed_seconds = await seed_audit(url, total=args.audit_rows, own={org: args.org_rows})
        print(f"# audit rows seeded in {seed_seconds:.0f} s", file=sys.stderr)
        async with running_app(settings) as (app, client):
            engine = app.state.orgauth.engine
            async with engine.connect() as connection:
                matching = (
                    await connection.exec_driver_sql(
                        "SELECT count(*) FROM audit_events WHERE organization_id = $1 "
                        "AND action = 'member.added'",
                        (uuid.UUID(org),),
                    )
                ).scalar_one()
            path = f"/api/v1/organizations/{org}/audit-logs"
            headers = {"Authorization": f"Bearer {owner}"}
            base = {"action": "member.added", "limit": 50}

            async def page(cursor: str | None) -> tuple[float, str | None]:
                params = dict(base, cursor=cursor) if cursor else base
                started = time.perf_counter()
                response = await client.get(path, params=params, headers=headers)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"audit page: {response.status_code} {response.text}")
                body = response.json()
                if not all(e["action"] == "member.added" for e in body["data"]):
                    raise RuntimeError("the page holds other actions")
                return elapsed, body["next_cursor"]

            # The cursor chain once: how many pages, and the last page's cursor.
            chain: list[str] = []
            _, cursor = await page(None)
            while cursor:
                chain.append(cursor)
                _, cursor = await page(cursor)
            if not chain:
                raise RuntimeError("the first page has no next cursor: seed more rows")
            for _ in range(10):  # warm-up
                await page(None)
                await page(chain[-1])
            first: list[float] = []
            cursored: list[float] = []
            for i in range(args.pages):  # interleaved: a first page, then a cursor page
                first.append((await page(None))[0])
                cursored.append((await page(chain[i % len(chain)]))[0])
            plans = {}
            for label, cursor in (("first page", None), ("last cursor page", chain[-1])):
                params = dict(base, cursor=cursor) if cursor else base
                with capture_sql(engine.sync_engine) as seen:
                    (await client.get(path, params=params, headers=headers)).raise_for_status()
                sql, parameters = next(
                    (s, p) for s, p in seen if "FROM audit_events" in s and "ORDER BY" in s
                )
                async with engine.connect() as connection:
                    explain = f"EXPLAIN (ANALYZE, BUFFERS) {sql}"
                    await connection.exec_driver_sql(explain, parameters)  # warm
                    result = await connection.exec_driver_sql(explain, parameters)
                    plans[label] = (sql, parameters, [row[0] for row in result])
    return AuditPageRun(
        args.audit_rows,
        args.org_rows,
        int(matching),
        seed_seconds,
        first,
        cursored,
        len(chain) + 1,
        plans,
    )


def render_audit_page(run: AuditPageRun) -> list[str]:
    rows = []
    for label, samples in (("first page", run.first), ("cursor pages", run.cursor)):
        p95 = percentile(samples, 95)
        rows.append(
            [
                label,
                str(len(samples)),
                f"{statistics.median(samples):.1f}",
                f"{p95:.1f}",
                f"{max(samples):.1f}",
                f"<= {AUDIT_P95_TARGET_MS:.0f}",
                met(p95 <= AUDIT_P95_TARGET_MS),
            ]
        )
    lines = [
        "### postgresql: audit log page on 1 000 000 events",
        "",
        f"{run.total:,} `audit_events` rows over 365 days (COPY, {run.seed_seconds:.0f} s, "
        f"then ANALYZE), {run.org_rows:,} of them the measured organization's "
        f"({run.matching} `member.added`, {run.cursor_pages} pages of 50), ~30 % without "
        "an organization, the rest over 200 others. "
        "`GET /organizations/{id}/audit-logs?action=member.added&limit=50` as the owner, "
        "sequential, in-process; a first page and a cursor page in turn (cursor pages "
        "cycle through the chain).",
        "",
    ]
    lines += table(["request", "n", "p50 ms", "p95 ms", "max ms", "p95 target ms", "met"], rows)
    for label, (sql, parameters, plan) in run.plans.items():
        uses = AUDIT_INDEX in "\n".join(plan)
        lines += [
            "",
            f"EXPLAIN (ANALYZE, BUFFERS), {label} (uses `{AUDIT_INDEX}`: "
            f"{'yes' if uses else 'NO'}); parameters `{list(map(str, parameters))}`:",
            "",
            "```",
            " ".join(sql.split()),
            "",
            *plan,
            "```",
        ]
    return [*lines, ""]


# --- 4. export ----------------------------------------------------------------------------


async def asgi_stream(app: Any, path: str, query: str, token: str) -> tuple[int, int, int]:
    """GET through the ASGI app, each body chunk counted and dropped: (status, bytes,
    chunks). httpx's ASGITransport would keep the whole body in memory."""
    done = asyncio.Event()
    requested = False
    status, size, chunks = 0, 0, 0

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, size, chunks
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            size += len(message.get("body", b""))
            chunks += 1

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 40000),
        "server": ("bench", 80),
        "state": {},
    }
    try:
        await app(scope, receive, send)
    finally:
        done.set()
    return status, size, chunks


async def export_child(spec: dict[str, Any]) -> dict[str, Any]:
    """One export, in this fresh process: its size, time and this process's peak RSS."""
    from orgauth.app import create_app

    workdir = Path(tempfile.gettempdir())  # no email is sent
    app = create_app(bench_settings(spec["url"], workdir))
    async with app.router.lifespan_context(app):
        path = f"/api/v1/organizations/{spec['org']}/audit-logs/export"
        # A tiny export first: imports, the pool and the statements' caches are warm.
        await asgi_stream(app, path, f"format={spec['format']}&action=none", spec["token"])
        rss_before = current_rss_mib()
        startup_peak = peak_rss_mib()
        reset = reset_peak_rss()
        started = time.perf_counter()
        status, size, chunks = await asgi_stream(
            app, path, f"format={spec['format']}", spec["token"]
        )
        seconds = time.perf_counter() - started
        export_peak = status_mib("VmHWM") if reset else 0.0
    if status != 200:
        raise RuntimeError(f"export: {status}")
    return {
        "bytes": size,
        "chunks": chunks,
        "seconds": seconds,
        "rss_before_mib": rss_before,
        "export_peak_mib": export_peak,
        "startup_peak_mib": startup_peak,
        "maxrss_mib": maxrss_mib(),
        "peak_rss_mib": peak_rss_mib(),
    }


@dataclass
class ExportRun:
    kind: str
    sizes: dict[str, int]  # org id: rows
    results: list[tuple[str, int, dict[str, Any]]]  # (format, rows, child output)
    seed_seconds: float


async def export(kind: str, args: argparse.Namespace, workdir: Path) -> ExportRun:
    async with scratch_database(kind, args.postgres_url, workdir) as url:
        settings = bench_settings(url, workdir)
        await migrate_database(settings)
        async with running_app(settings) as (_app, client):
            _, owner = await account(client, "owner@export.example.com")
            small = await organization(client, owner, "Export Small")
            large = await organization(client, owner, "Export Large")
        sizes = {small: args.export_rows // 10, large: args.export_rows}
        total = sum(sizes.values()) + 20_000
        seed_seconds = await seed_audit(url, total=total, own=sizes)
        print(f"# export rows seeded in {seed_seconds:.0f} s", file=sys.stderr)
        by_rows = {rows: org for org, rows in sizes.items()}
        order = [args.export_rows // 10, args.export_rows, args.export_rows, args.export_rows // 10]
        results = []
        for fmt in ("jsonl", "csv"):
            for rows in order * args.export_repeats:
                spec = {"url": url, "org": by_rows[rows], "token": owner, "format": fmt}
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    SCRIPT,
                    "--child",
                    "export",
                    "--spec",
                    json.dumps(spec),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                stdout, stderr = await proc.communicate()
                if proc.returncode != 0:
                    sys.stderr.write(stderr.decode())
                    raise RuntimeError(f"the export child failed ({proc.returncode})")
                out = json.loads(stdout.decode().strip().splitlines()[-1])
                results.append((fmt, rows, out))
                print(
                    f"# {kind} export {fmt} {rows}: {out['bytes']} bytes, "
                    f"peak RSS {out['peak_rss_mib']:.1f} MiB",
                    file=sys.stderr,
                )
    return ExportRun(kind, sizes, results, seed_seconds)


def render_export(run: ExportRun) -> list[str]:
    lines = [
        f"### {run.kind}: streaming audit export, peak RSS",
        "",
        "Each export in a fresh child process that only starts the app and streams "
        "`GET /organizations/{id}/audit-logs/export?format=…` through the ASGI app (each "
        "body chunk counted and dropped), after one tiny export to warm up; order "
        "small, large, large, small per format. Peak RSS: the child's own `VmHWM` over "
        "its whole life, start-up included (not `ru_maxrss`: on Linux it carries the "
        'parent\'s peak across `execve`); "peak during export": `VmHWM` reset '
        "(`/proc/self/clear_refs`) just before the export, minus the RSS at that moment.",
        "",
    ]
    rows = []
    verdicts = []
    for fmt in ("jsonl", "csv"):
        peaks: dict[int, list[float]] = {}
        during: dict[int, list[float]] = {}
        for f, count, out in run.results:
            if f != fmt:
                continue
            peaks.setdefault(count, []).append(max(out["startup_peak_mib"], out["export_peak_mib"]))
            during.setdefault(count, []).append(out["export_peak_mib"] - out["rss_before_mib"])
        for count in sorted(peaks):
            outs = [o for f, c, o in run.results if f == fmt and c == count]
            rows.append(
                [
                    fmt,
                    f"{count:,}",
                    f"{outs[0]['bytes'] / 1e6:.1f}",
                    str(outs[0]["chunks"]),
                    spread([o["seconds"] for o in outs], "{:.2f}"),
                    spread([count / o["seconds"] for o in outs], "{:.0f}"),
                    spread([o["rss_before_mib"] for o in outs]),
                    spread(during[count], "{:+.1f}"),
                    spread(peaks[count]),
                ]
            )
        small, large = sorted(peaks)
        growth = statistics.median(peaks[large]) - statistics.median(peaks[small])
        extra = statistics.median(during[large]) - statistics.median(during[small])
        verdicts += [
            [
                f"{fmt}: peak RSS at {large:,} rows minus at {small:,}",
                f"{growth:+.1f} MiB",
                "~0 (<= 5 MiB)",
                met(growth <= 5),
            ],
            [
                f"{fmt}: growth during the export at {large:,} rows minus at {small:,}",
                f"{extra:+.1f} MiB",
                "~0 (<= 5 MiB)",
                met(extra <= 5),
            ],
        ]
    lines += table(
        [
            "format",
            "rows",
            "MB",
            "chunks",
            "seconds",
            "rows/s",
            "RSS before MiB",
            "peak during export, above before",
            "peak RSS MiB",
        ],
        rows,
    )
    lines += ["", *table(["budget", "measured", "target", "met"], verdicts, BUDGET)]
    return [*lines, ""]


# --- the run ------------------------------------------------------------------------------


def kinds(args: argparse.Namespace) -> list[str]:
    return ["sqlite", "postgresql"] if args.database == "both" else [args.database]


def run(args: argparse.Namespace) -> None:
    only = args.only or list(SCENARIOS)
    for kind in kinds(args):
        sections: list[str] = []
        with tempfile.TemporaryDirectory(prefix="orgauth-bench-webhooks-") as tmp:
            workdir = Path(tmp)
            for name in SCENARIOS:
                if name not in only:
                    continue
                started = time.perf_counter()
                if name == "membership":
                    lines = render_membership(asyncio.run(membership(kind, args, workdir)))
                elif name == "delivery":
                    lines = render_delivery(delivery(kind, args))
                elif name == "audit-page":
                    if kind != "postgresql":
                        print("# audit-page runs on PostgreSQL only", file=sys.stderr)
                        continue
                    lines = render_audit_page(asyncio.run(audit_page(args, workdir)))
                else:
                    lines = render_export(asyncio.run(export(kind, args, workdir)))
                print(f"# {kind} {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
                text = "\n".join(lines)
                print(text, flush=True)
                sections.append(text)
        (HERE / f"results-{kind}-webhooks.md").write_text("\n".join(sections))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database", choices=["sqlite", "postgresql", "both"], default="postgresql"
    )
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, help="scenario (repeatable); default all"
    )
    parser.add_argument("--requests", type=int, default=300, help="membership: per round")
    parser.add_argument("--rounds", type=int, default=6, help="membership: rounds per variant")
    parser.add_argument("--warmup", type=int, default=50, help="membership: warm-up requests")
    parser.add_argument("--deliveries", type=int, default=5_000, help="delivery: N")
    parser.add_argument("--delivery-rounds", type=int, default=3, help="delivery: runs of N")
    parser.add_argument(
        "--analyze-outbox",
        action="store_true",
        help="delivery: ANALYZE webhook_deliveries after seeding (default: as autovacuum left it)",
    )
    parser.add_argument("--audit-rows", type=int, default=1_000_000)
    parser.add_argument("--org-rows", type=int, default=5_000, help="audit-page: own rows")
    parser.add_argument("--pages", type=int, default=200, help="audit-page: of each kind")
    parser.add_argument("--export-rows", type=int, default=100_000, help="export: large size")
    parser.add_argument("--export-repeats", type=int, default=1, help="export: order repeats")
    parser.add_argument("--child", choices=["delivery", "export"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "delivery":
        print(json.dumps(asyncio.run(delivery_child(args.database, args))))
    elif args.child == "export":
        print(json.dumps(asyncio.run(export_child(json.loads(args.spec)))))
    else:
        run(args)


if __name__ == "__main__":
    main()
