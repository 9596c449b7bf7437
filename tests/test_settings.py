"""OrgAuthSettings: defaults, environment names, parsing, the production guard and the
development secret key (docs/CONFIGURATION.md, docs/SECURITY.md)."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from orgauth.settings import (
    DEFAULT_DATABASE_URL,
    ENV_EXAMPLE_SECRET_KEY,
    SECRET_KEY_FILE_NAME,
    OrgAuthSettings,
    SettingsError,
    format_settings_error,
    load_or_create_key_file,
    load_settings,
)

STRONG_KEY = "k7Qp2Vx9Lm4Rt8Wz1Hb6Nd3Fs5Gj0Ay-Uc_EiTo"
ENV_EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"


def production(**overrides: Any) -> OrgAuthSettings:
    """Valid production settings, with ``overrides`` applied (validated)."""
    values: dict[str, Any] = {
        "environment": "production",
        "secret_key": STRONG_KEY,
        "email_backend": "file",
    }
    values.update(overrides)
    return OrgAuthSettings(_env_file=None, **values)  # type: ignore[call-arg]


def settings_error(**overrides: Any) -> str:
    """The one-line error ``load_settings`` reports for ``overrides``."""
    with pytest.raises(SettingsError) as caught:
        load_settings(**overrides)
    return str(caught.value)


# --- defaults ------------------------------------------------------------------------


def test_defaults_match_the_spec_table() -> None:
    settings = OrgAuthSettings()

    assert settings.environment == "development"
    assert settings.database_url is None
    assert settings.sqlalchemy_url == DEFAULT_DATABASE_URL == "sqlite+aiosqlite:///./orgauth.db"
    assert (settings.db_pool_size, settings.db_max_overflow) == (20, 50)
    assert (settings.db_pool_timeout, settings.db_pool_recycle) == (30, 3600)
    assert settings.secret_key is None
    assert settings.access_token_expire_minutes == 15
    assert settings.refresh_token_expire_days == 7
    assert settings.session_max_lifetime_days == 30
    assert settings.refresh_reuse_grace_seconds == 0
    assert (settings.jwt_issuer, settings.jwt_audience) == ("orgauth", "orgauth")
    assert settings.bcrypt_rounds == 12
    assert settings.password_min_length == 12
    assert settings.api_prefix == "/api/v1"
    assert settings.backend_cors_origins == []
    assert settings.csp_mode == "strict"
    assert settings.docs_are_enabled is True
    assert settings.rate_limit_enabled is True
    assert settings.rate_limit_storage_uri == "memory://"
    assert settings.rate_limit_login == "10/minute"
    assert settings.rate_limit_register == "5/hour"
    assert settings.rate_limit_refresh == "30/minute"
    assert settings.rate_limit_password_reset == "5/hour"
    assert settings.rate_limit_password_change == "5/15 minutes"
    assert settings.forwarded_allow_ips == []
    assert settings.allow_registration is True
    assert settings.allow_user_org_creation is True
    assert settings.first_superuser_email is None
    assert settings.first_superuser_password is None
    assert settings.email_backend == "console"
    assert settings.frontend_url == "http://localhost:3000"
    assert settings.password_reset_expire_minutes == 60
    assert settings.log_level == "INFO"
    assert settings.effective_log_format == "text"


def test_production_defaults_hide_docs_and_log_json() -> None:
    settings = production()

    assert settings.docs_are_enabled is False
    assert settings.effective_log_format == "json"


@pytest.mark.parametrize(
    ("environment", "docs_enabled", "expected"),
    [
        ("development", None, True),
        ("development", "false", False),
        ("production", None, False),
        ("production", "true", True),
    ],
)
def test_docs_enabled_defaults_by_environment_and_can_be_overridden(
    monkeypatch: pytest.MonkeyPatch, environment: str, docs_enabled: str | None, expected: bool
) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    monkeypatch.setenv("SECRET_KEY", STRONG_KEY)
    monkeypatch.setenv("EMAIL_BACKEND", "file")
    if docs_enabled is not None:
        monkeypatch.setenv("DOCS_ENABLED", docs_enabled)

    assert OrgAuthSettings().docs_are_enabled is expected


# --- environment variable names ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "attribute", "expected"),
    [
        ("ENVIRONMENT", "Development", "environment", "development"),
        ("DB_POOL_SIZE", "5", "db_pool_size", 5),
        ("DB_MAX_OVERFLOW", "0", "db_max_overflow", 0),
        ("DB_POOL_TIMEOUT", "2.5", "db_pool_timeout", 2.5),
        ("DB_POOL_RECYCLE", "600", "db_pool_recycle", 600),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "5", "access_token_expire_minutes", 5),
        ("REFRESH_TOKEN_EXPIRE_DAYS", "14", "refresh_token_expire_days", 14),
        ("SESSION_MAX_LIFETIME_DAYS", "60", "session_max_lifetime_days", 60),
        ("REFRESH_REUSE_GRACE_SECONDS", "10", "refresh_reuse_grace_seconds", 10),
        ("JWT_ISSUER", "https://auth.example.org", "jwt_issuer", "https://auth.example.org"),
        ("JWT_AUDIENCE", "my-api", "jwt_audience", "my-api"),
        ("BCRYPT_ROUNDS", "13", "bcrypt_rounds", 13),
        ("PASSWORD_MIN_LENGTH", "16", "password_min_length", 16),
        ("API_PREFIX", "/auth/", "api_prefix", "/auth"),
        ("CSP_MODE", "relaxed", "csp_mode", "relaxed"),
        ("DOCS_ENABLED", "false", "docs_enabled", False),
        ("RATE_LIMIT_ENABLED", "false", "rate_limit_enabled", False),
        (
            "RATE_LIMIT_STORAGE_URI",
            "redis://127.0.0.1:6379/0",
            "rate_limit_storage_uri",
            "redis://127.0.0.1:6379/0",
        ),
        ("RATE_LIMIT_LOGIN", "3/minute", "rate_limit_login", "3/minute"),
        ("RATE_LIMIT_REGISTER", "2/hour", "rate_limit_register", "2/hour"),
        ("RATE_LIMIT_REFRESH", "60/minute", "rate_limit_refresh", "60/minute"),
        ("RATE_LIMIT_PASSWORD_RESET", "1/hour", "rate_limit_password_reset", "1/hour"),
        ("RATE_LIMIT_PASSWORD_CHANGE", "2/minute", "rate_limit_password_change", "2/minute"),
        (
            "FORWARDED_ALLOW_IPS",
            "10.0.0.1, 10.1.0.0/16",
            "forwarded_allow_ips",
            ["10.0.0.1", "10.1.0.0/16"],
        ),
        ("ALLOW_REGISTRATION", "false", "allow_registration", False),
        ("ALLOW_USER_ORG_CREATION", "0", "allow_user_org_creation", False),
        ("EMAIL_BACKEND", "file", "email_backend", "file"),
        ("EMAIL_FILE_DIR", "/var/mail/orgauth", "email_file_dir", "/var/mail/orgauth"),
        ("EMAIL_FROM", "Auth <auth@example.org>", "email_from", "Auth <auth@example.org>"),
        ("FRONTEND_URL", "https://app.example.org/", "frontend_url", "https://app.example.org"),
        ("PASSWORD_RESET_EXPIRE_MINUTES", "30", "password_reset_expire_minutes", 30),
        ("LOG_LEVEL", "debug", "log_level", "DEBUG"),
        ("LOG_FORMAT", "JSON", "log_format", "json"),
    ],
)
def test_each_setting_is_read_from_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, attribute: str, expected: Any
) -> None:
    monkeypatch.setenv(name, value)

    assert getattr(OrgAuthSettings(), attribute) == expected


def test_smtp_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMAIL_BACKEND", "smtp")
    monkeypatch.setenv("SMTP_HOST", "smtp.example.org")
    monkeypatch.setenv("SMTP_PORT", "2525")
    monkeypatch.setenv("SMTP_USER", "mailer")
    monkeypatch.setenv("SMTP_PASSWORD", "mail-pass")
    monkeypatch.setenv("SMTP_TLS", "false")

    settings = OrgAuthSettings()

    assert (settings.smtp_host, settings.smtp_port, settings.smtp_user) == (
        "smtp.example.org",
        2525,
        "mailer",
    )
    assert settings.smtp_password is not None
    assert settings.smtp_password.get_secret_value() == "mail-pass"
    assert settings.smtp_tls == "none"


def test_smtp_backend_requires_a_host() -> None:
    assert "SMTP_HOST" in settings_error(email_backend="smtp")


def test_first_superuser_settings_are_read_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRST_SUPERUSER_EMAIL", "root@example.org")
    monkeypatch.setenv("FIRST_SUPERUSER_PASSWORD", "Tangerine-Orbit-Quartz-42")

    settings = OrgAuthSettings()

    assert settings.first_superuser_email == "root@example.org"
    assert settings.first_superuser_password is not None
    assert settings.first_superuser_password.get_secret_value() == "Tangerine-Orbit-Quartz-42"


@pytest.mark.parametrize("value", ["root", "root@", "root@localhost", "a b@example.org"])
def test_invalid_first_superuser_email_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("FIRST_SUPERUSER_EMAIL", value)
    monkeypatch.setenv("FIRST_SUPERUSER_PASSWORD", "Tangerine-Orbit-Quartz-42")

    message = settings_error()

    assert message.startswith("Invalid setting FIRST_SUPERUSER_EMAIL: Enter a valid email")
    assert "Tangerine" not in message


def test_first_superuser_email_without_password_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FIRST_SUPERUSER_EMAIL", "root@example.org")

    with pytest.raises(SettingsError, match="FIRST_SUPERUSER_PASSWORD"):
        load_settings()


def test_environment_variable_overrides_dotenv_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("BCRYPT_ROUNDS=10\nJWT_ISSUER=from-dotenv\n", encoding="utf-8")
    monkeypatch.setenv("JWT_ISSUER", "from-environment")

    settings = OrgAuthSettings()

    assert settings.bcrypt_rounds == 10
    assert settings.jwt_issuer == "from-environment"


def test_dotenv_file_in_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "ENVIRONMENT=production\n"
        f"SECRET_KEY={STRONG_KEY}\n"
        "EMAIL_BACKEND=file\n"
        "DATABASE_URL=postgresql://app@db.internal/app\n",
        encoding="utf-8",
    )

    settings = load_settings()

    assert settings.is_production
    assert settings.sqlalchemy_url == "postgresql+asyncpg://app@db.internal/app"


def test_invalid_dotenv_value_is_reported_naming_the_setting(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BCRYPT_ROUNDS=lots\n", encoding="utf-8")

    assert "BCRYPT_ROUNDS" in settings_error()


@pytest.mark.parametrize("value", ["staging", "prod", "test", ""])
def test_unknown_environment_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ENVIRONMENT", value)

    message = settings_error()

    assert message.startswith("Invalid setting ENVIRONMENT:")
    assert "development" in message
    assert "production" in message


RATE_LIMIT_SETTINGS = [
    "RATE_LIMIT_LOGIN",
    "RATE_LIMIT_REGISTER",
    "RATE_LIMIT_REFRESH",
    "RATE_LIMIT_PASSWORD_RESET",
    "RATE_LIMIT_PASSWORD_CHANGE",
]


@pytest.mark.parametrize("name", RATE_LIMIT_SETTINGS)
@pytest.mark.parametrize("value", ["0/minute", "0 per hour", "00/day", "10/minute;0/hour"])
def test_rate_limits_allowing_no_request_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    message = settings_error()

    assert message.startswith(f"Invalid setting {name}:")
    assert "allows no request" in message


@pytest.mark.parametrize("name", RATE_LIMIT_SETTINGS)
@pytest.mark.parametrize("value", ["10/0 minutes", "5 per 0 hours", "5/hour|3/00 seconds"])
def test_rate_limits_with_a_zero_window_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    # limits would read "10/0 minutes" as 10/minute.
    monkeypatch.setenv(name, value)

    message = settings_error()

    assert message.startswith(f"Invalid setting {name}:")
    assert "zero time window" in message


@pytest.mark.parametrize(
    "value", ["1/minute", "5/15 minutes", "10/minute;100/hour", "3 per 10 second"]
)
def test_rate_limits_of_at_least_one_request_per_period_are_accepted(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    for name in RATE_LIMIT_SETTINGS:
        monkeypatch.setenv(name, value)

    settings = OrgAuthSettings()

    assert settings.rate_limit_login == settings.rate_limit_password_change == value


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CSP_MODE", "off"),
        ("EMAIL_BACKEND", "sendmail"),
        ("LOG_LEVEL", "LOUD"),
        ("LOG_FORMAT", "xml"),
        ("DB_POOL_SIZE", "0"),
        ("PASSWORD_MIN_LENGTH", "200"),
        ("RATE_LIMIT_LOGIN", "ten per minute"),
        ("RATE_LIMIT_STORAGE_URI", "memcached://localhost"),
        ("FORWARDED_ALLOW_IPS", "proxy.internal"),
        ("FRONTEND_URL", "app.example.org"),
        ("API_PREFIX", "api"),
        ("REFRESH_REUSE_GRACE_SECONDS", "-1"),
    ],
)
def test_invalid_values_are_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    message = settings_error()

    assert message.startswith(f"Invalid setting {name}:")
    assert "\n" not in message


# --- CORS origins --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        '["https://app.example.org", "http://localhost:3000"]',
        "https://app.example.org,http://localhost:3000",
        " https://app.example.org/ , http://localhost:3000 ",
    ],
)
def test_cors_origins_accept_json_list_and_comma_separated(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("BACKEND_CORS_ORIGINS", value)

    assert OrgAuthSettings().backend_cors_origins == [
        "https://app.example.org",
        "http://localhost:3000",
    ]


def test_empty_cors_origins_mean_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKEND_CORS_ORIGINS", "")

    assert OrgAuthSettings().backend_cors_origins == []


@pytest.mark.parametrize(
    "value",
    [
        '["https://app.example.org"',  # broken JSON
        "app.example.org",  # no scheme
        "ftp://files.example.org",
        "https://app.example.org/login",  # a URL with a path, not an origin
    ],
)
def test_invalid_cors_origins_are_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("BACKEND_CORS_ORIGINS", value)

    assert settings_error().startswith("Invalid setting BACKEND_CORS_ORIGINS:")


def test_wildcard_cors_origin_is_allowed_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKEND_CORS_ORIGINS", "*")

    assert OrgAuthSettings().backend_cors_origins == ["*"]


# --- organization permissions ----------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "billing:manage, reports:read",
        '["billing:manage", "reports:read"]',
        '[{"key": "billing:manage", "description": "Bills"}, {"key": "reports:read"}]',
    ],
)
def test_org_permissions_accept_keys_objects_and_comma_lists(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ORG_PERMISSIONS", value)

    permissions = OrgAuthSettings().org_permissions

    assert [p.key for p in permissions] == ["billing:manage", "reports:read"]
    assert {str(p.min_role) for p in permissions} == {"admin"}  # a plain key means admin


def test_org_permissions_carry_min_role_and_description(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "ORG_PERMISSIONS",
        '[{"key": "projects:read", "min_role": "member", "description": "See projects"}]',
    )

    (permission,) = OrgAuthSettings().org_permissions

    assert (permission.key, str(permission.min_role), permission.description) == (
        "projects:read",
        "member",
        "See projects",
    )


def test_org_permissions_default_to_none() -> None:
    assert OrgAuthSettings().org_permissions == ()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("Billing:Manage", "is not a permission key"),
        ("billing", "is not a permission key"),
        ("billing:manage,billing:manage", "listed twice"),
        ("members:read", "is a built-in permission"),
        ('[{"key": "a:b", "min_role": "superuser"}]', "min_role"),
        ('[{"name": "a:b"}]', "needs a key"),
        ('[{"key": "a:b"', "not valid JSON"),
        ("[1]", "neither a permission key nor an object"),
    ],
)
def test_bad_org_permissions_are_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str, reason: str
) -> None:
    monkeypatch.setenv("ORG_PERMISSIONS", value)

    message = settings_error()

    assert message.startswith("Invalid setting ORG_PERMISSIONS:")
    assert reason in message
    assert "\n" not in message


# --- lifetimes -------------------------------------------------------------------------


def test_lifetimes_accept_decimals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCESS_TOKEN_EXPIRE_MINUTES", "0.5")
    monkeypatch.setenv("REFRESH_TOKEN_EXPIRE_DAYS", "1.5")
    monkeypatch.setenv("SESSION_MAX_LIFETIME_DAYS", "0.25")
    monkeypatch.setenv("PASSWORD_RESET_EXPIRE_MINUTES", "2.5")
    monkeypatch.setenv("REFRESH_REUSE_GRACE_SECONDS", "0.75")

    settings = OrgAuthSettings()

    assert settings.access_token_expire_minutes == 0.5
    assert settings.refresh_token_expire_days == 1.5
    assert settings.session_max_lifetime_days == 0.25
    assert settings.password_reset_expire_minutes == 2.5
    assert settings.refresh_reuse_grace_seconds == 0.75


@pytest.mark.parametrize(
    "name",
    [
        "ACCESS_TOKEN_EXPIRE_MINUTES",
        "REFRESH_TOKEN_EXPIRE_DAYS",
        "SESSION_MAX_LIFETIME_DAYS",
        "PASSWORD_RESET_EXPIRE_MINUTES",
    ],
)
@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_lifetimes_must_be_positive_numbers(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    assert settings_error().startswith(f"Invalid setting {name}:")


# --- database URL ----------------------------------------------------------------------


def test_default_database_is_embedded_sqlite() -> None:
    settings = OrgAuthSettings()

    assert settings.sqlalchemy_url == "sqlite+aiosqlite:///./orgauth.db"
    assert settings.is_sqlite
    assert settings.sqlite_path == Path("./orgauth.db")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://app:pw@db:5432/app", "postgresql+asyncpg://app:pw@db:5432/app"),
        ("postgres://app@db/app", "postgresql+asyncpg://app@db/app"),
        ("postgresql+asyncpg://app@db/app", "postgresql+asyncpg://app@db/app"),
        ("sqlite:///./data/auth.db", "sqlite+aiosqlite:///./data/auth.db"),
        ("sqlite+aiosqlite:////var/lib/auth.db", "sqlite+aiosqlite:////var/lib/auth.db"),
    ],
)
def test_database_url_is_mapped_to_the_async_driver(
    monkeypatch: pytest.MonkeyPatch, given: str, expected: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", given)

    assert OrgAuthSettings().sqlalchemy_url == expected


@pytest.mark.parametrize(
    "value",
    [
        "postgresql://",
        "postgresql://db.internal",
        "postgres://app@db.internal:5432/",
        "postgresql+asyncpg://db.internal/?ssl=require",
    ],
)
def test_postgresql_url_without_a_database_name_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # Without a name the server would silently use the database named after the OS user.
    monkeypatch.setenv("DATABASE_URL", value)

    message = settings_error()

    assert message.startswith("Invalid setting DATABASE_URL:")
    assert "names no database" in message


def test_sqlite_url_without_a_path_still_means_an_in_memory_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite://")

    settings = OrgAuthSettings()

    assert settings.sqlalchemy_url == "sqlite+aiosqlite://"
    assert settings.sqlite_path is None


@pytest.mark.parametrize("value", ["mysql://app@db/app", "not a url"])
def test_unsupported_database_url_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", value)

    assert settings_error().startswith("Invalid setting DATABASE_URL:")


def test_database_url_wins_over_postgres_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://winner@primary/app")
    monkeypatch.setenv("POSTGRES_HOST", "ignored-host")
    monkeypatch.setenv("POSTGRES_USER", "ignored")
    monkeypatch.setenv("POSTGRES_PASSWORD", "ignored")
    monkeypatch.setenv("POSTGRES_DB", "ignored")

    assert OrgAuthSettings().sqlalchemy_url == "postgresql+asyncpg://winner@primary/app"


def test_postgres_variables_build_an_asyncpg_url_with_quoted_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POSTGRES_HOST", "db.internal")
    monkeypatch.setenv("POSTGRES_PORT", "6432")
    monkeypatch.setenv("POSTGRES_USER", "orgauth")
    monkeypatch.setenv("POSTGRES_PASSWORD", "p@ss:w/rd%#?")
    monkeypatch.setenv("POSTGRES_DB", "auth")

    url_text = OrgAuthSettings().sqlalchemy_url
    url = make_url(url_text)

    assert url_text.startswith("postgresql+asyncpg://orgauth:")
    assert (url.drivername, url.host, url.port, url.database) == (
        "postgresql+asyncpg",
        "db.internal",
        6432,
        "auth",
    )
    assert url.username == "orgauth"
    assert url.password == "p@ss:w/rd%#?"


def test_postgres_variables_default_port_and_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_HOST", "db.internal")
    monkeypatch.setenv("POSTGRES_USER", "app")

    assert OrgAuthSettings().sqlalchemy_url == "postgresql+asyncpg://app@db.internal:5432/app"


def test_postgres_variables_are_ignored_without_a_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_USER", "app")
    monkeypatch.setenv("POSTGRES_DB", "app")

    assert OrgAuthSettings().sqlalchemy_url == DEFAULT_DATABASE_URL


# --- bcrypt -----------------------------------------------------------------------------


@pytest.mark.parametrize("rounds", [4, 12, 31])
def test_bcrypt_rounds_accept_4_to_31(monkeypatch: pytest.MonkeyPatch, rounds: int) -> None:
    monkeypatch.setenv("BCRYPT_ROUNDS", str(rounds))

    assert OrgAuthSettings().bcrypt_rounds == rounds


@pytest.mark.parametrize("rounds", [3, 32, -1])
def test_bcrypt_rounds_outside_4_to_31_are_refused(
    monkeypatch: pytest.MonkeyPatch, rounds: int
) -> None:
    monkeypatch.setenv("BCRYPT_ROUNDS", str(rounds))

    assert settings_error().startswith("Invalid setting BCRYPT_ROUNDS:")


# --- secret key and the production guard ----------------------------------------------------


def test_short_secret_key_is_refused_in_every_environment() -> None:
    message = settings_error(secret_key="too-short")

    assert message.startswith("Invalid setting SECRET_KEY:")
    assert "32" in message


def test_production_accepts_safe_settings() -> None:
    settings = production(backend_cors_origins=["https://app.example.org"])

    assert settings.is_production
    assert settings.signing_key == STRONG_KEY


def test_production_refuses_missing_secret_key() -> None:
    message = settings_error(environment="production", email_backend="file")

    assert "SECRET_KEY" in message
    assert "required" in message


def test_production_refuses_missing_secret_key_from_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("EMAIL_BACKEND", "file")

    assert "SECRET_KEY" in settings_error()


def test_production_refuses_short_secret_key() -> None:
    message = settings_error(environment="production", email_backend="file", secret_key="x" * 31)

    assert "SECRET_KEY" in message


@pytest.mark.parametrize(
    "placeholder",
    [
        ENV_EXAMPLE_SECRET_KEY,
        "please-CHANGE-this-value-before-deploying-4f8a",
        "my-super-secret-key-for-the-orgauth-server-9",
        "your-long-random-signing-value-goes-here-123",
        "an-Example-value-copied-from-the-docs-48fa91",
    ],
)
def test_production_refuses_placeholder_secret_key(placeholder: str) -> None:
    assert len(placeholder) >= 32
    message = settings_error(environment="production", email_backend="file", secret_key=placeholder)

    assert "SECRET_KEY" in message
    assert "placeholder" in message


def test_production_refuses_predictable_secret_key() -> None:
    message = settings_error(environment="production", email_backend="file", secret_key="ab" * 20)

    assert "SECRET_KEY" in message


def test_env_example_secret_key_is_the_known_placeholder() -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()

    assert f"SECRET_KEY={ENV_EXAMPLE_SECRET_KEY}" in lines


def test_copied_env_example_works_in_development_and_is_refused_in_production(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(ENV_EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")

    assert load_settings().sqlalchemy_url == DEFAULT_DATABASE_URL

    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("EMAIL_BACKEND", "file")
    message = settings_error()
    assert "SECRET_KEY" in message
    assert "placeholder" in message


def test_placeholder_secret_key_is_tolerated_in_development() -> None:
    settings = load_settings(secret_key=ENV_EXAMPLE_SECRET_KEY)

    assert settings.signing_key == ENV_EXAMPLE_SECRET_KEY


@pytest.mark.parametrize("rounds", [4, 11])
def test_production_refuses_low_bcrypt_rounds(rounds: int) -> None:
    message = settings_error(
        environment="production", email_backend="file", secret_key=STRONG_KEY, bcrypt_rounds=rounds
    )

    assert "BCRYPT_ROUNDS" in message
    assert "12" in message


def test_production_refuses_wildcard_cors_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", STRONG_KEY)
    monkeypatch.setenv("EMAIL_BACKEND", "file")
    monkeypatch.setenv("BACKEND_CORS_ORIGINS", "https://app.example.org,*")

    assert "BACKEND_CORS_ORIGINS" in settings_error()


def test_production_refuses_console_email_backend() -> None:
    message = settings_error(environment="production", secret_key=STRONG_KEY)

    assert "EMAIL_BACKEND" in message
    assert "console" in message


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"secret_key": "short"},
        {"secret_key": ENV_EXAMPLE_SECRET_KEY},
        {"bcrypt_rounds": 4},
        {"backend_cors_origins": "*"},
        {"email_backend": "console"},
    ],
)
def test_production_guard_errors_are_a_single_line(overrides: dict[str, Any]) -> None:
    values = {"environment": "production", "secret_key": STRONG_KEY, "email_backend": "file"}
    if not overrides:
        values.pop("secret_key")
    values.update(overrides)

    message = settings_error(**values)

    assert message.startswith("Invalid setting")
    assert "\n" not in message
    assert "Traceback" not in message
    assert "Value error" not in message


def test_format_settings_error_names_the_setting_in_one_line() -> None:
    with pytest.raises(ValidationError) as caught:
        OrgAuthSettings(_env_file=None, bcrypt_rounds=99, environment="qa")  # type: ignore[call-arg]

    line = format_settings_error(caught.value)

    assert line.startswith("Invalid setting ")
    assert "\n" not in line
    assert "ENVIRONMENT" in line or "BCRYPT_ROUNDS" in line


def test_load_settings_returns_settings_with_overrides() -> None:
    settings = load_settings(jwt_issuer="issuer-from-code")

    assert isinstance(settings, OrgAuthSettings)
    assert settings.jwt_issuer == "issuer-from-code"


def test_settings_are_immutable() -> None:
    settings = OrgAuthSettings()

    with pytest.raises(ValidationError):
        settings.bcrypt_rounds = 4


def test_secrets_are_not_shown_in_repr() -> None:
    settings = load_settings(
        secret_key=STRONG_KEY,
        postgres_password="db-password-value",
        database_url="postgresql://app:url-password-value@db.internal/app",
        rate_limit_storage_uri="redis://:redis-password-value@cache.internal:6379/0",
        smtp_user="mailer",
        smtp_password="smtp-password-value",
        first_superuser_email="root@example.org",
        first_superuser_password="first-superuser-password-value",
    )
    _ = settings.sqlalchemy_url, settings.signing_key  # derived values are cached too

    for text in (repr(settings), str(settings)):
        assert STRONG_KEY not in text
        for secret in ("db", "url", "redis", "smtp", "first-superuser"):
            assert f"{secret}-password-value" not in text


SECRET = "Sup3r-Secret-Value-1234567890"

# Each entry is refused and carries SECRET, in the rejected value or elsewhere in the input
# (a refused combination of settings is reported with the whole input).
REFUSED_WITH_A_SECRET = {
    "short SECRET_KEY": {"secret_key": SECRET[:20]},
    "placeholder SECRET_KEY in production": {
        "environment": "production",
        "secret_key": f"change-me-{SECRET}",
    },
    "DATABASE_URL of another scheme": {"database_url": f"mysql://app:{SECRET}@db/app"},
    "DATABASE_URL without a database": {"database_url": f"postgresql://app:{SECRET}@db"},
    "DATABASE_URL with a bad port": {"database_url": f"postgresql://app:{SECRET}@db:x/app"},
    "DATABASE_URL without a scheme": {"database_url": f"app:{SECRET}@db/app"},
    "DATABASE_URL with a password before '://'": {"database_url": f"app:{SECRET}@db://app"},
    "POSTGRES_PASSWORD beside a refused combination": {
        "environment": "production",
        "postgres_password": SECRET,
    },
    "SMTP_PASSWORD without SMTP_USER": {"smtp_password": SECRET},
    "SMTP_PASSWORD of the wrong type": {"smtp_user": "mailer", "smtp_password": [SECRET]},
    "FIRST_SUPERUSER_PASSWORD without the email": {"first_superuser_password": SECRET},
    "RATE_LIMIT_STORAGE_URI of another scheme": {
        "rate_limit_storage_uri": f"memcached://:{SECRET}@cache:11211"
    },
    "redis RATE_LIMIT_STORAGE_URI beside a refused combination": {
        "environment": "production",
        "rate_limit_storage_uri": f"redis://:{SECRET}@cache:6379/0",
    },
}


@pytest.mark.parametrize("overrides", REFUSED_WITH_A_SECRET.values(), ids=REFUSED_WITH_A_SECRET)
def test_refused_settings_never_show_a_secret(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        OrgAuthSettings(_env_file=None, **overrides)  # type: ignore[call-arg]
    line = settings_error(_env_file=None, **overrides)

    assert line.startswith("Invalid setting")
    for text in (str(caught.value), repr(caught.value), line):
        # pydantic shortens long values to their ends: no 8 characters of it may show.
        pieces = {SECRET[start : start + 8] for start in range(len(SECRET) - 7)}
        assert not [piece for piece in pieces if piece in text], text


# --- development secret key ------------------------------------------------------------------


def test_development_key_is_generated_beside_the_sqlite_database(tmp_path: Path) -> None:
    database = tmp_path / "data" / "auth.db"
    settings = load_settings(database_url=f"sqlite:///{database}")

    key = settings.signing_key

    key_file = tmp_path / "data" / SECRET_KEY_FILE_NAME
    assert settings.secret_key_file == key_file
    assert len(key) >= 32
    assert key_file.read_text(encoding="ascii").strip() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_development_key_is_the_same_on_the_next_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auth.db'}"

    first = load_settings(database_url=url).signing_key
    second = load_settings(database_url=url).signing_key

    assert first == second


def test_development_key_for_default_database_lives_in_working_directory(
    tmp_path: Path,
) -> None:
    key = load_settings().signing_key

    assert (tmp_path / SECRET_KEY_FILE_NAME).read_text(encoding="ascii").strip() == key


def test_development_key_for_postgresql_lives_in_working_directory(tmp_path: Path) -> None:
    settings = load_settings(database_url="postgresql://app@db.internal/app")

    key = settings.signing_key

    assert settings.secret_key_file == tmp_path / SECRET_KEY_FILE_NAME
    assert (tmp_path / SECRET_KEY_FILE_NAME).read_text(encoding="ascii").strip() == key


def test_configured_secret_key_writes_no_key_file(tmp_path: Path) -> None:
    settings = load_settings(secret_key=STRONG_KEY)

    assert settings.signing_key == STRONG_KEY
    assert not (tmp_path / SECRET_KEY_FILE_NAME).exists()


def test_damaged_key_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / SECRET_KEY_FILE_NAME).write_text("short\n", encoding="ascii")

    with pytest.raises(SettingsError, match="damaged"):
        _ = load_settings().signing_key


def _create_key_when_released(path: str, barrier: Any, results: Any) -> None:
    """Child process: wait until every sibling is ready, then race for the key file."""
    barrier.wait(timeout=60)
    results.put(load_or_create_key_file(Path(path)))


def test_concurrent_processes_create_one_development_key(tmp_path: Path) -> None:
    workers = 6
    path = tmp_path / "shared" / SECRET_KEY_FILE_NAME
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    results = context.Queue()
    processes = [
        context.Process(target=_create_key_when_released, args=(str(path), barrier, results))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    keys = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)

    assert [process.exitcode for process in processes] == [0] * workers
    assert len(set(keys)) == 1
    assert path.read_text(encoding="ascii").strip() == keys[0]
    assert sorted(os.listdir(path.parent)) == [SECRET_KEY_FILE_NAME]  # no temporary leftovers
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "name",
    [
        "ACCESS_TOKEN_EXPIRE_MINUTES",
        "REFRESH_TOKEN_EXPIRE_DAYS",
        "SESSION_MAX_LIFETIME_DAYS",
        "PASSWORD_RESET_EXPIRE_MINUTES",
    ],
)
def test_absurd_lifetimes_are_refused_at_startup(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    from orgauth.settings import SettingsError, load_settings

    monkeypatch.setenv(name, "10000000")
    with pytest.raises(SettingsError, match=name):
        load_settings()


# --- webhooks and secrets at rest -----------------------------------------------------------


def test_webhook_defaults() -> None:
    settings = OrgAuthSettings(_env_file=None)  # type: ignore[call-arg]

    assert settings.webhook_delivery_enabled is True
    assert settings.webhook_allow_private_urls is False
    assert settings.webhook_timeout_seconds == 10
    assert settings.webhook_retry_schedule == (10, 40, 160, 640, 2560, 10240, 40960)
    assert settings.webhook_poll_interval_seconds == 2
    assert settings.webhook_delivery_retention_days == 30
    assert settings.encryption_key is None


def test_retry_schedule_reads_comma_separated_decimals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", " 0.5, 2 ,30.25")

    assert load_settings().webhook_retry_schedule == (0.5, 2, 30.25)


def test_an_empty_retry_schedule_means_one_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "")

    assert load_settings().webhook_retry_schedule == ()


@pytest.mark.parametrize("value", ["0.05", "-1", "ten", "1,,2", "nan", "inf", ",".join(["1"] * 21)])
def test_bad_retry_schedules_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", value)

    assert settings_error().startswith("Invalid setting WEBHOOK_RETRY_SCHEDULE:")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WEBHOOK_TIMEOUT_SECONDS", "0.5"),
        ("WEBHOOK_TIMEOUT_SECONDS", "31"),
        ("WEBHOOK_POLL_INTERVAL_SECONDS", "0.05"),
        ("WEBHOOK_POLL_INTERVAL_SECONDS", "61"),
        ("WEBHOOK_DELIVERY_RETENTION_DAYS", "0"),
        ("ENCRYPTION_KEY", "short"),
    ],
)
def test_webhook_and_encryption_ranges_are_enforced(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    assert settings_error().startswith(f"Invalid setting {name}:")


def test_production_refuses_private_webhook_urls() -> None:
    message = settings_error(
        environment="production",
        email_backend="file",
        secret_key=STRONG_KEY,
        webhook_allow_private_urls=True,
    )

    assert "WEBHOOK_ALLOW_PRIVATE_URLS" in message


@pytest.mark.parametrize(
    "key", ["please-CHANGE-this-encryption-value-4f8a91", "ab" * 20, ENV_EXAMPLE_SECRET_KEY]
)
def test_production_refuses_a_placeholder_encryption_key(key: str) -> None:
    message = settings_error(
        environment="production", email_backend="file", secret_key=STRONG_KEY, encryption_key=key
    )

    assert "ENCRYPTION_KEY" in message


def test_secrets_are_sealed_under_the_encryption_key_else_the_secret_key() -> None:
    assert production().encryption_master_key == STRONG_KEY
    other = "Zq8-encryption-Key-for-Secrets-at-Rest-73x"
    settings = production(encryption_key=other)

    assert settings.encryption_master_key == other
    assert other not in repr(settings)


# --- session policies ------------------------------------------------------------------------


def test_session_policies_are_off_by_default() -> None:
    settings = OrgAuthSettings(_env_file=None)  # type: ignore[call-arg]

    assert settings.session_idle_timeout_minutes == 0
    assert settings.max_sessions_per_user == 0


def test_the_idle_timeout_takes_decimal_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_IDLE_TIMEOUT_MINUTES", "0.5")

    assert load_settings().session_idle_timeout_minutes == 0.5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SESSION_IDLE_TIMEOUT_MINUTES", "-1"),
        ("SESSION_IDLE_TIMEOUT_MINUTES", "525601"),
        ("MAX_SESSIONS_PER_USER", "-1"),
        ("MAX_SESSIONS_PER_USER", "1001"),
        ("MAX_SESSIONS_PER_USER", "1.5"),
    ],
)
def test_session_policy_ranges_are_enforced(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    assert settings_error().startswith(f"Invalid setting {name}:")
