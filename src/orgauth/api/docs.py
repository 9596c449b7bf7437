"""Self-hosted API docs: Swagger UI and ReDoc with assets served from the package.

No CDN and no inline script, so the pages work offline and under the strict docs CSP.
Every page names its icon (Swagger UI's, bundled), so no browser asks for a
``/favicon.ico`` that the app does not serve.
"""

from __future__ import annotations

import html
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(str(files("orgauth") / "static"))
STATIC_PATH = "/docs/static"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
FAVICON_PATH = f"{STATIC_PATH}/swagger-ui/favicon-32x32.png"
_FAVICON_LINK = f'<link rel="icon" type="image/png" href="{FAVICON_PATH}">'

_SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - API docs</title>
<link rel="stylesheet" href="{static}/swagger-ui/swagger-ui.css">
{favicon}
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}" data-oauth2-redirect-url="{redirect}"></div>
<script src="{static}/swagger-ui/swagger-ui-bundle.js"></script>
<script src="{static}/swagger-init.js"></script>
</body>
</html>
"""

_REDOC_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - API reference</title>
{favicon}
</head>
<body>
<redoc spec-url="{openapi}"></redoc>
<script src="{static}/redoc/redoc.standalone.js"></script>
</body>
</html>
"""


def install_docs(app: FastAPI, *, openapi_url: str, title: str) -> None:
    """Serve ``/docs``, ``/redoc`` and their assets from the installed package."""
    values = {
        "title": html.escape(title),
        "openapi": html.escape(openapi_url),
        "static": STATIC_PATH,
        "redirect": OAUTH2_REDIRECT_PATH,
        "favicon": _FAVICON_LINK,
    }
    router = APIRouter(include_in_schema=False)

    @router.get("/docs", response_class=HTMLResponse)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(_SWAGGER_PAGE.format(**values))

    @router.get("/redoc", response_class=HTMLResponse)
    async def redoc() -> HTMLResponse:
        return HTMLResponse(_REDOC_PAGE.format(**values))

    @router.get(OAUTH2_REDIRECT_PATH, response_class=HTMLResponse)
    async def oauth2_redirect() -> HTMLResponse:
        page = (STATIC_DIR / "swagger-ui" / "oauth2-redirect.html").read_text(encoding="utf-8")
        page = page.replace(
            'src="oauth2-redirect.js"', f'src="{STATIC_PATH}/swagger-ui/oauth2-redirect.js"'
        )
        return HTMLResponse(page.replace("<body>", f"<head>{_FAVICON_LINK}</head>\n<body>", 1))

    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="orgauth-docs-static")
