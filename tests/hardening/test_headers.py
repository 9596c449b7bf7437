"""Security headers on every response (docs/SECURITY.md)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from orgauth.security.headers import API_CSP, DOCS_CSP_RELAXED, DOCS_CSP_STRICT
from tests.support.fixtures import AppClient

COMMON = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/health", 200),
        ("GET", "/api/v1/users/me", 401),
        ("GET", "/no/such/route", 404),
        ("POST", "/api/v1/auth/login", 422),
        ("GET", "/api/v1/openapi.json", 200),
    ],
)
async def test_every_response_carries_the_security_headers(
    app_client: AppClient, method: str, path: str, status: int
) -> None:
    async with app_client() as client:
        response = await client.request(method, path)
    assert response.status_code == status
    for name, value in COMMON.items():
        assert response.headers[name] == value
    assert "permissions-policy" in response.headers
    assert response.headers["content-security-policy"] == API_CSP
    assert "strict-transport-security" not in response.headers  # development
    assert "server" not in response.headers


async def test_docs_pages_get_their_own_policy_and_no_cdn(app_client: AppClient) -> None:
    async with app_client() as client:
        docs = await client.get("/docs")
        redoc = await client.get("/redoc")
    for page in (docs, redoc):
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == DOCS_CSP_STRICT
        assert "cdn" not in page.text.lower()
        assert "<script>" not in page.text  # no inline script
    assert "/docs/static/swagger-ui/swagger-ui-bundle.js" in docs.text


class _Assets(HTMLParser):
    """The URLs a page makes the browser fetch (scripts, stylesheets, icons)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.icons: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        url = values.get("src") if tag == "script" else values.get("href")
        if tag in ("script", "link") and url:
            self.urls.append(url)
            if tag == "link" and values.get("rel") == "icon":
                self.icons.append(url)


@pytest.mark.parametrize("page", ["/docs", "/redoc", "/docs/oauth2-redirect"])
async def test_docs_pages_name_their_icon_and_every_asset_is_served(
    app_client: AppClient, page: str
) -> None:
    # A page without an icon link makes the browser ask for /favicon.ico, a 404.
    async with app_client() as client:
        html = await client.get(page)
        assets = _Assets()
        assets.feed(html.text)
        fetched = {url: await client.get(url) for url in assets.urls}

    assert html.status_code == 200
    [icon] = assets.icons
    assert fetched[icon].headers["content-type"] == "image/png"
    assert {url: r.status_code for url, r in fetched.items()} == dict.fromkeys(assets.urls, 200)


async def test_docs_assets_are_served_from_the_package(app_client: AppClient) -> None:
    async with app_client() as client:
        bundle = await client.get("/docs/static/swagger-ui/swagger-ui-bundle.js")
        redoc = await client.get("/docs/static/redoc/redoc.standalone.js")
        license_file = await client.get("/docs/static/swagger-ui/LICENSE")
    assert bundle.status_code == 200
    assert len(bundle.content) > 100_000
    assert redoc.status_code == 200
    assert len(redoc.content) > 100_000
    assert license_file.status_code == 200


async def test_relaxed_mode_loosens_only_the_docs_policy(app_client: AppClient) -> None:
    async with app_client(csp_mode="relaxed") as client:
        docs = await client.get("/docs")
        api = await client.get("/health")
    assert docs.headers["content-security-policy"] == DOCS_CSP_RELAXED
    assert api.headers["content-security-policy"] == API_CSP


async def test_disabled_mode_sends_no_csp(app_client: AppClient) -> None:
    async with app_client(csp_mode="disabled") as client:
        response = await client.get("/health")
    assert "content-security-policy" not in response.headers
    assert response.headers["x-frame-options"] == "DENY"


async def test_hsts_only_in_production(app_client: AppClient) -> None:
    async with app_client(
        environment="production",
        secret_key="Kq3v9Zt1xW7pLm2Rb8Nc4Hd6Jf0Gs5Ya",
        bcrypt_rounds=12,
    ) as client:
        response = await client.get("/health")
        docs = await client.get("/docs")
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert docs.status_code == 404  # docs are off by default in production
