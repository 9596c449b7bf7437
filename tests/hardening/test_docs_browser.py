"""Swagger UI and ReDoc render in a real headless Chromium under the strict CSP, offline.

Needs Debian's ``chromium`` (CI installs it) and the ``playwright`` Python package (driver
only: the browser is the system one, nothing is downloaded).
"""

from __future__ import annotations

import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import ServerFactory, server_environment

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("docs-server")
    factory = ServerFactory(directory)
    environment = server_environment(
        database_url=f"sqlite+aiosqlite:///{directory / 'docs.db'}", csp_mode="strict"
    )
    try:
        (started,) = factory.start(environment)
        yield started.url
    finally:
        factory.stop_all()


def _browser_messages(url: str, ready_selector: str) -> tuple[int, list[str]]:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda msg: (
                    problems.append(msg.text)
                    if msg.type in ("error", "warning") or "Content Security Policy" in msg.text
                    else None
                ),
            )
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            # Any request leaving the server would be a CDN dependency.
            page.on(
                "request",
                lambda req: (
                    problems.append(f"external request {req.url}")
                    if not req.url.startswith(url.rsplit("/", 1)[0])
                    and not req.url.startswith(("data:", "blob:"))
                    else None
                ),
            )
            # An asset the page asks for and the server does not have (/favicon.ico, say).
            page.on(
                "response",
                lambda res: (
                    problems.append(f"HTTP {res.status} {res.url}") if res.status >= 400 else None
                ),
            )
            page.goto(url, wait_until="networkidle")
            page.wait_for_selector(ready_selector, timeout=20_000)
            count = page.locator(ready_selector).count()
            page.wait_for_load_state("networkidle")  # the icon is fetched after rendering
        finally:
            browser.close()
    return count, problems


@pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (CI installs it)",
)
def test_swagger_ui_renders_every_operation_without_csp_violations(server: str) -> None:
    with urllib.request.urlopen(server + "/api/v1/openapi.json") as response:  # noqa: S310
        import json

        spec = json.loads(response.read())
    operations = sum(
        1
        for methods in spec["paths"].values()
        for method in methods
        if method in {"get", "post", "put", "patch", "delete"}
    )
    count, problems = _browser_messages(server + "/docs", ".opblock")
    csp = [p for p in problems if "Content Security Policy" in p or "Refused" in p]
    assert csp == []
    assert [p for p in problems if p.startswith("external request")] == []
    assert [p for p in problems if p.startswith("HTTP ")] == []
    assert count == operations


@pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (CI installs it)",
)
def test_redoc_renders_without_csp_violations(server: str) -> None:
    count, problems = _browser_messages(server + "/redoc", "[data-section-id]")
    csp = [p for p in problems if "Content Security Policy" in p or "Refused" in p]
    assert csp == []
    assert [p for p in problems if p.startswith("external request")] == []
    assert [p for p in problems if p.startswith("HTTP ")] == []
    assert count > 10
