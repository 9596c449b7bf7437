"""The examples side by side: each follows its README on its own database file with its own
demo addresses, so trying one after another in the same directory just works."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orgauth.settings import normalize_database_url
from tests.cli.helpers import run_orgauth
from tests.embedding.helpers import PASSWORD, ROOT, load_example, point_examples_at, running

EXAMPLES = ["minimal", "custom_email", "saas"]
ALEMBIC = Path(sys.executable).with_name("alembic")


def _readme(example: str) -> str:
    return (ROOT / "examples" / example / "README.md").read_text(encoding="utf-8")


def _database_url(example: str) -> str:
    """The DATABASE_URL the example's README exports before its first command."""
    [url] = re.findall(r"^export DATABASE_URL=(\S+)", _readme(example), re.MULTILINE)
    return url


def _demo_addresses(example: str) -> set[str]:
    return set(re.findall(r"[\w.+-]+@example\.com", _readme(example)))


def test_each_example_has_its_own_database_file_and_demo_addresses() -> None:
    urls = [_database_url(example) for example in EXAMPLES]
    addresses = [_demo_addresses(example) for example in EXAMPLES]

    assert len(set(urls)) == len(EXAMPLES)
    assert all(url.startswith("sqlite:///./") for url in urls)
    assert all(addresses)
    assert sum(len(a) for a in addresses) == len(set().union(*addresses))


@pytest.fixture
def readme_databases(tmp_path: Path) -> Path:
    """Every example's database set up in one directory, as each README's commands do."""
    for example in EXAMPLES:
        environment = {"DATABASE_URL": _database_url(example)}
        migrated = run_orgauth("migrate", "apply", cwd=tmp_path, env=environment)
        assert migrated.returncode == 0, migrated.stderr
        if example == "saas":  # the host's own tables: `alembic -c … upgrade head`
            host = subprocess.run(
                [str(ALEMBIC), "-c", str(ROOT / "examples/saas/alembic.ini"), "upgrade", "head"],
                cwd=tmp_path,
                env={**os.environ, **environment},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert host.returncode == 0, host.stderr
    assert {path.name for path in tmp_path.glob("*.db")} == {
        "example-minimal.db",
        "example-custom-email.db",
        "example-saas.db",
    }
    return tmp_path


async def test_examples_tried_one_after_another_each_register_their_demo_users(
    readme_databases: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_examples_at(monkeypatch, "unused", readme_databases / "emails")
    monkeypatch.delenv("DATABASE_URL")  # each app falls back to its own file
    for example in EXAMPLES:
        module = load_example(f"examples.{example}.app")
        assert module.auth.settings.sqlalchemy_url == normalize_database_url(_database_url(example))

        async with running(module.app) as client:
            for email in sorted(_demo_addresses(example)):
                response = await client.post(
                    "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
                )
                assert response.status_code == 201, (example, email, response.text)


def test_saas_migrations_fall_back_to_the_examples_own_database(tmp_path: Path) -> None:
    host = subprocess.run(
        [str(ALEMBIC), "-c", str(ROOT / "examples/saas/alembic.ini"), "upgrade", "head"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert host.returncode == 0, host.stderr
    assert [path.name for path in tmp_path.glob("*.db")] == ["example-saas.db"]
