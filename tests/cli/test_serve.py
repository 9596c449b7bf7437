"""``orgauth serve`` (README.md): migrations first in development, a refusal in production when
the database is behind, the server in a fresh interpreter, bounded request heads, and real
servers answering /health."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import stat
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

import orgauth
from orgauth import migrate
from orgauth.cli import serve as serve_module
from orgauth.server import MAX_REQUEST_HEAD_BYTES
from orgauth.settings import SECRET_KEY_FILE_NAME
from tests.support.servers import ServerFactory, server_environment

from .helpers import PRODUCTION_SECRET, current_revision, error_line, invoke


@pytest.fixture
def execs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Run the server code that ``serve`` execs in this process instead of replacing it."""
    calls: list[list[str]] = []

    def exec_here(path: str, argv: list[str]) -> None:
        calls.append(argv)
        assert path == sys.executable
        assert argv[:3] == [sys.executable, "-c", serve_module._SERVER_CODE]
        serve_module.run_server(**json.loads(argv[3]))

    monkeypatch.setattr(os, "execv", exec_here)
    return calls


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch, execs: list[list[str]]) -> list[dict[str, Any]]:
    """Record what ``serve`` hands to uvicorn instead of blocking the test on a server."""
    calls: list[dict[str, Any]] = []

    def record(app: str, **options: Any) -> None:
        calls.append({"app": app, **options})

    monkeypatch.setattr(uvicorn, "run", record)
    return calls


def _production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", PRODUCTION_SECRET)
    monkeypatch.setenv("EMAIL_BACKEND", "file")
    monkeypatch.setenv("BCRYPT_ROUNDS", "12")


def test_production_refuses_an_unmigrated_database(
    runner: CliRunner,
    unmigrated_url: str,
    monkeypatch: pytest.MonkeyPatch,
    uvicorn_calls: list[dict[str, Any]],
) -> None:
    _production(monkeypatch)

    line = error_line(invoke(runner, "serve"))

    assert "orgauth migrate apply" in line
    assert uvicorn_calls == []
    assert current_revision(unmigrated_url) is None  # production never migrates by itself


def test_production_serves_a_migrated_database(
    runner: CliRunner,
    migrated_url: str,
    monkeypatch: pytest.MonkeyPatch,
    uvicorn_calls: list[dict[str, Any]],
) -> None:
    _production(monkeypatch)

    result = invoke(runner, "serve", "--host", "127.0.0.2", "--port", "9123", "--workers", "3")

    assert result.exit_code == 0, result.output
    [call] = uvicorn_calls
    assert call["app"] == "orgauth.app:create_app_from_environment"
    assert call["factory"] is True
    assert (call["host"], call["port"], call["workers"]) == ("127.0.0.2", 9123, 3)
    assert call["reload"] is False
    assert call["server_header"] is False
    assert call["access_log"] is True
    assert call["http"] == "orgauth.server:BoundedHttpToolsProtocol"


def test_the_server_runs_in_a_fresh_interpreter_of_the_same_process(
    runner: CliRunner, migrated_url: str, execs: list[list[str]], uvicorn_calls: list[Any]
) -> None:
    result = invoke(runner, "serve", "--port", "9124")

    assert result.exit_code == 0, result.output
    [argv] = execs
    assert json.loads(argv[3]) == {
        "host": "127.0.0.1",
        "port": 9124,
        "workers": 1,
        "reload": False,
        "access_log": True,
    }
    assert len(uvicorn_calls) == 1


def test_no_access_log_turns_the_per_request_line_off(
    runner: CliRunner, migrated_url: str, uvicorn_calls: list[dict[str, Any]]
) -> None:
    result = invoke(runner, "serve", "--no-access-log")

    assert result.exit_code == 0, result.output
    assert uvicorn_calls[0]["access_log"] is False


def test_development_applies_pending_migrations_before_serving(
    runner: CliRunner, unmigrated_url: str, uvicorn_calls: list[dict[str, Any]]
) -> None:
    result = invoke(runner, "serve")

    assert result.exit_code == 0, result.output
    assert len(uvicorn_calls) == 1
    assert current_revision(unmigrated_url) == migrate.head_revision()


def test_development_creates_the_shared_secret_key_before_workers_start(
    runner: CliRunner, tmp_path: Path, uvicorn_calls: list[dict[str, Any]]
) -> None:
    result = invoke(runner, "serve", "--workers", "2")  # the embedded default database

    assert result.exit_code == 0, result.output
    key_file = tmp_path / SECRET_KEY_FILE_NAME
    assert (tmp_path / "orgauth.db").exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert uvicorn_calls[0]["workers"] == 2


def test_reload_cannot_be_combined_with_workers(
    runner: CliRunner, migrated_url: str, uvicorn_calls: list[dict[str, Any]]
) -> None:
    assert "--reload" in error_line(invoke(runner, "serve", "--reload", "--workers", "2"))
    assert uvicorn_calls == []


def test_reload_is_refused_in_production(
    runner: CliRunner,
    migrated_url: str,
    monkeypatch: pytest.MonkeyPatch,
    uvicorn_calls: list[dict[str, Any]],
) -> None:
    _production(monkeypatch)

    assert "--reload" in error_line(invoke(runner, "serve", "--reload"))
    assert uvicorn_calls == []


