"""The built wheel ships what an installed orgauth needs: typing marker, the Alembic
environment, template and revisions, and the console script (README.md, docs/EMBEDDING.md).

Installing the wheel into a fresh virtualenv and running its migrations is done by .ci/run.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import orgauth

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "build", "--wheel", "--outdir", str(outdir)]
    if importlib.util.find_spec("hatchling") is not None:
        command.append("--no-isolation")  # the backend is already here: no download needed
    completed = subprocess.run(
        [*command, str(ROOT)], capture_output=True, text=True, timeout=300, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    [built] = outdir.glob("orgauth-*.whl")
    return built


@pytest.fixture(scope="module")
def names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


@pytest.mark.parametrize(
    "path",
    [
        "orgauth/__init__.py",
        "orgauth/py.typed",
        "orgauth/migrations/__init__.py",
        "orgauth/migrations/env.py",
        "orgauth/migrations/script.py.mako",
        "orgauth/migrations/versions/0001_initial_schema.py",
        "orgauth/cli/__init__.py",
    ],
)
def test_wheel_contains(names: set[str], path: str) -> None:
    assert path in names


def test_wheel_contains_every_bundled_revision(names: set[str]) -> None:
    versions = ROOT / "src" / "orgauth" / "migrations" / "versions"
    for revision in versions.glob("*.py"):
        assert f"orgauth/migrations/versions/{revision.name}" in names


def test_wheel_has_no_caches_tests_or_local_files(names: set[str]) -> None:
    for name in names:
        assert "__pycache__" not in name
        assert not name.endswith((".pyc", ".db", ".orgauth-secret-key", ".env"))
        assert not name.startswith(("tests/", "src/"))


def test_wheel_declares_the_console_script_and_version(wheel: Path, names: set[str]) -> None:
    assert wheel.name.startswith(f"orgauth-{orgauth.__version__}-")
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(entry_points).decode()
    assert "orgauth = orgauth.cli:main" in text
