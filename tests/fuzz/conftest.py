"""A live orgauth server for the fuzzers, with a user and a superuser signed in."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SUPERUSER_EMAIL = "fuzz-admin@example.com"
USER_EMAIL = "fuzz-user@example.com"
PASSWORD = "fuzzing-correct-horse-battery"


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    user_token: str
    superuser_token: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return dict(json.loads(response.read()))


@pytest.fixture(scope="session")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, database_url: str
) -> Iterator[LiveServer]:
    """``orgauth serve`` on the session's test database (migrated by serve itself)."""
    from orgauth.settings import normalize_database_url

    directory = tmp_path_factory.mktemp("fuzz")
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": normalize_database_url(database_url),
        "SECRET_KEY": "fuzzing-only-signing-key-0123456789abcdef",
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_ENABLED": "false",
        "EMAIL_BACKEND": "file",
        "EMAIL_FILE_DIR": str(directory / "mail"),
        "FIRST_SUPERUSER_EMAIL": SUPERUSER_EMAIL,
        "FIRST_SUPERUSER_PASSWORD": PASSWORD,
        "LOG_LEVEL": "WARNING",
    }
    log = (directory / "server.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("orgauth")), "serve", "--port", str(port)],
        env=env,
        cwd=directory,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=1):  # noqa: S310
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((directory / "server.log").read_text()) from None
                time.sleep(0.2)
        _post(base + "/api/v1/auth/register", {"email": USER_EMAIL, "password": PASSWORD})
        user = _post(base + "/api/v1/auth/login", {"email": USER_EMAIL, "password": PASSWORD})
        admin = _post(base + "/api/v1/auth/login", {"email": SUPERUSER_EMAIL, "password": PASSWORD})
        yield LiveServer(base, str(user["access_token"]), str(admin["access_token"]))
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
