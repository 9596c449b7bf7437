"""`orgauth serve` refuses unsafe production settings with one line naming the setting
(docs/SECURITY.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orgauth.cli import app
from orgauth.settings import ENV_EXAMPLE_SECRET_KEY

GOOD_KEY = "Xq7Lm2Vb9Nc4Hd6Jf0Gs5Ya1Kq3Zt8Wp"
SAFE = {
    "ENVIRONMENT": "production",
    "SECRET_KEY": GOOD_KEY,
    "EMAIL_BACKEND": "file",
    "BCRYPT_ROUNDS": "12",
}


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"SECRET_KEY": "too-short-key"}, "SECRET_KEY"),
        ({"SECRET_KEY": ENV_EXAMPLE_SECRET_KEY}, "SECRET_KEY"),
        ({"SECRET_KEY": "please-change-me-before-going-live-0123456789"}, "SECRET_KEY"),
        ({"SECRET_KEY": "your-production-signing-key-goes-here-12345"}, "SECRET_KEY"),
        ({"SECRET_KEY": "an-example-value-that-is-long-enough-0123456"}, "SECRET_KEY"),
        ({"SECRET_KEY": "my-secret-key-for-production-use-only-12345"}, "SECRET_KEY"),
        ({"SECRET_KEY": "a" * 40}, "SECRET_KEY"),
        ({"BCRYPT_ROUNDS": "11"}, "BCRYPT_ROUNDS"),
        ({"BACKEND_CORS_ORIGINS": '["*"]'}, "BACKEND_CORS_ORIGINS"),
        ({"BACKEND_CORS_ORIGINS": "https://a.example.com,*"}, "BACKEND_CORS_ORIGINS"),
        ({"EMAIL_BACKEND": "console"}, "EMAIL_BACKEND"),
    ],
)
def test_serve_refuses_unsafe_production_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, overrides: dict[str, str], setting: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'prod.db'}")
    for name, value in {**SAFE, **overrides}.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["serve", "--port", "1"])
    assert result.exit_code != 0
    output = result.output.strip()
    assert setting in output
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1


def test_serve_refusal_through_the_installed_script(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.db'}",
        **SAFE,
        "BCRYPT_ROUNDS": "10",
    }
    script = Path(sys.executable).with_name("orgauth")
    result = subprocess.run(
        [str(script), "serve"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "BCRYPT_ROUNDS" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_safe_production_settings_pass_the_guard_and_stop_at_migrations(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'prod.db'}")
    for name, value in SAFE.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["serve", "--port", "1"])
    assert result.exit_code != 0
    assert "orgauth migrate apply" in result.output
