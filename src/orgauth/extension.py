"""OrgAuth: owns the settings, database engine and collaborators of one orgauth instance.

``OrgAuth(settings).install(app)`` adds orgauth's routes, error handling and middleware to
a FastAPI app; ``auth.lifespan`` opens and closes its resources. Several instances with
different settings can live in one process: nothing is global.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from contextlib import asynccontextmanager, suppress
from functools import cached_property
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from orgauth.data.statements import Statements
from orgauth.db import create_engine, create_sessionmaker
from orgauth.email import EmailSender, create_email_sender
from orgauth.errors import OrgAuthError
from orgauth.hooks import Hooks
from orgauth.lengths import MAX_BODY_BYTES
from orgauth.models import Membership, OrgRole, User
from orgauth.schema import SchemaWatch
from orgauth.security.devices import parse_user_agent
from orgauth.security.passwords import PasswordHasher, WeakPasswordError
from orgauth.security.ratelimit import AccountLimits, RateLimiter
from orgauth.security.tokens import AccessTokenCodec
from orgauth.services.api_keys import KeyPrincipal
from orgauth.services.context import AuthContext
from orgauth.services.organizations import OrgAccess
from orgauth.services.permissions import OrgPermission, PermissionCatalog
from orgauth.services.sessions import Principal
from orgauth.settings import OrgAuthSettings, load_settings
from orgauth.webhooks.worker import WebhookWorker

if TYPE_CHECKING:
    from orgauth.api.deps import Dependencies
    from orgauth.api.limits import RouteLimits
    from orgauth.services.webhooks import WebhookRules

logger = logging.getLogger("orgauth")


#: The routers orgauth can add, by name: ``install(app, routers={"auth", "users"})``.
ROUTERS: tuple[str, ...] = (
    "auth",
    "users",
    "sessions",
    "organizations",
    "invitations",
    "admin",
)


def _checked_routers(routers: Collection[str]) -> frozenset[str]:
    if isinstance(routers, str):
        routers = [routers]
    unknown = sorted(set(routers) - set(ROUTERS))
    if unknown:
        raise ValueError(f"unknown orgauth routers {unknown}; choose from {list(ROUTERS)}")
    return frozenset(routers)


async def _errors_without_install(request: Request) -> AsyncIterator[None]:
    """Router dependency: on an app where ``install()`` registered no error handlers,
    re-raise orgauth errors as HTTPException with the same body and headers, and
    validation errors without the submitted values (they may be passwords)."""
    if getattr(request.app.state, "orgauth_error_handlers", False):
        yield
        return
    try:
        yield
    except OrgAuthError as exc:
        detail = exc.body()["detail"]
        raise HTTPException(exc.status_code, detail=detail, headers=exc.headers or None) from None
    except RequestValidationError as exc:
        errors = [
            {"type": error.get("type"), "loc": list(error.get("loc", ())), "msg": error.get("msg")}
            for error in exc.errors()
        ]
        raise HTTPException(422, detail=errors) from None


class OrgAuth:
    """One configured orgauth: settings, database, hashing, routes and dependencies."""

    def __init__(
        self,
        settings: OrgAuthSettings | None = None,
        *,
        engine: AsyncEngine | None = None,
        sessionmaker: async_sessionmaker[AsyncSession] | None = None,
        email_sender: EmailSender | None = None,
        session_dependency: Callable[..., AsyncIterator[AsyncSession]] | None = None,
        prune_interval_seconds: float | None = None,
        permissions: Iterable[str | OrgPermission] = (),
    ) -> None:
        """Configure orgauth.

        ``engine``/``sessionmaker``: use the host app's database pool (orgauth then never
        disposes it). ``session_dependency``: the host's own FastAPI dependency yielding an
        ``AsyncSession``; orgauth's routes and dependencies then share the request's
        session (and transaction) with the host's routes. ``email_sender``: any object with
        ``async send(EmailMessage)``, instead of the configured backend.
        ``prune_interval_seconds``: how often expired sessions are deleted (default:
        ``SESSION_PRUNE_INTERVAL_SECONDS``; 0 turns periodic pruning off).
        ``permissions``: the host's organization permissions (keys or
        :class:`OrgPermission`), merged with ``ORG_PERMISSIONS``; a malformed key, a
        duplicate or a built-in raises ``ValueError`` (docs/EMBEDDING.md).
        """
        self.settings = settings if settings is not None else load_settings()
        self._engine = engine
        self._owns_engine = engine is None
        self._sessionmaker = sessionmaker
        self._email_sender = email_sender
        self.session_dependency = session_dependency
        self._prune_interval = (
            prune_interval_seconds
            if prune_interval_seconds is not None
            else self.settings.session_prune_interval_seconds
        )
        self._prune_task: asyncio.Task[None] | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._statements: Statements | None = None
        self.catalog = PermissionCatalog([*self.settings.org_permissions, *permissions])
        self.passwords = PasswordHasher(self.settings.bcrypt_rounds)
        self.hooks = Hooks()
        self.rate_limiter = RateLimiter(self.settings)
        self.account_limits = AccountLimits(self.settings, self.rate_limiter)
        self.schema = SchemaWatch()

    # --- resources -----------------------------------------------------------------

    @property
    def engine(self) -> AsyncEngine:
        """The async engine (created on first use unless the host passed its own)."""
        if self._engine is None:
            self._engine = create_engine(self.settings)
        return self._engine

    @property
    def statements(self) -> Statements:
        """Runs the single-statement hot paths (authentication, health) on the engine."""
        if self._statements is None or self._statements.engine is not self.engine:
            self._statements = Statements(self.engine)
        return self._statements

    @cached_property
    def limits(self) -> RouteLimits:
        """The per-IP rate-limit dependencies of the limited routes."""
        from orgauth.api.limits import RouteLimits

        return RouteLimits(self.settings, self.rate_limiter)

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        if self._sessionmaker is None:
            self._sessionmaker = create_sessionmaker(self.engine)
        return self._sessionmaker

    @cached_property
    def access_tokens(self) -> AccessTokenCodec:
        settings = self.settings
        return AccessTokenCodec(
            key=settings.signing_key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            lifetime_seconds=settings.access_token_expire_minutes * 60,
        )

    @cached_property
    def email_sender(self) -> EmailSender:
        return self._email_sender or create_email_sender(self.settings)

    @cached_property
    def context(self) -> AuthContext:
        """Settings and collaborators handed to the services."""
        return AuthContext(
            settings=self.settings,
            passwords=self.passwords,
            access_tokens=self.access_tokens,
            email=self.email_sender,
            hooks=self.hooks,
            account_limits=self.account_limits,
        )

    @cached_property
    def dependencies(self) -> Dependencies:
        from orgauth.api.deps import Dependencies

        return Dependencies(self)

    # --- lifecycle -----------------------------------------------------------------

    async def startup(self) -> None:
        """Open resources, create the first superuser when configured, start pruning and
        (with ``WEBHOOK_DELIVERY_ENABLED``) the webhook delivery worker."""
        _ = self.access_tokens  # create/read the development key before serving
        parse_user_agent("Mozilla/5.0")  # load the parser's rules now, not in a request
        schema_is_current = await self._schema_is_current()
        if schema_is_current:
            await self._create_first_superuser()
        if schema_is_current and self.settings.webhook_delivery_enabled:
            self._webhook_task = asyncio.create_task(self.webhook_worker().run())
        if self._prune_interval:
            self._prune_task = asyncio.create_task(self._prune_periodically(self._prune_interval))

    async def shutdown(self) -> None:
        """Stop pruning and delivering, release the engine (when orgauth created it) and
        hashing threads. A delivery cut short is sent again once its lease expires."""
        for task in (self._prune_task, self._webhook_task):
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        self._prune_task = self._webhook_task = None
        self.passwords.close()
        if self._engine is not None and self._owns_engine:
            await self._engine.dispose()
            self._engine = None
            self._sessionmaker = None

    @asynccontextmanager
    async def lifespan(self, app: FastAPI | None = None) -> AsyncIterator[None]:
        """Lifespan for ``FastAPI(lifespan=auth.lifespan)``."""
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    @cached_property
    def webhook_rules(self) -> WebhookRules:
        """How endpoint URLs are checked and secrets sealed (docs/SECURITY.md)."""
        from orgauth.services.webhooks import WebhookRules

        return WebhookRules.of(self.settings)

    def webhook_worker(self) -> WebhookWorker:
        """A delivery worker on this instance's database and settings (docs/DEPLOYMENT.md)."""
        return WebhookWorker(self.sessionmaker, self.settings)

    async def _schema_is_current(self) -> bool:
        """Log a clear error when the database is not at orgauth's latest migration.

        The app still starts (a host's other routes keep working; ``/health`` reports the
        problem); orgauth's routes answer 500 ``DATABASE_NOT_MIGRATED`` until it is fixed.
        """
        try:
            report = await self.schema.report(self.engine)
        except Exception as exc:  # unreachable now: requests will say so (503)
            logger.warning(
                "could not read the database schema version at startup",
                extra={"error": type(exc).__name__},
            )
            return True
        if not report.at_head:
            logger.error(report.problem())
        return report.at_head

    async def _create_first_superuser(self) -> None:
        """Create ``FIRST_SUPERUSER_EMAIL`` as a superuser when no account has that email.

        An existing account is left as it is (never promoted, never changed), so a renamed
        or demoted first superuser stays that way across restarts; the log says which.
        """
        settings = self.settings
        if not (settings.first_superuser_email and settings.first_superuser_password):
            return
        from orgauth.services.users import create_first_superuser

        async with self.sessionmaker() as session:
            try:
                result = await create_first_superuser(
                    session,
                    hasher=self.passwords,
                    email=settings.first_superuser_email,
                    password=settings.first_superuser_password.get_secret_value(),
                    min_password_length=settings.password_min_length,
                    hooks=self.hooks,
                )
            except WeakPasswordError as exc:
                raise RuntimeError(f"FIRST_SUPERUSER_PASSWORD is refused: {exc}") from None
        fields = {"user_id": str(result.user.id)}
        if result.created:
            logger.info("first superuser created", extra=fields)
        elif result.user.is_superuser:
            logger.info(
                "first superuser not created: an account with FIRST_SUPERUSER_EMAIL exists",
                extra=fields,
            )
        else:
            logger.warning(
                "first superuser not created: the account with FIRST_SUPERUSER_EMAIL exists "
                "and is not a superuser; it is left unchanged "
                "(`orgauth user create-superuser` promotes it)",
                extra=fields,
            )

    async def _prune_periodically(self, interval: float) -> None:
        from orgauth.services.maintenance import prune_with_lock

        while True:
            await asyncio.sleep(interval)
            try:
                async with self.sessionmaker() as session:
                    result = await prune_with_lock(
                        session,
                        audit_retention_days=self.settings.audit_retention_days,
                        webhook_retention_days=self.settings.webhook_delivery_retention_days,
                        policy=self.context.session_policy,
                    )
                if result is not None:
                    logger.info(
                        "pruned expired sessions",
                        extra={
                            "sessions": result.sessions,
                            "refresh_tokens": result.refresh_tokens,
                            "reset_tokens": result.reset_tokens,
                            "verification_tokens": result.verification_tokens,
                            "audit_events": result.audit_events,
                            "webhook_deliveries": result.webhook_deliveries,
                        },
                    )
            except Exception as exc:  # keep the loop alive through outages
                logger.warning("session pruning failed", extra={"error": type(exc).__name__})

    # --- installation --------------------------------------------------------------

    @cached_property
    def router(self) -> APIRouter:
        """Every orgauth route under ``API_PREFIX``, for apps that mount it themselves.

        Mounted without :meth:`install`, a guard dependency answers orgauth's errors in
        orgauth's format instead of letting them become bare 500s.
        """
        return self.build_router()

    def build_router(self, routers: Collection[str] = ROUTERS) -> APIRouter:
        """The routes of the named routers (see :data:`ROUTERS`) under ``API_PREFIX``, for
        apps that mount them themselves (guarded like :attr:`router`)."""
        return self._build_router(_checked_routers(routers), guarded=True)

    def _build_router(
        self, routers: frozenset[str], *, guarded: bool, profile_route: bool = True
    ) -> APIRouter:
        from orgauth.api.routes.admin import build_admin_router
        from orgauth.api.routes.auth import build_auth_router
        from orgauth.api.routes.invitations import build_invitee_router
        from orgauth.api.routes.organizations import build_organizations_router
        from orgauth.api.routes.sessions import build_sessions_router
        from orgauth.api.routes.users import build_users_router

        builders: dict[str, Callable[[], APIRouter]] = {
            # Routes are matched in order: the per-request one (/users/me) comes first.
            "users": lambda: build_users_router(self, profile_route=profile_route),
            "sessions": lambda: build_sessions_router(self),
            "auth": lambda: build_auth_router(self),
            "organizations": lambda: build_organizations_router(self),
            "invitations": lambda: build_invitee_router(self),
            "admin": lambda: build_admin_router(self),
        }
        router = APIRouter(
            prefix=self.settings.api_prefix,
            dependencies=[Depends(_errors_without_install)] if guarded else [],
        )
        for name, build in builders.items():
            if name in routers:
                router.include_router(build())
        return router

    def install(
        self,
        app: FastAPI,
        *,
        routers: Collection[str] = ROUTERS,
        include_health: bool = True,
        security_headers: bool = True,
        cors: bool = True,
        max_body_size: int | None = MAX_BODY_BYTES,
    ) -> None:
        """Add orgauth to ``app`` (docs/EMBEDDING.md).

        ``routers``: which of :data:`ROUTERS` to add under ``API_PREFIX`` (default: all).
        ``include_health``: ``GET /health``. ``security_headers``: orgauth's security
        headers on every response that does not set its own (a host route's own
        ``Content-Security-Policy`` and the like are kept). ``cors``: CORS for
        ``BACKEND_CORS_ORIGINS``. ``max_body_size``: request bodies above this many bytes
        are refused with 413, on every route of the app (``None``: no limit, e.g. when the
        host has upload routes and bounds bodies itself). Error handling is always added.
        """
        from orgauth.api.errors import install_error_handlers
        from orgauth.api.health import add_health_route
        from orgauth.api.middleware import (
            BodyLimitMiddleware,
            SecurityHeadersMiddleware,
            StrictCORSMiddleware,
            UnhandledErrorMiddleware,
        )
        from orgauth.api.routes.users import add_profile_route
        from orgauth.security.headers import SecurityHeaders

        selected = _checked_routers(routers)
        install_error_handlers(app)
        # The per-request routes go on the app's own router: FastAPI then matches them
        # without walking its tree of included routers (a measurable cost per request).
        if include_health:
            add_health_route(app.router, self)
        if "users" in selected:
            add_profile_route(app.router, self, f"{self.settings.api_prefix}/users/me")
        # install() registers the error handlers itself: no per-request guard needed.
        app.include_router(self._build_router(selected, guarded=False, profile_route=False))
        app.add_middleware(UnhandledErrorMiddleware)
        if max_body_size is not None:
            app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_size)
        origins = self.settings.backend_cors_origins
        if cors and origins:
            app.add_middleware(
                StrictCORSMiddleware,
                allow_origins=origins,
                # A wildcard (development only) never comes with credentials.
                allow_credentials="*" not in origins,
                allow_methods=["GET", "POST", "PATCH", "DELETE"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=600,
            )
        if security_headers:
            from orgauth.api.docs import OAUTH2_REDIRECT_PATH

            candidates = ("/docs", "/redoc", OAUTH2_REDIRECT_PATH, app.docs_url, app.redoc_url)
            docs_paths = frozenset(path for path in candidates if path)
            app.add_middleware(
                SecurityHeadersMiddleware, headers=SecurityHeaders(self.settings, docs_paths)
            )
        app.state.orgauth = self

    # Public dependencies for host routes: ``Depends(auth.current_user)``.
    @property
    def current_user(self) -> Callable[..., Awaitable[User]]:
        """Dependency: the authenticated, active user (401 otherwise; 403
        ``API_KEY_NOT_ALLOWED`` for an API key)."""
        return self.dependencies.current_user

    @property
    def current_principal(self) -> Callable[..., Awaitable[Principal | KeyPrincipal]]:
        """Dependency: who is calling, a user's session (:class:`Principal`) or an
        organization's API key (:class:`KeyPrincipal`); 401 otherwise."""
        return self.dependencies.current_principal

    @property
    def optional_user(self) -> Callable[..., Awaitable[User | None]]:
        """Dependency: the user when a credential is sent, else None (bad one: 401; an
        API key: 403)."""
        return self.dependencies.optional_user

    @property
    def current_superuser(self) -> Callable[..., Awaitable[User]]:
        """Dependency: the authenticated user if a superuser (403 otherwise)."""
        return self.dependencies.current_superuser

    @property
    def get_db(self) -> Callable[..., AsyncIterator[AsyncSession]]:
        """Dependency: the request's database session (shared with orgauth's routes)."""
        return self.dependencies.get_db

    def require_org_role(self, role: OrgRole | str) -> Callable[..., Awaitable[Membership]]:
        """Dependency for routes with an ``{org_id}`` path parameter: the caller's
        membership when their role is at least ``role`` (superusers pass as owners);
        404 for non-members and unknown organizations, 403 ``INSUFFICIENT_ROLE`` below,
        403 ``API_KEY_NOT_ALLOWED`` for an API key."""
        return self.dependencies.require_org_role(role)

    def require_org_permission(self, permission: str) -> Callable[..., Awaitable[OrgAccess]]:
        """Dependency for routes with an ``{org_id}`` path parameter: the caller's
        :class:`OrgAccess` when they hold ``permission`` in that organization, as a user
        or with the organization's API key; 404 for strangers, 403 ``INSUFFICIENT_ROLE``
        without it. A key missing from the catalog
        raises ``ValueError`` here (docs/EMBEDDING.md)."""
        return self.dependencies.require_org_permission(permission)

    def __repr__(self) -> str:
        database = "sqlite" if self.settings.is_sqlite else "postgresql"
        return f"OrgAuth(environment={self.settings.environment!r}, database={database})"
