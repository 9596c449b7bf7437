"""``orgauth migrate``: apply, downgrade, current, list, check and generate (README.md)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

import orgauth.migrations
from orgauth import migrate
from orgauth.db import create_engine
from orgauth.migrations.options import VERSION_TABLE
from orgauth.models import ORGAUTH_TABLES
from orgauth.settings import OrgAuthSettings

from .helpers import (
    ORGAUTH,
    UNREACHABLE_DATABASE,
    current_revision,
    error_line,
    invoke,
    run_orgauth,
    sql,
)

HEAD = migrate.head_revision()
VERSIONS_DIR = Path(orgauth.migrations.__file__).parent / "versions"


def _all_tables(url: str) -> set[str]:
    async def read() -> set[str]:
        from sqlalchemy import inspect

        engine = create_engine(OrgAuthSettings(_env_file=None, database_url=url))  # type: ignore[call-arg]
        try:
            async with engine.connect() as connection:
                names = await connection.run_sync(lambda c: inspect(c).get_table_names())
        finally:
            await engine.dispose()
        return set(names)

    return asyncio.run(read())


def _orgauth_tables(url: str) -> set[str]:
    return _all_tables(url) & ORGAUTH_TABLES


def test_apply_upgrades_an_empty_database_to_head(runner: CliRunner, unmigrated_url: str) -> None:
    result = invoke(runner, "migrate", "apply")

    assert result.exit_code == 0, result.output
    assert f"Database at revision {HEAD}" in result.stdout
    assert current_revision(unmigrated_url) == HEAD
    assert _orgauth_tables(unmigrated_url) == ORGAUTH_TABLES


def test_apply_accepts_an_explicit_revision(runner: CliRunner, unmigrated_url: str) -> None:
    first = migrate.list_revisions()[-1].revision

    result = invoke(runner, "migrate", "apply", first)

    assert result.exit_code == 0, result.output
    assert current_revision(unmigrated_url) == first


def test_apply_twice_is_harmless(runner: CliRunner, unmigrated_url: str) -> None:
    assert invoke(runner, "migrate", "apply").exit_code == 0

    result = invoke(runner, "migrate", "apply")

    assert result.exit_code == 0, result.output
    assert current_revision(unmigrated_url) == HEAD


def test_downgrade_base_removes_every_orgauth_table(runner: CliRunner, unmigrated_url: str) -> None:
    assert invoke(runner, "migrate", "apply").exit_code == 0

    result = invoke(runner, "migrate", "downgrade", "base")

    assert result.exit_code == 0, result.output
    assert "Database at revision base" in result.stdout
    assert _orgauth_tables(unmigrated_url) == set()
    assert VERSION_TABLE not in _all_tables(unmigrated_url)
    assert current_revision(unmigrated_url) is None


def test_current_and_check_after_a_downgrade_to_base(
    runner: CliRunner, unmigrated_url: str
) -> None:
    assert invoke(runner, "migrate", "apply").exit_code == 0
    assert invoke(runner, "migrate", "downgrade", "base").exit_code == 0

    current = invoke(runner, "migrate", "current")
    check = invoke(runner, "migrate", "check")
    again = invoke(runner, "migrate", "downgrade", "base")

    assert current.exit_code == 0, current.output
    assert current.stdout.startswith("base")
    assert f"database at base, latest is {HEAD}" in error_line(check)
    assert again.exit_code == 0, again.output
    assert "Database at revision base" in again.stdout
    assert invoke(runner, "migrate", "apply").exit_code == 0
    assert current_revision(unmigrated_url) == HEAD


def test_downgrade_requires_a_revision(runner: CliRunner, unmigrated_url: str) -> None:
    result = invoke(runner, "migrate", "downgrade")

    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_current_reports_base_then_head(runner: CliRunner, unmigrated_url: str) -> None:
    before = invoke(runner, "migrate", "current")
    invoke(runner, "migrate", "apply")
    after = invoke(runner, "migrate", "current")

    assert before.exit_code == 0
    assert before.stdout.startswith("base")
    assert "orgauth migrate apply" in before.stdout
    assert after.exit_code == 0
    assert after.stdout.strip() == f"{HEAD} (head)"


def test_list_shows_every_bundled_revision(runner: CliRunner) -> None:
    result = invoke(runner, "migrate", "list")

    assert result.exit_code == 0, result.output
    assert f"{HEAD} (head)" in result.stdout
    for revision in migrate.list_revisions():
        assert revision.revision in result.stdout
        assert revision.message.split()[0] in result.stdout


def test_check_fails_on_an_unmigrated_database(runner: CliRunner, unmigrated_url: str) -> None:
    line = error_line(invoke(runner, "migrate", "check"))

    assert "orgauth migrate apply" in line


def test_check_passes_at_head(runner: CliRunner, migrated_url: str) -> None:
    result = invoke(runner, "migrate", "check")

    assert result.exit_code == 0, result.output
    assert HEAD in result.stdout


def test_check_fails_when_the_database_is_unreachable(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres:hunter2-db-pass@127.0.0.1:1/x")

    result = invoke(runner, "migrate", "check")

    line = error_line(result)
    assert "cannot use the database" in line
    assert "hunter2-db-pass" not in result.output


@pytest.mark.parametrize("command", ["apply", "downgrade"])
@pytest.mark.parametrize("revision", ["nope", "[/bold]9999"])
def test_unknown_revision_is_one_line_error(
    runner: CliRunner, unmigrated_url: str, command: str, revision: str
) -> None:
    line = error_line(invoke(runner, "migrate", command, revision))

    assert f"unknown revision '{revision}'" in line
    assert current_revision(unmigrated_url) is None


def test_generate_refuses_when_models_match_the_latest_revision(
    runner: CliRunner, migrated_url: str
) -> None:
    before = sorted(VERSIONS_DIR.glob("*.py"))
    try:
        result = invoke(runner, "migrate", "generate", "nothing changed")

        line = error_line(result)
        assert "nothing to generate" in line
    finally:
        created = set(VERSIONS_DIR.glob("*.py")) - set(before)
        for path in created:  # never leave a stray revision in the package
            path.unlink()
    assert not created


def test_generate_refuses_on_an_unmigrated_database(runner: CliRunner, unmigrated_url: str) -> None:
    before = sorted(VERSIONS_DIR.glob("*.py"))

    line = error_line(invoke(runner, "migrate", "generate", "too early"))

    assert "orgauth migrate apply" in line
    assert sorted(VERSIONS_DIR.glob("*.py")) == before


# --- the installed console script ----------------------------------------------------------


def test_console_script_applies_and_checks_migrations(unmigrated_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": unmigrated_url}

    unmigrated_check = run_orgauth("migrate", "check", cwd=tmp_path, env=env)
    applied = run_orgauth("migrate", "apply", cwd=tmp_path, env=env)
    migrated_check = run_orgauth("migrate", "check", cwd=tmp_path, env=env)
    current = run_orgauth("migrate", "current", cwd=tmp_path, env=env)

    assert unmigrated_check.returncode == 1
    assert "orgauth migrate apply" in unmigrated_check.stderr
    assert applied.returncode == 0, applied.stderr
    assert migrated_check.returncode == 0, migrated_check.stderr
    assert current.stdout.strip() == f"{HEAD} (head)"


def test_console_script_reports_unreachable_database_in_one_line(tmp_path: Path) -> None:
    completed = run_orgauth(
        "migrate", "apply", cwd=tmp_path, env={"DATABASE_URL": UNREACHABLE_DATABASE}
    )

    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1
    assert "cannot use the database" in completed.stderr


@pytest.mark.slow
def test_concurrent_applies_from_several_processes_all_succeed(
    unmigrated_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": unmigrated_url}
    processes = [
        subprocess.Popen(
            [str(ORGAUTH), "migrate", "apply"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        outcomes.append((process.returncode, stdout, stderr))

    assert [code for code, _, _ in outcomes] == [0] * 4, outcomes
    assert current_revision(unmigrated_url) == HEAD
    assert sql(unmigrated_url, "SELECT count(*) FROM orgauth_alembic_version")[0][0] == 1