def test_unreachable_database_is_one_line_error(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, uvicorn_calls: list[dict[str, Any]]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/x")

    assert "cannot use the database" in error_line(invoke(runner, "serve"))
    assert uvicorn_calls == []


@pytest.mark.parametrize("port", ["0", "70000", "http"])
def test_invalid_port_is_a_usage_error(
    runner: CliRunner, port: str, uvicorn_calls: list[dict[str, Any]]
) -> None:
    result = invoke(runner, "serve", "--port", port)

    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert uvicorn_calls == []


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_console_script_serves_health_with_zero_configuration(
    tmp_path: Path, server_factory: ServerFactory
) -> None:
    (server,) = server_factory.start(server_environment(secret_key=None))

    response = httpx.get(f"{server.url}/health", timeout=5)
    assert response.status_code == 200, server.log()
    body = response.json()
    assert body["status"] == "healthy"
    assert body["version"] == orgauth.__version__
    assert body["environment"] == "development"
    assert "server" not in {name.lower() for name in response.headers}
    assert httpx.get(f"{server.url}/docs", timeout=5).status_code == 200
    server.stop()
    assert (tmp_path / "orgauth.db").exists()
    assert (tmp_path / SECRET_KEY_FILE_NAME).exists()


@pytest.mark.parametrize("damage", ["a directory", "too short"])
def test_unusable_development_key_file_is_one_line_error(
    runner: CliRunner, tmp_path: Path, uvicorn_calls: list[dict[str, Any]], damage: str
) -> None:
    key_file = tmp_path / SECRET_KEY_FILE_NAME  # beside the embedded default database
    if damage == "a directory":
        key_file.mkdir()
    else:
        key_file.write_text("short\n")

    line = error_line(invoke(runner, "serve"))

    assert SECRET_KEY_FILE_NAME in line
    assert uvicorn_calls == []


# --- a real server: bounded request heads, log lines ---------------------------------------


@pytest.fixture
def live_server(server_factory: ServerFactory) -> tuple[int, Path]:
    """``orgauth serve`` on the zero-configuration database, JSON logs; (port, log file)."""
    (server,) = server_factory.start(server_environment(secret_key=None, log_format="json"))
    return server.port, server.log_path


def _exchange(port: int, request: bytes, *, responses: int = 1) -> list[int]:
    """Send raw bytes, read until ``responses`` status lines or the server closes; the statuses."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        with contextlib.suppress(OSError):  # refused midway: the server answered and closed
            connection.sendall(request)
        while received.count(b"HTTP/1.1 ") < responses:
            try:
                chunk = connection.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", received)]


def _get_health(header_bytes: int) -> bytes:
    padding = b"x" * header_bytes
    return b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + padding + b"\r\n\r\n"


@pytest.mark.slow
def test_request_heads_are_bounded_with_431(live_server: tuple[int, Path]) -> None:
    port, log_path = live_server

    assert _exchange(port, _get_health(MAX_REQUEST_HEAD_BYTES - 1024)) == [200]
    assert _exchange(port, _get_health(MAX_REQUEST_HEAD_BYTES + 1024)) == [431]
    # 30 MiB of one header: refused long before it is all sent (the reset that closing on
    # unread data causes may arrive before the 431 is read).
    assert _exchange(port, _get_health(30 * 1024 * 1024)) in ([431], [])
    # The worker still serves.
    assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    assert "Request header fields too large." in log_path.read_text()


def _exchange_in_two_reads(port: int, request: bytes, split: int) -> list[int]:
    """Send ``request`` in two parts with a pause between them (two reads on the server)."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request[:split])
        time.sleep(0.2)
        with contextlib.suppress(OSError):
            connection.sendall(request[split:])
        with contextlib.suppress(ConnectionResetError):
            while chunk := connection.recv(65536):
                received += chunk
                if b"\r\n\r\n" in received:
                    break
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", received)]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("size", "status"), [(MAX_REQUEST_HEAD_BYTES - 1024, 200), (MAX_REQUEST_HEAD_BYTES + 1024, 431)]
)
def test_the_bound_holds_for_a_head_split_across_reads(
    live_server: tuple[int, Path], size: int, status: int
) -> None:
    port, _ = live_server

    assert _exchange_in_two_reads(port, _get_health(size), split=7000) == [status]


@pytest.mark.slow
def test_a_large_body_is_not_counted_as_head_in_pipelined_requests(
    live_server: tuple[int, Path],
) -> None:
    port, _ = live_server
    body = json.dumps({"email": "a" * 200_000, "password": "x"}).encode()
    login = (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    ) + body

    statuses = _exchange(port, login + _get_health(20_000), responses=2)

    assert statuses == [422, 200]


@pytest.mark.slow
def test_log_lines_carry_no_colour_codes(live_server: tuple[int, Path]) -> None:
    port, log_path = live_server
    httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)

    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert any(line["logger"] == "uvicorn.access" for line in lines)
    assert any(line["event"].startswith("Uvicorn running on") for line in lines)
    assert all("color_message" not in line for line in lines)
    assert "\x1b" not in log_path.read_text()
