"""create_app(settings): the standalone orgauth server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from orgauth._version import __version__
from orgauth.api.docs import install_docs
from orgauth.api.errors import install_standalone_error_handlers
from orgauth.extension import OrgAuth
from orgauth.logs import configure_logging
from orgauth.server import freeze_startup_objects
from orgauth.settings import OrgAuthSettings, load_settings


def create_app(settings: OrgAuthSettings | None = None) -> FastAPI:
    """Build the standalone app: every orgauth route, ``/health`` and (optionally) the docs."""
    return _create_app(settings if settings is not None else load_settings(), server=False)


def create_app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` (used by ``orgauth serve``).

    The app for a server process: once its startup is complete, everything loaded so far
    (modules, routes, compiled statements) is moved out of the garbage collector's way,
    see :func:`orgauth.server.freeze_startup_objects`.
    """
    return _create_app(load_settings(), server=True)


def _create_app(settings: OrgAuthSettings, *, server: bool) -> FastAPI:
    configure_logging(settings)
    auth = OrgAuth(settings)
    docs = settings.docs_are_enabled
    openapi_url = f"{settings.api_prefix}/openapi.json"
    app = FastAPI(
        title="orgauth",
        version=__version__,
        description="Authentication, sessions and organizations.",
        lifespan=_server_lifespan(auth) if server else auth.lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=openapi_url if docs else None,
        # Starlette would answer "/users/me/" with a redirect to an absolute URL built from
        # the request's Host header; orgauth's routes have one spelling, the rest is 404.
        redirect_slashes=False,
    )
    auth.install(app)  # first: routes are matched in order, and /health and /users/me are hot
    if docs:
        install_docs(app, openapi_url=openapi_url, title="orgauth")
    install_standalone_error_handlers(app)
    return app


def _server_lifespan(
    auth: OrgAuth,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with auth.lifespan(app):
            freeze_startup_objects()
            yield

    return lifespan
