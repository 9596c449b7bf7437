"""The docs against the code: every setting in CONFIGURATION.md, every route and error code
in API.md, and every ```python runnable block of README.md and docs/*.md actually runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from orgauth.app import create_app
from orgauth.errors import ErrorCode
from orgauth.settings import OrgAuthSettings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
MARKDOWN_FILES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
RUNNABLE_TIMEOUT_SECONDS = 90


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# --- settings ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(f.upper() for f in OrgAuthSettings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    assert f"`{name}`" in _read(DOCS / "CONFIGURATION.md")


# --- routes -----------------------------------------------------------------------------

_METHODS = "|".join(HTTP_METHODS)
# "GET, PATCH `/a/{id}`" or "GET `/docs`, `/redoc`" in the first cell of a table row.
_ROUTE_GROUP = re.compile(
    rf"((?:{_METHODS})(?:\s*,\s*(?:{_METHODS}))*)\s+((?:`/[^`]*`(?:\s*,\s*)?)+)"
)
_PATH = re.compile(r"`(/[^`]*)`")
_PARAMETER = re.compile(r"\{[^}]+\}")


def _normalise(path: str, prefix: str = "/api/v1") -> str:
    if path.startswith(prefix + "/"):
        path = path[len(prefix) :]
    return _PARAMETER.sub("{}", path.rstrip("/") or "/")


def documented_routes() -> set[tuple[str, str]]:
    """(method, path) pairs named in the first cell of API.md's tables."""
    routes: set[tuple[str, str]] = set()
    for line in _read(DOCS / "API.md").splitlines():
        if not line.startswith("|"):
            continue
        first_cell = line.split("|")[1]
        for methods, paths in _ROUTE_GROUP.findall(first_cell):
            for method in re.split(r"\s*,\s*", methods):
                for path in _PATH.findall(paths):
                    routes.add((method, _normalise(path)))
    return routes


def served_routes() -> set[tuple[str, str]]:
    settings = OrgAuthSettings(
        _env_file=None, database_url="sqlite+aiosqlite:///:memory:", secret_key="k" * 40
    )
    openapi = create_app(settings).openapi()
    return {
        (method.upper(), _normalise(path))
        for path, operations in openapi["paths"].items()
        for method in operations
        if method.upper() in HTTP_METHODS
    }


def test_route_parser_reads_combined_rows() -> None:
    assert ("DELETE", "/admin/organizations/{}/members/{}") in documented_routes()
    assert ("GET", "/health") in documented_routes()


@pytest.mark.parametrize(("method", "path"), sorted(served_routes()))
def test_every_route_is_documented(method: str, path: str) -> None:
    assert (method, path) in documented_routes()


def test_every_documented_route_exists() -> None:
    pages = {("GET", "/docs"), ("GET", "/redoc")}  # served outside the OpenAPI schema

    assert documented_routes() - pages - served_routes() == set()


# --- error codes ------------------------------------------------------------------------


def documented_error_codes() -> set[str]:
    text = _read(DOCS / "API.md")
    table = text.split("## Error codes", 1)[1]
    return set(re.findall(r"^\| `([A-Z_]+)` \| \d{3} \|", table, flags=re.MULTILINE))


def test_error_code_table_matches_the_enum() -> None:
    assert documented_error_codes() == {code.value for code in ErrorCode}


# --- runnable code blocks ----------------------------------------------------------------

_FENCE_OPEN = re.compile(r"^(```+)\s*python\s+runnable\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    code: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def runnable_blocks(path: Path) -> list[Block]:
    """Every fenced block whose info string is ``python runnable``."""
    blocks: list[Block] = []
    lines = _read(path).splitlines()
    index = 0
    while index < len(lines):
        opened = _FENCE_OPEN.match(lines[index])
        if opened is None:
            index += 1
            continue
        fence, start = opened.group(1), index + 1
        end = start
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        assert end < len(lines), f"unclosed code block at {path.name}:{start}"
        blocks.append(Block(path, start, "\n".join(lines[start:end]) + "\n"))
        index = end + 1
    return blocks


ALL_BLOCKS = [block for path in MARKDOWN_FILES for block in runnable_blocks(path)]


def test_runnable_blocks_are_marked() -> None:
    per_file = {block.path.name for block in ALL_BLOCKS}

    assert {"README.md", "EMBEDDING.md"} <= per_file


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[block.id for block in ALL_BLOCKS])
def test_runnable_block_runs(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(block.code, encoding="utf-8")
    environment = {
        **os.environ,  # the suite's fixture has already removed every orgauth setting
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'docs.db'}",
        "SECRET_KEY": "docs-example-signing-key-0123456789abcdefghij",
        "BCRYPT_ROUNDS": "4",
        "EMAIL_BACKEND": "file",
        "EMAIL_FILE_DIR": str(tmp_path / "emails"),
    }

    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=RUNNABLE_TIMEOUT_SECONDS,
        check=False,
    )

    assert result.returncode == 0, f"{block.id} failed:\n{result.stdout}\n{result.stderr}"
