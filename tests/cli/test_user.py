"""``orgauth user create-superuser`` (README.md): stdin or hidden prompt, the password policy,
promotion of an existing account, and a clear refusal on an unmigrated database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orgauth.models import User, utcnow
from orgauth.security.passwords import hash_cost, verify_password_sync

from .helpers import (
    STRONG_PASSWORD,
    add_rows,
    error_line,
    fetch_all,
    invoke,
    run_orgauth,
    subprocess_error_line,
)

EMAIL = "admin@example.com"


def test_creates_a_superuser_from_stdin(runner: CliRunner, migrated_url: str) -> None:
    result = invoke(
        runner,
        "user",
        "create-superuser",
        "--email",
        EMAIL,
        "--password-stdin",
        input=f"{STRONG_PASSWORD}\n",
    )

    assert result.exit_code == 0, result.output
    assert f"Superuser {EMAIL} created." in result.stdout
    [user] = fetch_all(migrated_url, User)
    assert user.email == EMAIL
    assert user.is_superuser
    assert user.email_verified
    assert user.is_active
    assert user.hashed_password != STRONG_PASSWORD
    assert STRONG_PASSWORD not in user.hashed_password
    assert verify_password_sync(STRONG_PASSWORD, user.hashed_password)
    assert hash_cost(user.hashed_password) == 4  # BCRYPT_ROUNDS from the environment


def test_stores_names_and_normalises_the_email(runner: CliRunner, migrated_url: str) -> None:
    result = invoke(
        runner,
        "user",
        "create-superuser",
        "--email",
        "  Ada.Lovelace@Example.COM ",
        "--first-name",
        "Ada",
        "--last-name",
        "Lovelace",
        "--password-stdin",
        input=f"{STRONG_PASSWORD}\r\n",
    )

    assert result.exit_code == 0, result.output
    [user] = fetch_all(migrated_url, User)
    assert (user.email, user.first_name, user.last_name) == (
        "ada.lovelace@example.com",
        "Ada",
        "Lovelace",
    )
    assert verify_password_sync(STRONG_PASSWORD, user.hashed_password)


@pytest.mark.parametrize(
    "weak",
    ["short", "password1234", "admin@example.com", "adminexample12"],
)
def test_weak_password_is_refused_in_one_line_and_creates_nobody(
    runner: CliRunner, migrated_url: str, weak: str
) -> None:
    result = invoke(
        runner, "user", "create-superuser", "--email", EMAIL, "--password-stdin", input=f"{weak}\n"
    )

    line = error_line(result)
    assert result.exit_code == 1
    assert "password refused" in line
    assert weak not in line
    assert fetch_all(migrated_url, User) == []


def test_empty_stdin_is_refused(runner: CliRunner, migrated_url: str) -> None:
    result = invoke(runner, "user", "create-superuser", "--email", EMAIL, "--password-stdin")

    assert "no password" in error_line(result)
    assert fetch_all(migrated_url, User) == []


def test_invalid_email_is_refused_in_one_line(runner: CliRunner, migrated_url: str) -> None:
    result = invoke(
        runner,
        "user",
        "create-superuser",
        "--email",
        "not-an-email",
        "--password-stdin",
        input=f"{STRONG_PASSWORD}\n",
    )

    assert "valid email" in error_line(result)
    assert fetch_all(migrated_url, User) == []


def test_overlong_name_is_refused_in_one_line(runner: CliRunner, migrated_url: str) -> None:
    result = invoke(
        runner,
        "user",
        "create-superuser",
        "--email",
        EMAIL,
        "--first-name",
        "A" * 101,
        "--password-stdin",
        input=f"{STRONG_PASSWORD}\n",
    )

    assert "--first-name" in error_line(result)
    assert fetch_all(migrated_url, User) == []


def test_existing_user_is_promoted_and_keeps_the_password(
    runner: CliRunner, migrated_url: str
) -> None:
    add_rows(migrated_url, User(email=EMAIL, hashed_password="bcrypt-sha256$kept", first_name="Al"))

    result = invoke(runner, "user", "create-superuser", "--email", EMAIL, "--password-stdin")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"Existing user {EMAIL} promoted to superuser; the account keeps its password "
        "(the password given was not used)."
    )
    [user] = fetch_all(migrated_url, User)
    assert user.is_superuser
    assert user.email_verified  # the operator vouched for the address (SPEC §17.4)
    assert user.hashed_password == "bcrypt-sha256$kept"
    assert user.first_name == "Al"


def test_existing_verified_superuser_is_left_unchanged(
    runner: CliRunner, migrated_url: str
) -> None:
    verified_at = utcnow() - timedelta(days=3)
    add_rows(
        migrated_url,
        User(
            email=EMAIL,
            hashed_password="bcrypt-sha256$kept",
            is_superuser=True,
            email_verified_at=verified_at,
        ),
    )

    result = invoke(runner, "user", "create-superuser", "--email", EMAIL)

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"{EMAIL} is already a superuser; nothing changed; the account keeps its password."
    )
    [user] = fetch_all(migrated_url, User)
    assert user.email_verified_at == verified_at


def test_existing_unverified_superuser_gets_a_verified_address(
    runner: CliRunner, migrated_url: str
) -> None:
    add_rows(
        migrated_url, User(email=EMAIL, hashed_password="bcrypt-sha256$kept", is_superuser=True)
    )

    result = invoke(runner, "user", "create-superuser", "--email", EMAIL)

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"{EMAIL} is already a superuser; its email address is now verified; "
        "the account keeps its password."
    )
    [user] = fetch_all(migrated_url, User)
    assert user.email_verified


def test_promoting_without_a_password_asks_for_none(runner: CliRunner, migrated_url: str) -> None:
    add_rows(migrated_url, User(email=EMAIL, hashed_password="bcrypt-sha256$kept"))

    result = invoke(runner, "user", "create-superuser", "--email", EMAIL)

    assert result.exit_code == 0, result.output
    assert "Password" not in result.output
    assert result.stdout.strip() == (
        f"Existing user {EMAIL} promoted to superuser; the account keeps its password."
    )


def test_password_stdin_without_email_is_refused(runner: CliRunner, migrated_url: str) -> None:
    # Prompting for the email would read the password from standard input as the email.
    result = invoke(
        runner, "user", "create-superuser", "--password-stdin", input=f"{STRONG_PASSWORD}\n"
    )

    assert error_line(result) == "Error: --password-stdin needs --email"
    assert STRONG_PASSWORD not in result.output
    assert fetch_all(migrated_url, User) == []


def test_console_script_refuses_password_stdin_without_email(
    migrated_url: str, tmp_path: Path
) -> None:
    completed = run_orgauth(
        "user",
        "create-superuser",
        "--password-stdin",
        cwd=tmp_path,
        env={"DATABASE_URL": migrated_url},
        input=f"{EMAIL}\n",  # an email on stdin is still not taken for one
    )

    assert subprocess_error_line(completed) == "Error: --password-stdin needs --email"
    assert fetch_all(migrated_url, User) == []


def test_unmigrated_database_is_refused_with_the_command_to_run(
    runner: CliRunner, unmigrated_url: str
) -> None:
    result = invoke(
        runner,
        "user",
        "create-superuser",
        "--email",
        EMAIL,
        "--password-stdin",
        input=f"{STRONG_PASSWORD}\n",
    )

    line = error_line(result)
    assert "orgauth migrate apply" in line


def test_password_prompt_hides_input_and_asks_for_confirmation(
    runner: CliRunner, migrated_url: str
) -> None:
    result = invoke(
        runner,
        "user",
        "create-superuser",
        "--email",
        EMAIL,
        input=f"{STRONG_PASSWORD}\n{STRONG_PASSWORD}\n",
    )

    assert result.exit_code == 0, result.output
    assert "Password" in result.output
    assert "Repeat for confirmation" in result.output
    assert STRONG_PASSWORD not in result.output
    [user] = fetch_all(migrated_url, User)
    assert verify_password_sync(STRONG_PASSWORD, user.hashed_password)


def test_password_prompt_repeats_until_both_entries_match(
    runner: CliRunner, migrated_url: str
) -> None:
    result = invoke(
        runner,
        "user",
        "create-superuser",
        "--email",
        EMAIL,
        input=f"{STRONG_PASSWORD}\nsomething-else\n{STRONG_PASSWORD}\n{STRONG_PASSWORD}\n",
    )

    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    [user] = fetch_all(migrated_url, User)
    assert verify_password_sync(STRONG_PASSWORD, user.hashed_password)


def test_email_is_prompted_when_not_given(runner: CliRunner, migrated_url: str) -> None:
    result = invoke(
        runner,
        "user",
        "create-superuser",
        input=f"{EMAIL}\n{STRONG_PASSWORD}\n{STRONG_PASSWORD}\n",
    )

    assert result.exit_code == 0, result.output
    assert "Email" in result.output
    assert [u.email for u in fetch_all(migrated_url, User)] == [EMAIL]


def test_console_script_creates_a_superuser_from_stdin(migrated_url: str, tmp_path: Path) -> None:
    completed = run_orgauth(
        "user",
        "create-superuser",
        "--email",
        EMAIL,
        "--password-stdin",
        cwd=tmp_path,
        env={"DATABASE_URL": migrated_url},
        input=f"{STRONG_PASSWORD}\n",
    )

    assert completed.returncode == 0, completed.stderr
    [user] = fetch_all(migrated_url, User)
    assert user.is_superuser
    assert verify_password_sync(STRONG_PASSWORD, user.hashed_password)


def test_console_script_refuses_weak_password_in_one_line(
    migrated_url: str, tmp_path: Path
) -> None:
    completed = run_orgauth(
        "user",
        "create-superuser",
        "--email",
        EMAIL,
        "--password-stdin",
        cwd=tmp_path,
        env={"DATABASE_URL": migrated_url},
        input="password\n",
    )

    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1
    assert fetch_all(migrated_url, User) == []
