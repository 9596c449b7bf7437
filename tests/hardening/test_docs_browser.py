"""Swagger UI and ReDoc render in a real headless Chromium under the strict CSP, offline.

Needs Debian's ``chromium`` (CI installs it) and the ``playwright`` Python package (driver
only: the browser is the system one, nothing is downloaded).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("docs-server")
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'docs.db'}",
        "SECRET_KEY": "docs-browser-test-key-0123456789abcdefghijkl",
        "CSP_MODE": "strict",
        "EMAIL_BACKEND": "file",
        "EMAIL_FILE_DIR": str(directory / "mail"),
    }
    cli = Path(sys.executable).with_name("orgauth")
    process = subprocess.Popen(
        [str(cli), "serve", "--port", str(port)],
        env=env,
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=1):  # noqa: S310
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


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
