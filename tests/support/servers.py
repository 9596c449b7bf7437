"""Real ``orgauth serve`` processes for the tests, and the one way to start them and wait
until they answer ``/health``.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from orgauth.settings import OrgAuthSettings

API = "/api/v1"
ORGAUTH_CLI = Path(sys.executable).with_name("orgauth")
SECRET_KEY = "server-test-signing-key-0123456789abcdefghijklmn"
#: Strong for the password policy, unrelated to any test user's email or names.
PASSWORD = "Quartz-lantern-Orbit-71"
#: The shared machine has two cores and other suites run at the same time: be generous.
STARTUP_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 40.0

_SETTING_NAMES = frozenset(name.upper() for name in OrgAuthSettings.model_fields)


# --- small utilities ---------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


_ip_counter = itertools.count(random.randrange(1, 2**24 - 100_000))


def next_ip() -> str:
    """A fresh client address for ``X-Forwarded-For`` (the servers trust 127.0.0.1)."""
    n = next(_ip_counter)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


async def wait_for(
    check: Callable[[], Awaitable[bool]], within: float, interval: float = 0.2
) -> float | None:
    """Seconds until ``await check()`` is true, or None when ``within`` seconds pass."""
    started = time.monotonic()
    for _ in range(int(within / interval) + 1):
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > within:
            break
        await asyncio.sleep(interval)
    return None


def server_environment(**settings: str | int | float | None) -> dict[str, str]:
    """The process environment for a server: this process's environment without any
    orgauth setting, plus test defaults, plus ``settings`` (upper-cased names; ``None``
    leaves a default out, e.g. ``secret_key=None`` for a development key file)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key.upper() not in _SETTING_NAMES and not key.upper().startswith("POSTGRES_")
    }
    env.update(
        {
            "SECRET_KEY": SECRET_KEY,
            "BCRYPT_ROUNDS": "4",
            "EMAIL_BACKEND": "file",
            "LOG_LEVEL": "INFO",
            "RATE_LIMIT_ENABLED": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for key, value in settings.items():
        if value is None:
            env.pop(key.upper(), None)
        else:
            env[key.upper()] = str(value)
    return env


# --- server processes --------------------------------------------------------------------


@dataclass
class Server:
    """One ``orgauth serve`` process; stdout and stderr go to ``log_path``."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def errors(self, limit: int = 12000) -> str:
        """The log from its first ERROR line or traceback on (for failure messages)."""
        text = self.log()
        markers = (" ERROR ", '"level": "ERROR"', "Traceback")
        starts = [i for i in (text.find(marker) for marker in markers) if i >= 0]
        return text[min(starts) :][:limit] if starts else "(no errors in the log)"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


@dataclass
class ServerFactory:
    """Starts servers and stops every one of them at teardown."""

    directory: Path
    servers: list[Server] = field(default_factory=list)
    _counter: Iterator[int] = field(default_factory=itertools.count)

    def start(self, env: dict[str, str], count: int = 1, args: Sequence[str] = ()) -> list[Server]:
        """Launch ``count`` servers with ``env`` (each on its own free port) and wait until
        every one answers ``/health`` with 200."""
        started: list[Server] = []
        for _ in range(count):
            index = next(self._counter)
            port = free_port()
            log_path = self.directory / f"server-{index}.log"
            with log_path.open("wb") as output:
                process = subprocess.Popen(
                    [str(ORGAUTH_CLI), "serve", "--host", "127.0.0.1", "--port", str(port), *args],
                    env={"EMAIL_FILE_DIR": str(self.directory / "emails"), **env},
                    cwd=self.directory,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            server = Server(process, f"http://127.0.0.1:{port}", log_path)
            self.servers.append(server)
            started.append(server)
        for server in started:
            wait_until_healthy(server)
        return started

    def stop_all(self) -> None:
        for server in self.servers:
            if server.alive():
                server.process.send_signal(signal.SIGTERM)
        for server in self.servers:
            server.stop()


def wait_until_healthy(server: Server, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            pytest.fail(f"server exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"server at {server.url} did not become healthy in {timeout} s:\n{server.log()}")


# --- HTTP helpers --------------------------------------------------------------------------


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def forwarded(ip: str | None) -> dict[str, str]:
    return {"X-Forwarded-For": ip} if ip else {}


async def register(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, ip: str | None = None
) -> dict[str, Any]:
    """Register a user; the User body."""
    response = await client.post(
        f"{API}/auth/register", json={"email": email, "password": password}, headers=forwarded(ip)
    )
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()
    return user


async def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, ip: str | None = None
) -> dict[str, Any]:
    """Log in; the Tokens body."""
    response = await client.post(
        f"{API}/auth/login", json={"email": email, "password": password}, headers=forwarded(ip)
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


async def me_status(client: httpx.AsyncClient, access_token: str) -> int:
    return (await client.get(f"{API}/users/me", headers=bearer(access_token))).status_code
