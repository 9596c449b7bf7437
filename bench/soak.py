"""Soak: mixed load on `orgauth serve --workers 2` (PostgreSQL + Redis), then consistency.

    python bench/soak.py --minutes 5

Drives register, login, refresh, /users/me, organization create / add member / list and
logout from a bounded asyncio client on 127.0.0.1, then checks the database: every active
session belongs to an active user, every organization has an owner, no duplicate emails.
Reports status counts (zero 5xx expected) and worker RSS after warm-up vs at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PASSWORD = "soak-correct-horse-battery-staple"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker_rss_mib(master: int) -> list[float]:
    """RSS of the uvicorn worker processes (children of the master)."""
    rss = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"resource_tracker" in cmdline:
            continue
        if int(fields.get("PPid", "0").strip()) == master and "VmRSS" in fields:
            rss.append(int(fields["VmRSS"].split()[0]) / 1024)
    return sorted(rss)


class Stats:
    def __init__(self) -> None:
        self.codes: collections.Counter[str] = collections.Counter()

    def record(self, name: str, response: httpx.Response) -> httpx.Response:
        self.codes[f"{name} {response.status_code}"] += 1
        return response

    def server_errors(self) -> int:
        return sum(n for key, n in self.codes.items() if key.rsplit(" ", 1)[1].startswith("5"))


async def user_journey(client: httpx.AsyncClient, stats: Stats, deadline: float) -> None:
    """One simulated user, repeated until the deadline."""
    while time.monotonic() < deadline:
        email = f"soak-{secrets.token_hex(6)}@example.com"
        body = {"email": email, "password": PASSWORD}
        stats.record("register", await client.post("/api/v1/auth/register", json=body))
        login = stats.record("login", await client.post("/api/v1/auth/login", json=body))
        if login.status_code != 200:
            continue
        tokens = login.json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        for _ in range(random.randint(5, 15)):
            stats.record("me", await client.get("/api/v1/users/me", headers=headers))
        org = stats.record(
            "org_create",
            await client.post(
                "/api/v1/organizations", json={"name": f"Soak {email}"}, headers=headers
            ),
        )
        if org.status_code == 201:
            org_id = org.json()["id"]
            stats.record(
                "members",
                await client.get(f"/api/v1/organizations/{org_id}/members", headers=headers),
            )
        refreshed = stats.record(
            "refresh",
            await client.post(
                "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
            ),
        )
        if refreshed.status_code == 200:
            headers = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
        stats.record("sessions", await client.get("/api/v1/sessions/me", headers=headers))
        stats.record("logout", await client.post("/api/v1/auth/logout", headers=headers))


CONSISTENCY = {
    "active sessions of inactive or missing users": """
        SELECT count(*) FROM user_sessions s LEFT JOIN users u ON u.id = s.user_id
        WHERE s.revoked_at IS NULL AND s.expires_at > now()
          AND (u.id IS NULL OR NOT u.is_active)""",
    "organizations without an owner": """
        SELECT count(*) FROM organizations o WHERE NOT EXISTS (
          SELECT 1 FROM organization_members m
          WHERE m.organization_id = o.id AND m.role = 'owner')""",
    "duplicate emails": """
        SELECT count(*) FROM (SELECT lower(email) FROM users GROUP BY lower(email)
          HAVING count(*) > 1) d""",
}


async def check_consistency(url: str) -> dict[str, int]:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        return {name: int(await connection.fetchval(sql)) for name, sql in CONSISTENCY.items()}
    finally:
        await connection.close()


async def drive(
    base: str, minutes: float, concurrency: int, master: int
) -> tuple[Stats, list[float]]:
    stats = Stats()
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        warmup_end = time.monotonic() + min(60.0, minutes * 60 / 5)
        deadline = time.monotonic() + minutes * 60
        tasks = [
            asyncio.create_task(user_journey(client, stats, deadline)) for _ in range(concurrency)
        ]
        await asyncio.sleep(max(0.0, warmup_end - time.monotonic()))
        after_warmup = worker_rss_mib(master)
        await asyncio.gather(*tasks)
    return stats, after_warmup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()

    name = f"orgauth_soak_{secrets.token_hex(4)}"
    subprocess.run(["psql", args.postgres_url, "-qc", f'CREATE DATABASE "{name}"'], check=True)
    url = args.postgres_url.rsplit("/", 1)[0] + f"/{name}"
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "BCRYPT_ROUNDS": "10",
        "RATE_LIMIT_STORAGE_URI": args.redis_url,
        # Generous limits: the soak client is one IP.
        "RATE_LIMIT_LOGIN": "100000/minute",
        "RATE_LIMIT_REGISTER": "100000/minute",
        "RATE_LIMIT_REFRESH": "100000/minute",
        "EMAIL_BACKEND": "file",
        "EMAIL_FILE_DIR": tempfile.mkdtemp(prefix="orgauth-soak-mail-"),
        "LOG_LEVEL": "WARNING",
    }
    cli = Path(sys.executable).with_name("orgauth")
    server = subprocess.Popen([str(cli), "serve", "--port", str(port), "--workers", "2"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("server did not start")
            time.sleep(0.3)
        started = time.monotonic()
        stats, rss_warm = asyncio.run(drive(base, args.minutes, args.concurrency, server.pid))
        elapsed = time.monotonic() - started
        rss_end = worker_rss_mib(server.pid)
        consistency = asyncio.run(check_consistency(url))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        subprocess.run(
            ["psql", args.postgres_url, "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
            check=False,
        )
    total = sum(stats.codes.values())
    print(
        f"## Soak: {args.minutes:g} min, 2 workers, PostgreSQL + Redis, {args.concurrency} clients"
    )
    print()
    rate = total / elapsed
    print(f"{total} requests in {elapsed:.0f} s ({rate:.0f} req/s); 5xx: {stats.server_errors()}")
    print()
    print("| request status | count |")
    print("|---|---:|")
    for key, count in sorted(stats.codes.items()):
        print(f"| {key} | {count} |")
    print()
    print("| consistency check | violations |")
    print("|---|---:|")
    for check, count in consistency.items():
        print(f"| {check} | {count} |")
    print()
    growth = [
        (end - warm) / warm * 100 for warm, end in zip(rss_warm, rss_end, strict=False) if warm
    ]
    print(
        f"Worker RSS after warm-up: {', '.join(f'{r:.1f}' for r in rss_warm)} MiB; "
        f"at the end: {', '.join(f'{r:.1f}' for r in rss_end)} MiB; "
        f"growth: {', '.join(f'{g:+.1f}%' for g in growth)}"
    )
    if stats.server_errors() or any(consistency.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
