"""``orgauth sessions prune``: deletes expired and revoked sessions and spent tokens
(docs/SECURITY.md, README.md)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from uuid import uuid4

from typer.testing import CliRunner

from orgauth.models import (
    EmailVerificationToken,
    PasswordResetToken,
    RefreshToken,
    User,
    UserSession,
    utcnow,
)

from .helpers import add_rows, error_line, fetch_all, invoke, run_orgauth

DAY = timedelta(days=1)


def _digest() -> str:
    return uuid4().hex + uuid4().hex


def _seed(url: str) -> dict[str, object]:
    """A user with one live, one expired and one revoked session, and assorted tokens."""
    now = utcnow()
    user = User(email="sessions@example.com", hashed_password="bcrypt-sha256$x")
    live = UserSession(user_id=user.id, expires_at=now + DAY)
    expired = UserSession(user_id=user.id, expires_at=now - DAY)
    revoked = UserSession(
        user_id=user.id, expires_at=now + DAY, revoked_at=now, revoked_reason="logout"
    )
    live_token = RefreshToken(session_id=live.id, token_hash=_digest(), expires_at=now + DAY)
    stale_token = RefreshToken(session_id=live.id, token_hash=_digest(), expires_at=now - DAY)
    live_reset = PasswordResetToken(user_id=user.id, token_hash=_digest(), expires_at=now + DAY)
    used_reset = PasswordResetToken(
        user_id=user.id, token_hash=_digest(), expires_at=now + DAY, used_at=now
    )
    old_reset = PasswordResetToken(user_id=user.id, token_hash=_digest(), expires_at=now - DAY)

    def link(purpose: str, **fields: object) -> EmailVerificationToken:
        values: dict[str, object] = {
            "email": "new@example.com",
            "expires_at": now + DAY,
            **fields,
        }
        return EmailVerificationToken(
            user_id=user.id, purpose=purpose, token_hash=_digest(), **values
        )

    live_verify = link("verify", email="sessions@example.com")
    live_change = link("change", session_id=live.id)
    used_verify = link("verify", used_at=now)
    old_change = link("change", expires_at=now - DAY)
    used_change = link("change", used_at=now, session_id=revoked.id)
    add_rows(
        url,
        user,
        live,
        expired,
        revoked,
        live_token,
        stale_token,
        live_reset,
        used_reset,
        old_reset,
        live_verify,
        live_change,
        used_verify,
        old_change,
        used_change,
    )
    return {
        "live": live.id,
        "live_token": live_token.id,
        "live_reset": live_reset.id,
        "live_links": {live_verify.id, live_change.id},
    }


def test_prune_deletes_expired_and_revoked_sessions_and_spent_tokens(
    runner: CliRunner, migrated_url: str
) -> None:
    kept = _seed(migrated_url)

    result = invoke(runner, "sessions", "prune")

    assert result.exit_code == 0, result.output
    assert "Pruned 2 sessions, 1 refresh tokens and 2 password reset tokens." in result.stdout
    assert "Pruned 3 email verification tokens." in result.stdout
    assert [s.id for s in fetch_all(migrated_url, UserSession)] == [kept["live"]]
    assert [t.id for t in fetch_all(migrated_url, RefreshToken)] == [kept["live_token"]]
    assert [t.id for t in fetch_all(migrated_url, PasswordResetToken)] == [kept["live_reset"]]
    links = fetch_all(migrated_url, EmailVerificationToken)
    assert {t.id for t in links} == kept["live_links"]
    assert len(fetch_all(migrated_url, User)) == 1


def test_prune_twice_finds_nothing_the_second_time(runner: CliRunner, migrated_url: str) -> None:
    _seed(migrated_url)
    invoke(runner, "sessions", "prune")

    result = invoke(runner, "sessions", "prune")

    assert result.exit_code == 0, result.output
    assert "Pruned 0 sessions, 0 refresh tokens and 0 password reset tokens." in result.stdout
    assert "Pruned 0 email verification tokens." in result.stdout


def test_prune_refuses_an_unmigrated_database(runner: CliRunner, unmigrated_url: str) -> None:
    assert "orgauth migrate apply" in error_line(invoke(runner, "sessions", "prune"))


def test_console_script_prunes(migrated_url: str, tmp_path: Path) -> None:
    _seed(migrated_url)

    completed = run_orgauth("sessions", "prune", cwd=tmp_path, env={"DATABASE_URL": migrated_url})

    assert completed.returncode == 0, completed.stderr
    assert "Pruned 2 sessions" in completed.stdout
    assert len(fetch_all(migrated_url, UserSession)) == 1
