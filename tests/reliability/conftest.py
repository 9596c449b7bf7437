"""Helpers for the reliability tests: real ``orgauth serve`` processes, a private
PostgreSQL cluster, a private Redis server and small HTTP helpers.

Everything listens on 127.0.0.1 only. The shared PostgreSQL (5432) and Redis (6379) are
never stopped: the outage tests stop their own private instances.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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
SECRET_KEY = "reliability-test-signing-key-0123456789abcdefghij"
#: Strong for the password policy, unrelated to any test user's email or names.
PASSWORD = "Quartz-lantern-Orbit-71"
#: The shared machine has two cores and other suites run at the same time: be generous.
STARTUP_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 40.0
PG_BIN = Path("/usr/lib/postgresql/15/bin")
SHARED_REDIS_PORT = 6379

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


def server_environment(**settings: str | int | float) -> dict[str, str]:
    """The process environment for a server: this process's environment without any
    orgauth setting, plus test defaults, plus ``settings`` (upper-cased names)."""
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
    env.update({key.upper(): str(value) for key, value in settings.items()})
    return env


# --- server processes --------------------------------------------------------------------


@dataclass
class Server:
    """One ``orgauth serve`` process; stdout and stderr go to ``log_path``."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

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


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    factory = ServerFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


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


# --- a private PostgreSQL cluster ------------------------------------------------------------


def _postgres_available() -> str | None:
    """None when a private cluster can be created here, else the reason why not."""
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
        return f"PostgreSQL binaries not found in {PG_BIN}"
    if os.geteuid() != 0:
        return "creating a private PostgreSQL cluster needs root (to run as 'postgres')"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "the 'postgres' OS user does not exist"
    return None


@dataclass
class PrivatePostgres:
    """A throw-away PostgreSQL cluster in its own directory, on its own port, run as the
    ``postgres`` OS user; only this test ever stops it."""

    directory: Path
    port: int
    database: str = "orgauth"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            ["runuser", "-u", "postgres", "--", *command],
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({completed.returncode}):\n"
                f"{completed.stdout}\n{completed.stderr}\n{self.log()}"
            )
        return completed

    def log(self) -> str:
        path = self.directory / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def init(self) -> None:
        data = self.directory / "data"
        self._run(
            str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=100"
        )
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.directory / "data"),
            "-l",
            str(self.directory / "postgres.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"), "-m", mode, "-w", "stop"
        )

    def create_database(self) -> None:
        self._run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), self.database)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private cluster with an empty database; stopped and removed afterwards."""
    reason = _postgres_available()
    if reason:
        pytest.skip(reason)
    # Not under pytest's tmp_path: its parents are private to root and postgres must
    # reach the data directory and socket.
    directory = Path(tempfile.mkdtemp(prefix="orgauth-pg-", dir="/tmp"))
    account = pwd.getpwnam("postgres")
    os.chown(directory, account.pw_uid, account.pw_gid)
    cluster = PrivatePostgres(directory, free_port())
    try:
        cluster.init()
        cluster.start()
        cluster.create_database()
        yield cluster
    finally:
        try:
            if (directory / "data" / "postmaster.pid").exists():
                cluster.stop("immediate")
        finally:
            shutil.rmtree(directory, ignore_errors=True)


# --- a private Redis --------------------------------------------------------------------------


@dataclass
class PrivateRedis:
    """``redis-server`` on its own port, no persistence; killed and restarted at will."""

    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        redis_server = shutil.which("redis-server")
        assert redis_server is not None
        with self.log_path.open("ab") as output:
            self.process = subprocess.Popen(
                [
                    redis_server,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{self.log_path.read_text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the crash of the storage, not a polite shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def client(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, db=0, socket_timeout=2)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    pytest.importorskip("redis")
    server = PrivateRedis(free_port(), tmp_path / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.kill()


def shared_redis_available() -> bool:
    return port_open(SHARED_REDIS_PORT)
