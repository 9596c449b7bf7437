"""Concurrent refreshes with one token across two real server processes (SPEC §4.3).

Only meaningful on PostgreSQL, where two workers share one database: the row-level claim
of the refresh token must let exactly one request win, whichever process serves it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from conftest import TEST_SECRET_KEY, is_postgres_run

from .conftest import PASSWORD, unique_email

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not is_postgres_run(),
        reason="needs PostgreSQL shared by two server processes: set ORGAUTH_TEST_DATABASE_URL",
    ),
]

STARTUP_TIMEOUT_SECONDS = 30.0
ROUNDS = 3
REQUESTS_PER_ROUND = 20


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_environment(database_url: str, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": TEST_SECRET_KEY,
            "BCRYPT_ROUNDS": "4",
            "RATE_LIMIT_ENABLED": "false",
            "EMAIL_BACKEND": "file",
            "EMAIL_FILE_DIR": str(tmp_path / "emails"),
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def wait_until_healthy(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"server at {base_url} did not become healthy:\n{log.read_text()}")


@pytest.fixture
def two_servers(db: AsyncEngine, database_url: str, tmp_path: Path) -> Iterator[list[str]]:
    """Two independent uvicorn processes on the test database; yields their base URLs."""
    env = server_environment(database_url, tmp_path)
    processes: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for index in range(2):
            port = free_port()
            log = tmp_path / f"server-{index}.log"
            with log.open("wb") as output:
                processes.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "uvicorn",
                            "orgauth.app:create_app_from_environment",
                            "--factory",
                            "--host",
                            "127.0.0.1",
                            "--port",
                            str(port),
                        ],
                        env=env,
                        cwd=tmp_path,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                    )
                )
            urls.append(f"http://127.0.0.1:{port}")
        for process, url, index in zip(processes, urls, range(2), strict=True):
            wait_until_healthy(process, url, tmp_path / f"server-{index}.log")
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


async def test_concurrent_refreshes_across_two_processes_succeed_exactly_once(
    two_servers: list[str],
) -> None:
    first, second = two_servers
    limits = httpx.Limits(max_connections=REQUESTS_PER_ROUND)
    async with (
        httpx.AsyncClient(base_url=first, timeout=30.0, limits=limits) as one,
        httpx.AsyncClient(base_url=second, timeout=30.0, limits=limits) as two,
    ):
        address = unique_email("race")
        registered = await one.post(
            "/api/v1/auth/register", json={"email": address, "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text

        for _ in range(ROUNDS):
            signed_in = await two.post(
                "/api/v1/auth/login", json={"email": address, "password": PASSWORD}
            )
            assert signed_in.status_code == 200, signed_in.text
            token = signed_in.json()["refresh_token"]
            body = {"refresh_token": token}

            responses = await asyncio.gather(
                *(
                    (one if i % 2 else two).post("/api/v1/auth/refresh", json=body)
                    for i in range(REQUESTS_PER_ROUND)
                )
            )

            statuses = sorted(r.status_code for r in responses)
            assert statuses == [200] + [401] * (REQUESTS_PER_ROUND - 1), statuses
            for response in responses:
                if response.status_code == 401:
                    assert response.json()["detail"]["code"] == "INVALID_REFRESH_TOKEN"
