"""``orgauth health``: settings, database and migrations in a table; exit 0 or 1 (README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from orgauth import migrate

from .helpers import UNREACHABLE_DATABASE, invoke, run_orgauth


def test_health_passes_on_a_migrated_database(runner: CliRunner, migrated_url: str) -> None:
    result = invoke(runner, "health")

    assert result.exit_code == 0, result.output
    for check in ("settings", "database", "migrations"):
        assert check in result.stdout
    assert "fail" not in result.stdout
    assert "environment=development" in result.stdout
    assert f"at {migrate.head_revision()} (latest)" in result.stdout


def test_health_fails_when_the_database_is_unreachable(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres:hunter2-db-pass@127.0.0.1:1/x")

    result = invoke(runner, "health")

    assert result.exit_code == 1
    assert "database" in result.stdout
    assert "fail" in result.stdout
    assert "hunter2-db-pass" not in result.output
    assert "Traceback" not in result.output


def test_health_fails_on_an_unmigrated_database(runner: CliRunner, unmigrated_url: str) -> None:
    result = invoke(runner, "health")

    assert result.exit_code == 1
    assert "migrations" in result.stdout
    assert "orgauth migrate apply" in result.stdout


def test_console_script_health_exit_codes(migrated_url: str, tmp_path: Path) -> None:
    healthy = run_orgauth("health", cwd=tmp_path, env={"DATABASE_URL": migrated_url})
    unreachable = run_orgauth("health", cwd=tmp_path, env={"DATABASE_URL": UNREACHABLE_DATABASE})

    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "database" in healthy.stdout
    assert unreachable.returncode == 1
    assert "Traceback" not in unreachable.stdout + unreachable.stderr
