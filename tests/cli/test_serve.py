"""``orgauth serve`` (SPEC §5): migrations first in development, a refusal in production when
the database is behind, and one real server answering /health."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

import orgauth
from orgauth import migrate
from orgauth.settings import SECRET_KEY_FILE_NAME

from .helpers import ORGAUTH, PRODUCTION_SECRET, current_revision, error_line, invoke


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
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
def test_console_script_serves_health_with_zero_configuration(tmp_path: Path) -> None:
    port = _free_port()
    log = (tmp_path / "server.log").open("w+", encoding="utf-8")
    server = subprocess.Popen(
        [str(ORGAUTH), "serve", "--port", str(port)],
        cwd=tmp_path,
        env={**os.environ, "BCRYPT_ROUNDS": "4"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        response: httpx.Response | None = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                if response.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert response is not None, (tmp_path / "server.log").read_text()
        assert response.status_code == 200, (tmp_path / "server.log").read_text()
        body = response.json()
        assert body["status"] == "healthy"
        assert body["version"] == orgauth.__version__
        assert body["environment"] == "development"
        assert "server" not in {name.lower() for name in response.headers}
        assert httpx.get(f"http://127.0.0.1:{port}/docs", timeout=5).status_code == 200
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
        log.close()
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
