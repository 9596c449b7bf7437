"""Private PostgreSQL clusters and Redis servers that a test may stop and start at will;
the shared ones (5432, 6379) are never touched.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.servers import port_open

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SHARED_REDIS_PORT = 6379

# --- a private PostgreSQL cluster ------------------------------------------------------------


def postgres_unavailable() -> str | None:
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


def shared_redis_available() -> bool:
    return port_open(SHARED_REDIS_PORT)
