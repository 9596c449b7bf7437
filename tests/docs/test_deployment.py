"""Dockerfile, .dockerignore and docker-compose.yml, checked structurally.

No Docker engine runs where this suite runs, so these tests read the files (and have
``docker-compose config`` parse the compose file, which needs no engine): the compose
file's services, dependencies, health checks and environment (interpolated the way
`docker compose` does and validated as production OrgAuthSettings), and the Dockerfile's
stages, user, health check and command.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from orgauth.settings import OrgAuthSettings

ROOT = Path(__file__).resolve().parents[2]
SECRET_NAMES = re.compile(r"PASSWORD|SECRET|TOKEN|(?<![A-Z])KEY")
# Inside a container the server must listen on every interface.
SERVE = ["orgauth", "serve", "--host", "0.0.0.0", "--port", "8000"]  # noqa: S104


# --- docker-compose.yml -----------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def _as_list(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?:(?P<op>:\?|:-)(?P<arg>[^}]*))?\}")


class MissingVariable(Exception):
    pass


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}``."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        if variables.get(name):
            return variables[name]
        if op == ":?":
            raise MissingVariable(arg)
        return arg if op == ":-" else ""

    return _VARIABLE.sub(replace, value)


def test_services_are_there(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", "redis", "migrate", "orgauth"}
    assert set(compose["volumes"]) >= {"postgres-data"}


def test_postgres_is_15_with_healthcheck_and_volume(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]

    assert postgres["image"] == "postgres:15"
    assert "pg_isready" in " ".join(_as_list(postgres["healthcheck"]["test"]))
    assert "postgres-data:/var/lib/postgresql/data" in postgres["volumes"]
    assert "ports" not in postgres  # reachable only inside the compose network


def test_redis_is_7_and_private(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]

    assert redis["image"] == "redis:7"
    assert "ports" not in redis
    assert "ping" in _as_list(redis["healthcheck"]["test"])


def test_migrate_runs_once_when_postgres_is_healthy(compose: dict[str, Any]) -> None:
    migrate = compose["services"]["migrate"]

    assert _as_list(migrate["command"]) == ["orgauth", "migrate", "apply"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["restart"] == "no"
    assert migrate["build"] == "."


def test_orgauth_waits_for_the_migration(compose: dict[str, Any]) -> None:
    orgauth = compose["services"]["orgauth"]

    assert orgauth["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert orgauth["depends_on"]["redis"]["condition"] == "service_healthy"
    assert _as_list(orgauth["command"]) == SERVE
    assert orgauth["image"] == compose["services"]["migrate"]["image"]
    assert orgauth["ports"] == ["8000:8000"]


def test_orgauth_environment(compose: dict[str, Any]) -> None:
    environment = _environment(compose["services"]["orgauth"])

    assert environment["ENVIRONMENT"] == "production"
    assert environment["DATABASE_URL"].startswith("postgresql://orgauth:")
    assert environment["DATABASE_URL"].endswith("@postgres:5432/orgauth")
    assert environment["RATE_LIMIT_STORAGE_URI"] == "redis://redis:6379/0"
    assert environment["SECRET_KEY"] == "${ORGAUTH_SECRET_KEY:?set ORGAUTH_SECRET_KEY}"
    assert environment["EMAIL_BACKEND"] in {"file", "smtp"}
    assert "FORWARDED_ALLOW_IPS" not in environment  # documented, commented out
    assert "# FORWARDED_ALLOW_IPS:" in (ROOT / "docker-compose.yml").read_text()
    assert _environment(compose["services"]["migrate"]) == environment


def test_no_secret_is_hard_coded(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in _environment(service).items():
            if SECRET_NAMES.search(key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", value), (name, key, value)
            if "://" in value and "@" in value:  # credentials inside a URL
                userinfo = value.split("://", 1)[1].split("@", 1)[0]
                password = userinfo.partition(":")[2]
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", password), (name, key)


def test_environment_makes_valid_production_settings(compose: dict[str, Any]) -> None:
    variables = {
        "ORGAUTH_SECRET_KEY": secrets.token_urlsafe(48),
        "ORGAUTH_DB_PASSWORD": secrets.token_urlsafe(24),
    }
    raw = _environment(compose["services"]["orgauth"])
    environment = {key: interpolate(value, variables) for key, value in raw.items()}

    fields: dict[str, Any] = {key.lower(): value for key, value in environment.items()}
    settings = OrgAuthSettings(_env_file=None, **fields)

    assert settings.is_production
    assert settings.sqlalchemy_url.startswith("postgresql+asyncpg://orgauth:")
    assert settings.signing_key == variables["ORGAUTH_SECRET_KEY"]
    postgres = _environment(compose["services"]["postgres"])
    assert interpolate(postgres["POSTGRES_PASSWORD"], variables) == variables["ORGAUTH_DB_PASSWORD"]


def test_compose_refuses_to_start_without_the_secret_key(compose: dict[str, Any]) -> None:
    raw = _environment(compose["services"]["orgauth"])

    with pytest.raises(MissingVariable, match="set ORGAUTH_SECRET_KEY"):
        interpolate(raw["SECRET_KEY"], {"ORGAUTH_DB_PASSWORD": "x"})


# --- Dockerfile ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        pending = f"{pending} {line}".strip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, arguments = pending.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def _stages() -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for instruction in dockerfile():
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


def _exec_form(arguments: str) -> list[str]:
    value = yaml.safe_load(arguments)  # a JSON array is valid YAML
    assert isinstance(value, list), f"not exec form: {arguments}"
    return [str(item) for item in value]


def test_dockerfile_is_multi_stage() -> None:
    builder, runtime = _stages()

    assert re.fullmatch(r"python:3\.11-slim AS builder", builder[0].arguments, re.IGNORECASE)
    assert re.fullmatch(r"python:3\.11-slim( AS \w+)?", runtime[0].arguments, re.IGNORECASE)
    assert any(
        i.keyword == "RUN" and ("pip wheel" in i.arguments or "-m build" in i.arguments)
        for i in builder
    )
    assert any(i.keyword == "COPY" and "--from=builder" in i.arguments for i in runtime)
    installs = [i.arguments for i in runtime if i.keyword == "RUN" and "pip install" in i.arguments]
    assert len(installs) == 1
    assert "[redis]" in installs[0]
    assert not any(i.keyword == "COPY" and "src" in i.arguments.split() for i in runtime)


def test_dockerfile_runs_as_non_root() -> None:
    runtime = _stages()[-1]
    users = [i.arguments for i in runtime if i.keyword == "USER"]

    assert users, "no USER in the runtime stage"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    keywords = [i.keyword for i in runtime]
    assert keywords.index("USER") < keywords.index("CMD")


def test_dockerfile_healthcheck_expose_and_command() -> None:
    runtime = _stages()[-1]
    by_keyword = {i.keyword: i.arguments for i in runtime}

    healthcheck = by_keyword["HEALTHCHECK"]
    assert "CMD" in healthcheck
    assert _exec_form(healthcheck.split("CMD", 1)[1].strip()) == ["orgauth", "health"]
    assert by_keyword["EXPOSE"] == "8000"
    assert _exec_form(by_keyword["CMD"]) == SERVE


def test_dockerfile_bakes_in_no_secret() -> None:
    for instruction in dockerfile():
        if instruction.keyword in {"ENV", "ARG"}:
            assert not SECRET_NAMES.search(instruction.arguments.upper()), instruction
        assert ".env" not in instruction.arguments.split(), instruction


def test_dockerignore_keeps_secrets_and_clutter_out() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }

    assert {".git", ".venv", ".env", ".orgauth-secret-key", "*.db"} <= patterns
    copied = {"pyproject.toml", "README.md", "LICENSE", "src"}
    assert copied.isdisjoint(patterns)


# --- a real Compose implementation ------------------------------------------------------

DOCKER_COMPOSE = shutil.which("docker-compose")


@pytest.mark.skipif(
    DOCKER_COMPOSE is None and not os.environ.get("CI"),
    reason="docker-compose is not installed (CI installs Debian's docker-compose)",
)
def test_compose_file_is_accepted_by_docker_compose(tmp_path: Path) -> None:
    """``docker-compose config`` (no engine needed) parses, validates and interpolates it.

    Debian's docker-compose is v1, which predates the Compose Specification's top-level
    ``name:`` key; that one line is dropped, everything else is checked as written.
    """
    assert DOCKER_COMPOSE is not None, "CI must install docker-compose"
    source = (ROOT / "docker-compose.yml").read_text()
    assert re.search(r"^name: orgauth$", source, flags=re.MULTILINE)
    checked = ROOT / f".compose-check-{secrets.token_hex(4)}.yml"  # same dir: build context
    # Not the developer's .env beside the compose file: only what is passed here counts.
    no_env_file = tmp_path / "empty.env"
    no_env_file.touch()
    environment = {
        "PATH": os.environ["PATH"],
        "ORGAUTH_DB_PASSWORD": "db-password-for-the-check",
        "ORGAUTH_SECRET_KEY": secrets.token_urlsafe(48),
    }
    command = [DOCKER_COMPOSE, "--env-file", str(no_env_file), "-f", str(checked), "config"]
    try:
        checked.write_text(re.sub(r"^name: .*\n", "", source, flags=re.MULTILINE))
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=environment,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
        missing = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env={"PATH": os.environ["PATH"]},
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
    finally:
        checked.unlink(missing_ok=True)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == {"postgres", "redis", "migrate", "orgauth"}
    orgauth = resolved["services"]["orgauth"]
    assert orgauth["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert orgauth["environment"]["DATABASE_URL"].startswith(
        "postgresql://orgauth:db-password-for-the-check@postgres:5432/"
    )
    # Without the secrets, compose itself refuses to start anything.
    assert missing.returncode != 0
    assert "ORGAUTH_" in missing.stderr
