"""OrgAuthSettings: every setting of orgauth, its parsing, validation and the production guard.

Settings are read from the environment and a ``.env`` file in the working directory, or
passed in explicitly as ``OrgAuthSettings(...)``. Nothing in orgauth reads a module-level
settings global: every component receives the settings object it works with.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from orgauth.lengths import PASSWORD_MAX_LENGTH
from orgauth.services.permissions import (
    SETTING as ORG_PERMISSIONS_SETTING,
)
from orgauth.services.permissions import (
    OrgPermission,
    PermissionCatalog,
    parse_permission_setting,
)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./orgauth.db"
SECRET_KEY_FILE_NAME = ".orgauth-secret-key"
MIN_SECRET_KEY_LENGTH = 32
MIN_PRODUCTION_BCRYPT_ROUNDS = 12

# Values that look like they were copied from documentation rather than generated.
PLACEHOLDER_SECRET_MARKERS = ("change", "secret-key", "your-", "example")
ENV_EXAMPLE_SECRET_KEY = "replace-with-output-of-python-c-import-secrets-token-urlsafe-48"

Environment = Literal["development", "production"]
CspMode = Literal["strict", "relaxed", "disabled"]
EmailBackend = Literal["console", "smtp", "file"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["text", "json"]

MAX_LIFETIME_DAYS = 3650
MAX_LIFETIME_MINUTES = MAX_LIFETIME_DAYS * 24 * 60
LifetimeDays = Annotated[float, Field(gt=0, le=MAX_LIFETIME_DAYS)]
LifetimeMinutes = Annotated[float, Field(gt=0, le=MAX_LIFETIME_MINUTES)]
MAX_EMAIL_VERIFY_EXPIRE_HOURS = 720
MAX_INVITATION_EXPIRE_DAYS = 30
MAX_WEBHOOK_RETRIES = 20
MIN_WEBHOOK_RETRY_SECONDS = 0.1
MAX_PENDING_INVITATIONS = 10_000


class SettingsError(ValueError):
    """A setting is invalid; ``str(error)`` is one line naming the setting."""


def _split_list(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string for list settings."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a valid JSON list ({exc.msg})") from None
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
# "10/0 minutes": limits reads a zero window as one unit (10/minute); refuse it instead.
_ZERO_RATE_WINDOW = re.compile(r"(/|per)\s*0+\s*[a-z]", re.IGNORECASE)


def normalize_database_url(url: str) -> str:
    """Map plain driver URLs to the async drivers orgauth uses.

    ``postgresql://`` and ``postgres://`` mean asyncpg; ``sqlite://`` means aiosqlite. A
    PostgreSQL URL must name its database (without one, the server would pick the OS
    user's). Error messages never quote the URL: it may carry a password.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("must look like 'postgresql://user@host/db' or 'sqlite:///./file.db'")
    scheme_lower = scheme.lower()
    if scheme_lower in ("sqlite", "sqlite+aiosqlite"):
        return f"sqlite+aiosqlite://{rest}"
    if scheme_lower not in ("postgresql", "postgres", "postgresql+asyncpg"):
        if not _URL_SCHEME.fullmatch(scheme):  # not a scheme: perhaps "user:password@host"
            raise ValueError("must start with postgresql:// or sqlite://")
        raise ValueError(f"unsupported database scheme '{scheme}' (use postgresql:// or sqlite://)")
    normalized = f"postgresql+asyncpg://{rest}"
    try:
        database = make_url(normalized).database
    except (ArgumentError, ValueError):  # e.g. a port that is not a number
        raise ValueError("is not a valid URL like 'postgresql://user@host:5432/db'") from None
    if not database:
        raise ValueError("names no database; add it, as in 'postgresql://user@host/orgauth'")
    return normalized


class OrgAuthSettings(BaseSettings):
    """Every orgauth setting (docs/CONFIGURATION.md); environment variables are the upper-cased
    field names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        frozen=True,
        # A rejected value may be a secret (a short SECRET_KEY, a URL with a password):
        # validation errors name the setting and the rule, never the value.
        hide_input_in_errors=True,
    )

    environment: Environment = "development"

    # URLs may carry a password: kept out of repr() (SecretStr fields show as '**********').
    database_url: str | None = Field(default=None, repr=False)
    postgres_user: str | None = None
    postgres_password: SecretStr | None = None
    postgres_host: str | None = None
    postgres_port: int = Field(default=5432, ge=1, le=65535)
    postgres_db: str | None = None
    db_pool_size: int = Field(default=20, ge=1, le=1000)
    db_max_overflow: int = Field(default=50, ge=0, le=1000)
    db_pool_timeout: float = Field(default=30, gt=0)
    db_pool_recycle: int = Field(default=3600, ge=-1)

    secret_key: SecretStr | None = None
    # Seals secrets stored in the database (webhook secrets); SECRET_KEY when unset.
    encryption_key: SecretStr | None = None

    access_token_expire_minutes: LifetimeMinutes = 15
    refresh_token_expire_days: LifetimeDays = 7
    session_max_lifetime_days: LifetimeDays = 30
    # 0 = off; a session unused for longer ends (decimals allowed).
    session_idle_timeout_minutes: float = Field(default=0, ge=0, le=525_600)
    # 0 = unlimited; sign-in evicts the least recently used beyond this.
    max_sessions_per_user: int = Field(default=0, ge=0, le=1000)
    refresh_reuse_grace_seconds: float = Field(default=0, ge=0, le=300)
    jwt_issuer: str = Field(default="orgauth", min_length=1, max_length=255)
    jwt_audience: str = Field(default="orgauth", min_length=1, max_length=255)

    bcrypt_rounds: int = Field(default=12, ge=4, le=31)
    password_min_length: int = Field(default=12, ge=8, le=PASSWORD_MAX_LENGTH)

    api_prefix: str = "/api/v1"
    backend_cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    csp_mode: CspMode = "strict"
    docs_enabled: bool | None = None

    rate_limit_enabled: bool = True
    rate_limit_storage_uri: str = Field(default="memory://", repr=False)
    rate_limit_login: str = "10/minute"
    rate_limit_register: str = "5/hour"
    rate_limit_refresh: str = "30/minute"
    rate_limit_password_reset: str = "5/hour"
    rate_limit_password_change: str = "5/15 minutes"
    rate_limit_verify_email: str = "5/hour"
    # One counter per IP for every route that redeems an emailed or one-time token.
    rate_limit_token_confirm: str = "30/minute"
    # Per inviter (user or API key): invitation create and resend, and direct adds.
    rate_limit_invite: str = "20/hour"
    # Per principal (user or API key), on both audit export routes.
    rate_limit_audit_export: str = "10/hour"
    # Per API key, every request authenticated with it.
    rate_limit_api_key: str = "600/minute"
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(default_factory=list)

    allow_registration: bool = True
    allow_user_org_creation: bool = True
    org_direct_add: bool = True
    org_max_members: int = Field(default=0, ge=0)
    org_max_pending_invitations: int = Field(default=100, ge=1, le=MAX_PENDING_INVITATIONS)
    invitation_expire_days: float = Field(default=7, gt=0, le=MAX_INVITATION_EXPIRE_DAYS)
    org_permissions: Annotated[tuple[OrgPermission, ...], NoDecode] = ()
    first_superuser_email: str | None = None
    first_superuser_password: SecretStr | None = None

    email_backend: EmailBackend = "console"
    email_file_dir: str = "./orgauth-emails"
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["starttls", "tls", "none"] = "starttls"
    email_from: str = "orgauth <no-reply@localhost>"
    frontend_url: str = "http://localhost:3000"
    password_reset_expire_minutes: LifetimeMinutes = 60
    email_verify_expire_hours: float = Field(default=48, gt=0, le=MAX_EMAIL_VERIFY_EXPIRE_HOURS)
    require_verified_email: bool = False
    audit_retention_days: int = Field(default=365, ge=0, le=3650)
    session_prune_interval_seconds: float = Field(default=3600, ge=0, le=7 * 24 * 3600)

    webhook_delivery_enabled: bool = True
    webhook_allow_private_urls: bool = False
    webhook_timeout_seconds: float = Field(default=10, ge=1, le=30)
    webhook_retry_schedule: Annotated[tuple[float, ...], NoDecode] = (
        10,
        40,
        160,
        640,
        2560,
        10240,
        40960,
    )
    webhook_poll_interval_seconds: float = Field(default=2, ge=0.1, le=60)
    webhook_delivery_retention_days: int = Field(default=30, ge=1, le=3650)

    log_level: LogLevel = "INFO"
    log_format: LogFormat | None = None

    # --- parsing -----------------------------------------------------------------

    @field_validator("environment", "csp_mode", "email_backend", "log_format", mode="before")
    @classmethod
    def _lowercase_choice(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _uppercase_level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("smtp_tls", mode="before")
    @classmethod
    def _smtp_tls_choice(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "starttls" if value else "none"
        if isinstance(value, str):
            text = value.strip().lower()
            return {"true": "starttls", "1": "starttls", "false": "none", "0": "none"}.get(
                text, text
            )
        return value

    @field_validator("backend_cors_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("backend_cors_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        cleaned: list[str] = []
        for origin in origins:
            origin = origin.strip().rstrip("/")
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ValueError(f"'{origin}' is not an origin like https://app.example.com")
            if origin != "*" and origin.count("/") > 2:
                raise ValueError(f"'{origin}' must be an origin without a path")
            cleaned.append(origin)
        return cleaned

    @field_validator("org_permissions", mode="before")
    @classmethod
    def _parse_permissions(cls, value: Any) -> Any:
        try:
            permissions = parse_permission_setting(value)
            PermissionCatalog(permissions)  # duplicates and clashes with built-ins
        except ValueError as exc:
            raise ValueError(str(exc).removeprefix(f"{ORG_PERMISSIONS_SETTING}: ")) from None
        return tuple(permissions)

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _parse_forwarded(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _check_forwarded(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"'{entry}' is not an IP address or network") from None
        return entries

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return normalize_database_url(value.strip())

    @field_validator("api_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith("/"):
            raise ValueError("must start with '/' (for example /api/v1)")
        return value

    @field_validator("frontend_url")
    @classmethod
    def _check_frontend_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator(
        "rate_limit_login",
        "rate_limit_register",
        "rate_limit_refresh",
        "rate_limit_password_reset",
        "rate_limit_password_change",
        "rate_limit_verify_email",
        "rate_limit_token_confirm",
        "rate_limit_invite",
        "rate_limit_audit_export",
        "rate_limit_api_key",
    )
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        from limits import parse_many

        try:
            items = parse_many(value)
        except ValueError:
            raise ValueError(f"'{value}' is not in limits notation (e.g. '10/minute')") from None
        if any(item.amount < 1 for item in items):
            raise ValueError(
                f"'{value}' allows no request at all; use at least 1 per period "
                "(RATE_LIMIT_ENABLED=false turns rate limits off)"
            )
        if _ZERO_RATE_WINDOW.search(value):
            raise ValueError(f"'{value}' has a zero time window; use e.g. '5/15 minutes'")
        return value

    @field_validator("rate_limit_storage_uri")
    @classmethod
    def _check_storage(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://", "redis+sentinel://")):
            raise ValueError("must be memory:// or a redis:// URL")
        return value

    @field_validator("first_superuser_email")
    @classmethod
    def _check_first_superuser_email(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from orgauth.validation import InvalidEmailError, normalize_email

        try:
            normalize_email(value)
        except InvalidEmailError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _parse_retry_schedule(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",")]
            if parts == [""]:
                return ()
            try:
                return tuple(float(part) for part in parts)
            except ValueError:
                raise ValueError("must be comma-separated numbers of seconds") from None
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _check_retry_schedule(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(value) > MAX_WEBHOOK_RETRIES:
            raise ValueError(f"must have at most {MAX_WEBHOOK_RETRIES} entries")
        if any(not (MIN_WEBHOOK_RETRY_SECONDS <= entry < float("inf")) for entry in value):
            raise ValueError(f"entries must be at least {MIN_WEBHOOK_RETRY_SECONDS} seconds")
        return value

    @field_validator("secret_key", "encryption_key")
    @classmethod
    def _check_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_KEY_LENGTH} characters long")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> OrgAuthSettings:
        if bool(self.first_superuser_email) != bool(self.first_superuser_password):
            raise ValueError(
                "FIRST_SUPERUSER_EMAIL and FIRST_SUPERUSER_PASSWORD must be set together"
            )
        if self.email_backend == "smtp" and not self.smtp_host:
            raise ValueError("SMTP_HOST is required when EMAIL_BACKEND=smtp")
        if bool(self.smtp_user) != bool(
            self.smtp_password and self.smtp_password.get_secret_value()
        ):
            raise ValueError("SMTP_USER and SMTP_PASSWORD must be set together")
        if self.is_production:
            self._production_guard()
        return self

    def _production_guard(self) -> None:
        """Refuse unsafe production settings (docs/SECURITY.md); one message naming the setting."""
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if not key:
            raise ValueError("SECRET_KEY is required in production")
        for name, value in (("SECRET_KEY", key), ("ENCRYPTION_KEY", self._encryption_key_text)):
            problem = _key_problem(name, value) if value else None
            if problem:
                raise ValueError(problem)
        if self.bcrypt_rounds < MIN_PRODUCTION_BCRYPT_ROUNDS:
            raise ValueError(
                f"BCRYPT_ROUNDS must be at least {MIN_PRODUCTION_BCRYPT_ROUNDS} in production"
            )
        if "*" in self.backend_cors_origins:
            raise ValueError("BACKEND_CORS_ORIGINS must not contain '*' in production")
        if self.email_backend == "console":
            raise ValueError("EMAIL_BACKEND=console is for development; use smtp or file")
        if self.webhook_allow_private_urls:
            raise ValueError("WEBHOOK_ALLOW_PRIVATE_URLS=true is for development only")

    # --- derived values --------------------------------------------------------

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def docs_are_enabled(self) -> bool:
        return (not self.is_production) if self.docs_enabled is None else self.docs_enabled

    @property
    def effective_log_format(self) -> LogFormat:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.is_production else "text"

    @cached_property
    def sqlalchemy_url(self) -> str:
        """The async database URL in force (DATABASE_URL, then POSTGRES_*, then SQLite)."""
        if self.database_url:
            return self.database_url
        if self.postgres_host:
            user = quote(self.postgres_user or "postgres", safe="")
            password = self.postgres_password.get_secret_value() if self.postgres_password else ""
            auth = f"{user}:{quote(password, safe='')}" if password else user
            db = quote(self.postgres_db or self.postgres_user or "postgres", safe="")
            return f"postgresql+asyncpg://{auth}@{self.postgres_host}:{self.postgres_port}/{db}"
        return DEFAULT_DATABASE_URL

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        """Filesystem path of the SQLite database, or None for memory/PostgreSQL."""
        if not self.is_sqlite:
            return None
        from sqlalchemy.engine import make_url

        path = make_url(self.sqlalchemy_url).database  # None for "sqlite://"
        if not path or path == ":memory:" or "mode=memory" in self.sqlalchemy_url:
            return None
        return Path(path)

    @property
    def secret_key_file(self) -> Path:
        """Where the development secret key is kept: beside the SQLite file, else the cwd."""
        sqlite_path = self.sqlite_path
        directory = sqlite_path.parent if sqlite_path is not None else Path.cwd()
        return directory / SECRET_KEY_FILE_NAME

    @property
    def _encryption_key_text(self) -> str:
        return self.encryption_key.get_secret_value() if self.encryption_key else ""

    @property
    def encryption_master_key(self) -> str:
        """What secrets at rest are sealed under: ENCRYPTION_KEY, else the signing key."""
        if self.encryption_key is not None:
            return self.encryption_key.get_secret_value()
        return self.signing_key

    @cached_property
    def signing_key(self) -> str:
        """The key that signs tokens: SECRET_KEY, or in development a persisted generated one."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        if self.is_production:  # pragma: no cover - the production guard refuses this earlier
            raise SettingsError("SECRET_KEY is required in production")
        return load_or_create_key_file(self.secret_key_file)


def _key_problem(name: str, key: str) -> str | None:
    """Why ``key`` is unfit for production (a known placeholder, or too predictable)."""
    lowered = key.lower()
    if key == ENV_EXAMPLE_SECRET_KEY or any(m in lowered for m in PLACEHOLDER_SECRET_MARKERS):
        return f"{name} looks like a placeholder; generate a random one"
    if len(set(key)) < 8:
        return f"{name} is too predictable; generate a random one"
    return None


def load_or_create_key_file(path: Path) -> str:
    """Read the key stored at ``path``, creating it (mode 0600) if it does not exist.

    Creation is atomic: the key is written to a private temporary file and hard-linked into
    place, so concurrent workers starting at once all end up with the same key.
    """
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
        with contextlib.suppress(FileExistsError):  # another worker won the race
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> str:
    key = path.read_text(encoding="ascii").strip()
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise SettingsError(f"the secret key file {path} is damaged; delete it to generate anew")
    return key


def format_settings_error(error: ValidationError) -> str:
    """Turn a settings ValidationError into one line naming the setting."""
    first = error.errors(include_input=False, include_url=False)[0]
    location = ".".join(str(part) for part in first.get("loc", ()))
    message = str(first.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    if location:
        return f"Invalid setting {location.upper()}: {message}"
    return f"Invalid settings: {message}"


def load_settings(**overrides: Any) -> OrgAuthSettings:
    """Read settings from the environment and ``.env``; raise SettingsError with one line."""
    try:
        return OrgAuthSettings(**overrides)
    except ValidationError as exc:
        raise SettingsError(format_settings_error(exc)) from None
