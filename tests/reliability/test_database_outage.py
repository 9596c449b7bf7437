"""A PostgreSQL outage under load: fail fast with 503, stay alive, recover by itself.

The server runs on a private PostgreSQL cluster that the test stops (``pg_ctl stop -m
fast``) and starts again while a bounded load loop keeps calling ``/users/me`` and
``/health``. During the outage every request must answer 503 quickly (never 500, never
hang until the 30 s pool timeout) and the process must stay up; afterwards the same
server, not restarted, serves every account and session created before the outage.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
import pytest

from tests.support.servers import (
    API,
    ServerFactory,
    bearer,
    login,
    me_status,
    register,
    server_environment,
    unique_email,
)
from tests.support.services import PrivatePostgres

pytestmark = pytest.mark.slow

#: A failing request must answer well within the 30 s pool timeout.
FAIL_FAST_SECONDS = 5.0
BASELINE_SECONDS = 1.5
OUTAGE_SECONDS = 4.0
RECOVERY_TIMEOUT_SECONDS = 15.0
LOAD_DEADLINE_SECONDS = 60.0
MAX_REQUESTS_PER_WORKER = 2_000
PAUSE_BETWEEN_REQUESTS = 0.05


@dataclass(frozen=True)
class Sample:
    path: str
    started: float  # time.monotonic()
    elapsed: float
    status: int | None  # None: no HTTP answer at all
    error: str | None = None


async def load_worker(
    client: httpx.AsyncClient,
    path: str,
    headers: dict[str, str],
    stop: asyncio.Event,
    samples: list[Sample],
) -> None:
    """GET ``path`` in a loop until ``stop``, bounded in count and time."""
    deadline = time.monotonic() + LOAD_DEADLINE_SECONDS
    for _ in range(MAX_REQUESTS_PER_WORKER):
        if stop.is_set() or time.monotonic() > deadline:
            return
        started = time.monotonic()
        try:
            response = await client.get(path, headers=headers)
        except httpx.HTTPError as exc:
            samples.append(Sample(path, started, time.monotonic() - started, None, repr(exc)))
        else:
            samples.append(Sample(path, started, time.monotonic() - started, response.status_code))
        await asyncio.sleep(PAUSE_BETWEEN_REQUESTS)


async def test_database_outage_fails_fast_and_recovers_without_restart(
    private_postgres: PrivatePostgres, server_factory: ServerFactory
) -> None:
    env = server_environment(database_url=private_postgres.url, log_level="INFO")
    (server,) = server_factory.start(env)

    async with httpx.AsyncClient(base_url=server.url, timeout=60.0) as client:
        # Accounts and sessions that must survive the outage.
        emails = [unique_email("outage"), unique_email("outage")]
        for email in emails:
            await register(client, email)
        sessions = [await login(client, email) for email in emails for _ in range(2)]

        samples: list[Sample] = []
        stop = asyncio.Event()
        workers = [
            asyncio.create_task(
                load_worker(client, f"{API}/users/me", bearer(s["access_token"]), stop, samples)
            )
            for s in sessions[:2]
        ]
        workers += [
            # Routes that query through SQLAlchemy sessions, not only the auth hot path.
            asyncio.create_task(
                load_worker(client, path, bearer(sessions[2]["access_token"]), stop, samples)
            )
            for path in (f"{API}/sessions/me", f"{API}/organizations/me")
        ]
        workers.append(asyncio.create_task(load_worker(client, "/health", {}, stop, samples)))
        try:
            await asyncio.sleep(BASELINE_SECONDS)
            stop_requested = time.monotonic()
            await asyncio.to_thread(private_postgres.stop, "fast")
            stopped = time.monotonic()

            await asyncio.sleep(OUTAGE_SECONDS)
            # Explicit probes in the middle of the outage.
            health = await client.get("/health")
            probe_started = time.monotonic()
            refused_login = await client.post(
                f"{API}/auth/login", json={"email": emails[0], "password": "x" * 12}
            )
            refused_refresh = await client.post(
                f"{API}/auth/refresh", json={"refresh_token": sessions[3]["refresh_token"]}
            )
            probe_elapsed = time.monotonic() - probe_started
            assert server.alive(), server.log()

            restart_requested = time.monotonic()
            await asyncio.to_thread(private_postgres.start)
            restarted = time.monotonic()

            recovered: float | None = None
            while time.monotonic() - restarted < RECOVERY_TIMEOUT_SECONDS:
                if any(
                    s.status == 200 and s.path != "/health" and s.started >= restarted
                    for s in samples
                ):
                    recovered = time.monotonic()
                    break
                await asyncio.sleep(0.1)
            # A little more load on the recovered database.
            await asyncio.sleep(1.0)
        finally:
            stop.set()
            await asyncio.gather(*workers)

        assert server.alive(), server.log()
        assert recovered is not None, (
            f"no successful request within {RECOVERY_TIMEOUT_SECONDS} s of the restart:\n"
            f"{server.log()[-4000:]}"
        )

        # Never a transport error (the server stayed up) and never a 500.
        broken = [s for s in samples if s.status is None or (s.status >= 500 and s.status != 503)]
        assert not broken, f"{broken[:5]}\n{server.errors()}"

        baseline = [s for s in samples if s.started + s.elapsed < stop_requested]
        assert baseline, "no request completed before the outage"
        assert {s.status for s in baseline} == {200}

        # Requests sent while the database was down: 503, answered fast.
        during = [
            s for s in samples if stopped <= s.started and s.started + s.elapsed < restart_requested
        ]
        assert len(during) >= 10, f"too few requests during the outage: {len(during)}"
        assert {s.status for s in during} == {503}, sorted({s.status or 0 for s in during})
        slowest = max(s.elapsed for s in during)
        assert slowest < FAIL_FAST_SECONDS, f"slowest failing request took {slowest:.2f} s"
        first_503 = min(s.started + s.elapsed for s in samples if s.status == 503)
        first_success = min(
            s.started + s.elapsed
            for s in samples
            if s.status == 200 and s.path != "/health" and s.started >= restarted
        )

        assert health.status_code == 503
        assert health.json()["status"] == "unhealthy"
        assert health.json()["checks"]["database"]["status"] == "error"
        assert refused_login.status_code == 503, refused_login.text
        assert refused_login.json()["detail"]["code"] == "SERVICE_UNAVAILABLE"
        assert refused_login.headers.get("retry-after")
        assert refused_refresh.status_code == 503, refused_refresh.text
        assert probe_elapsed < 2 * FAIL_FAST_SECONDS

        # Everything created before the outage still works, on the same process.
        assert (await client.get("/health")).status_code == 200
        for session in sessions:
            assert await me_status(client, session["access_token"]) == 200
        for session in sessions:
            rotated = await client.post(
                f"{API}/auth/refresh", json={"refresh_token": session["refresh_token"]}
            )
            assert rotated.status_code == 200, rotated.text
            assert await me_status(client, rotated.json()["access_token"]) == 200
        for email in emails:
            await login(client, email)
        await register(client, unique_email("after-outage"))
        assert server.alive()

    print(  # reported with -s; the numbers the test measured
        f"\noutage: {len(during)} requests during the outage, first 503 "
        f"{first_503 - stop_requested:.2f} s after stop was requested "
        f"(stop took {stopped - stop_requested:.2f} s), slowest failing request "
        f"{slowest:.3f} s; restart took {restarted - restart_requested:.2f} s, first success "
        f"{first_success - restarted:.2f} s after the restart"
    )
