"""OrgAuth: owns the settings, database engine and password hasher of one orgauth instance.

``OrgAuth(settings).install(app)`` adds orgauth's routes, error handling and middleware to
a FastAPI app; ``auth.lifespan`` opens and closes its resources. Several instances with
different settings can live in one process: nothing is global.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from orgauth.db import create_engine, create_sessionmaker
from orgauth.security.passwords import PasswordHasher, WeakPasswordError
from orgauth.settings import OrgAuthSettings, load_settings

logger = logging.getLogger("orgauth")


class OrgAuth:
    """One configured orgauth: settings, database, hashing, routes and dependencies."""

    def __init__(
        self,
        settings: OrgAuthSettings | None = None,
        *,
        engine: AsyncEngine | None = None,
        sessionmaker: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        self._engine = engine
        self._owns_engine = engine is None
        self._sessionmaker = sessionmaker
        self.passwords = PasswordHasher(self.settings.bcrypt_rounds)

    # --- resources -----------------------------------------------------------------

    @property
    def engine(self) -> AsyncEngine:
        """The async engine (created on first use unless the host passed its own)."""
        if self._engine is None:
            self._engine = create_engine(self.settings)
        return self._engine

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        if self._sessionmaker is None:
            self._sessionmaker = create_sessionmaker(self.engine)
        return self._sessionmaker

    async def startup(self) -> None:
        """Open resources and create the first superuser when configured."""
        _ = self.settings.signing_key  # create/read the development key before serving
        await self._create_first_superuser()

    async def shutdown(self) -> None:
        """Release the engine (when orgauth created it) and the hashing threads."""
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

    async def _create_first_superuser(self) -> None:
        settings = self.settings
        if not (settings.first_superuser_email and settings.first_superuser_password):
            return
        from orgauth.services.users import ensure_superuser

        async with self.sessionmaker() as session:
            try:
                result = await ensure_superuser(
                    session,
                    hasher=self.passwords,
                    email=settings.first_superuser_email,
                    password=settings.first_superuser_password.get_secret_value(),
                    min_password_length=settings.password_min_length,
                )
            except WeakPasswordError as exc:
                raise RuntimeError(f"FIRST_SUPERUSER_PASSWORD is refused: {exc}") from None
        if result.created:
            logger.info("first superuser created", extra={"user_id": str(result.user.id)})

    # --- installation --------------------------------------------------------------

    def install(self, app: FastAPI, *, include_health: bool = True) -> None:
        """Add orgauth's routes (under ``API_PREFIX``) and error handling to ``app``."""
        from orgauth.api.errors import install_error_handlers
        from orgauth.api.health import build_health_router

        install_error_handlers(app)
        if include_health:
            app.include_router(build_health_router(self))
        app.state.orgauth = self

    def __repr__(self) -> str:
        return f"OrgAuth(environment={self.settings.environment!r}, database={self._db_label()})"

    def _db_label(self) -> str:
        return "sqlite" if self.settings.is_sqlite else "postgresql"
