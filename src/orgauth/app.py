"""create_app(settings): the standalone orgauth server."""

from __future__ import annotations

from fastapi import FastAPI

from orgauth._version import __version__
from orgauth.api.docs import install_docs
from orgauth.api.errors import install_standalone_error_handlers
from orgauth.extension import OrgAuth
from orgauth.logs import configure_logging
from orgauth.settings import OrgAuthSettings, load_settings


def create_app(settings: OrgAuthSettings | None = None) -> FastAPI:
    """Build the standalone app: every orgauth route, ``/health`` and (optionally) the docs."""
    settings = settings if settings is not None else load_settings()
    configure_logging(settings)
    auth = OrgAuth(settings)
    docs = settings.docs_are_enabled
    openapi_url = f"{settings.api_prefix}/openapi.json"
    app = FastAPI(
        title="orgauth",
        version=__version__,
        description="Authentication, sessions and organizations.",
        lifespan=auth.lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=openapi_url if docs else None,
    )
    auth.install(app)  # first: routes are matched in order, and /health and /users/me are hot
    if docs:
        install_docs(app, openapi_url=openapi_url, title="orgauth")
    install_standalone_error_handlers(app)
    return app


def create_app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` (used by ``orgauth serve``)."""
    return create_app(load_settings())
