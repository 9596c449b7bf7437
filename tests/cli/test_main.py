"""The ``orgauth`` command: help for every command, version, and one-line setting errors
(README.md)."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

import orgauth

from .helpers import (
    PRODUCTION_SECRET,
    STRONG_PASSWORD,
    error_line,
    invoke,
    run_orgauth,
    subprocess_error_line,
)

COMMANDS = {
    "serve": "Run the orgauth server",
    "health": "Check the settings and the database",
    "migrate": "Apply and inspect orgauth's bundled database migrations",
    "user": "Manage user accounts",
    "sessions": "Maintain stored sessions",
}
SUBCOMMANDS = [
    ("serve",),
    ("health",),
    ("migrate",),
    ("migrate", "apply"),
    ("migrate", "downgrade"),
    ("migrate", "current"),
    ("migrate", "list"),
    ("migrate", "check"),
    ("migrate", "generate"),
    ("user",),
    ("user", "create-superuser"),
    ("sessions",),
    ("sessions", "prune"),
]


def test_help_lists_every_command_with_its_help_text(runner: CliRunner) -> None:
    result = invoke(runner, "--help")

    assert result.exit_code == 0
    for command, summary in COMMANDS.items():
        assert command in result.stdout
        assert summary in result.stdout


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=" ".join)
def test_every_command_has_help(runner: CliRunner, command: tuple[str, ...]) -> None:
    result = invoke(runner, *command, "--help")

    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    assert " ".join(command) in result.stdout


@pytest.mark.parametrize(
    ("group", "subcommands"),
    [
        ("migrate", ["apply", "downgrade", "current", "list", "check", "generate"]),
        ("user", ["create-superuser"]),
        ("sessions", ["prune"]),
    ],
)
def test_group_help_lists_its_subcommands(
    runner: CliRunner, group: str, subcommands: list[str]
) -> None:
    result = invoke(runner, group, "--help")

    for subcommand in subcommands:
        assert subcommand in result.stdout


def test_serve_help_documents_its_options(runner: CliRunner) -> None:
    result = invoke(runner, "serve", "--help")

    for option in ("--host", "--port", "--workers", "--reload"):
        assert option in result.stdout


def test_version_prints_the_package_version(runner: CliRunner) -> None:
    result = invoke(runner, "--version")

    assert result.exit_code == 0
    assert result.stdout.strip() == orgauth.__version__


def test_unknown_command_fails(runner: CliRunner) -> None:
    result = invoke(runner, "frobnicate")

    assert result.exit_code != 0
    assert "Traceback" not in result.output


# --- invalid settings ----------------------------------------------------------------------

INVALID_SETTINGS = [
    ({"ENVIRONMENT": "staging"}, "ENVIRONMENT"),
    ({"BCRYPT_ROUNDS": "3"}, "BCRYPT_ROUNDS"),
    ({"ENVIRONMENT": "production", "EMAIL_BACKEND": "file"}, "SECRET_KEY"),
    ({"ENVIRONMENT": "production", "SECRET_KEY": "change-me-" * 4}, "SECRET_KEY"),
    (
        {"ENVIRONMENT": "production", "SECRET_KEY": PRODUCTION_SECRET, "EMAIL_BACKEND": "file"}
        | {"BCRYPT_ROUNDS": "10"},
        "BCRYPT_ROUNDS",
    ),
    ({"DATABASE_URL": "mysql://app@db/app"}, "DATABASE_URL"),
    ({"DATABASE_URL": "postgresql://"}, "DATABASE_URL"),
    ({"DATABASE_URL": "postgresql://app@db.internal:5432"}, "DATABASE_URL"),
    ({"RATE_LIMIT_LOGIN": "0/minute"}, "RATE_LIMIT_LOGIN"),
    ({"RATE_LIMIT_PASSWORD_CHANGE": "5/hour;0/day"}, "RATE_LIMIT_PASSWORD_CHANGE"),
    ({"BACKEND_CORS_ORIGINS": '["https://a.example.org"'}, "BACKEND_CORS_ORIGINS"),
]


@pytest.mark.parametrize(("env", "setting"), INVALID_SETTINGS)
@pytest.mark.parametrize(
    "command",
    [("health",), ("migrate", "apply"), ("migrate", "check"), ("sessions", "prune"), ("serve",)],
    ids=" ".join,
)
def test_invalid_settings_fail_with_one_line_naming_the_setting(
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    setting: str,
    command: tuple[str, ...],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    result = invoke(runner, *command)

    line = error_line(result)
    assert result.exit_code == 1
    assert setting in line


def test_invalid_dotenv_setting_fails_with_one_line(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ENVIRONMENT=staging\n", encoding="utf-8")

    assert "ENVIRONMENT" in error_line(invoke(runner, "migrate", "current"))


# --- the installed console script ----------------------------------------------------------


def test_console_script_help_lists_every_command(tmp_path: Path) -> None:
    completed = run_orgauth("--help", cwd=tmp_path)

    assert completed.returncode == 0, completed.stderr
    for command in COMMANDS:
        assert command in completed.stdout


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"ENVIRONMENT": "staging"}, "ENVIRONMENT"),
        ({"BCRYPT_ROUNDS": "3"}, "BCRYPT_ROUNDS"),
        ({"ENVIRONMENT": "production"}, "SECRET_KEY"),
    ],
)
def test_console_script_reports_invalid_settings_in_one_line(
    tmp_path: Path, env: dict[str, str], setting: str
) -> None:
    completed = run_orgauth("health", cwd=tmp_path, env=env)

    line = subprocess_error_line(completed)
    assert completed.returncode == 1
    assert setting in line


@pytest.mark.parametrize(
    "env",
    [
        {"SECRET_KEY": "Sup3r-Secret-Value-12"},
        {"DATABASE_URL": "postgresql://app:Sup3r-Secret-Value-12@db.internal"},
        {"DATABASE_URL": "mysql://app:Sup3r-Secret-Value-12@db.internal/app"},
        {"SMTP_PASSWORD": "Sup3r-Secret-Value-12"},
        {"ENVIRONMENT": "production", "SECRET_KEY": "change-me-Sup3r-Secret-Value-12"},
    ],
)
def test_console_script_never_prints_a_refused_secret(tmp_path: Path, env: dict[str, str]) -> None:
    completed = run_orgauth("migrate", "current", cwd=tmp_path, env=env)

    subprocess_error_line(completed)
    assert "Secret-Value" not in completed.stdout + completed.stderr


def test_console_script_quotes_user_input_literally_in_errors(tmp_path: Path) -> None:
    completed = run_orgauth(
        "migrate", "apply", "[/bold]nope", cwd=tmp_path, env={"DATABASE_URL": "sqlite:///x.db"}
    )

    assert "'[/bold]nope'" in subprocess_error_line(completed)


# --- a SQLite database that cannot be opened -------------------------------------------------

COMMANDS_ON_THE_DATABASE = [
    ("migrate", "apply"),
    ("migrate", "current"),
    ("migrate", "check"),
    ("migrate", "downgrade", "base"),
    ("sessions", "prune"),
    ("user", "create-superuser", "--email", "root@example.org", "--password-stdin"),
    ("serve", "--port", "1"),
    ("health",),
]


def _unopenable_sqlite_paths(tmp_path: Path) -> dict[str, Path]:
    paths = {"missing directory": tmp_path / "missing" / "orgauth.db", "a directory": tmp_path}
    if Path("/proc").is_dir():  # nobody, root included, can create a file there
        paths["read-only location"] = Path("/proc/orgauth.db")
    return paths


def test_unopenable_sqlite_database_is_one_line_from_every_command(tmp_path: Path) -> None:
    # aiosqlite reports a failed open from a thread that may outlive the event loop; that
    # shows as a stray traceback after the error line, more often when the interpreter
    # switches threads rarely (a busy machine): make it so.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.setswitchinterval(0.5)\n")
    runs = [
        (name, path, command)
        for name, path in _unopenable_sqlite_paths(tmp_path).items()
        for command in COMMANDS_ON_THE_DATABASE
    ]

    def run(path: Path, command: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        env = {"DATABASE_URL": f"sqlite:///{path}", "PYTHONPATH": str(site)}
        return run_orgauth(*command, cwd=tmp_path, env=env, input=f"{STRONG_PASSWORD}\n")

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda case: run(case[1], case[2]), runs))

    for (name, path, command), completed in zip(runs, results, strict=True):
        where = f"{' '.join(command)} on {name}"
        assert completed.returncode == 1, where
        assert "Traceback" not in completed.stderr + completed.stdout, where
        if command == ("health",):  # a table with the failed check, no error line
            assert "unable to open database file" in completed.stdout, where
            assert completed.stderr == "", where
            continue
        line = subprocess_error_line(completed)
        assert line == (
            f"Error: cannot use the database at sqlite+aiosqlite:///{path} "
            "(OperationalError: unable to open database file)"
        ), where
    assert not (tmp_path / "missing").exists()
