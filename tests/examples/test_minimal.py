"""examples/minimal: orgauth mounted, one host route protected by ``auth.current_user``."""

import ast
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.embedding.helpers import (
    API,
    ROOT,
    error_code,
    load_example,
    point_examples_at,
    running,
    sign_up,
)

APP_FILE = ROOT / "examples" / "minimal" / "app.py"


@pytest.fixture
async def example(
    db: AsyncEngine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[ModuleType, httpx.AsyncClient]]:
    point_examples_at(monkeypatch, database_url, tmp_path / "emails")
    module = load_example("examples.minimal.app")
    async with running(module.app) as client:
        yield module, client


async def test_hello_needs_a_signed_in_user(
    example: tuple[ModuleType, httpx.AsyncClient],
) -> None:
    _, client = example

    anonymous = await client.get("/hello")
    account = await sign_up(client)
    signed_in = await client.get("/hello", headers=account.headers)

    assert (anonymous.status_code, error_code(anonymous)) == (401, "NOT_AUTHENTICATED")
    assert signed_in.json() == {"message": f"Hello, {account.email}!"}


async def test_orgauth_routes_and_health_are_mounted(
    example: tuple[ModuleType, httpx.AsyncClient],
) -> None:
    module, client = example
    account = await sign_up(client)

    me = await client.get(f"{API}/users/me", headers=account.headers)
    health = await client.get("/health")

    assert me.json()["email"] == account.email
    assert health.json()["status"] == "healthy"
    assert module.auth.settings.bcrypt_rounds == 4  # read from the environment


def test_example_stays_minimal() -> None:
    """About twenty lines of code (docstrings, comments and the __main__ block aside)."""
    tree = ast.parse(APP_FILE.read_text())
    body = [
        node
        for node in tree.body
        if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
        and not isinstance(node, ast.If)
    ]
    lines = {line for node in body for line in range(node.lineno, (node.end_lineno or 0) + 1)}

    assert len(lines) <= 25


def test_runs_as_a_script_from_any_directory(tmp_path: Path, database_url: str) -> None:
    """`python examples/minimal/app.py` imports cleanly (run here without starting a server)."""
    environment = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "k" * 40}
    code = f"import runpy; runpy.run_path({str(APP_FILE)!r}, run_name='example')"

    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
