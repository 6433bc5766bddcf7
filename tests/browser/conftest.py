"""Fixtures for tests in a real browser: Debian's chromium driven by Playwright, against
the five services and a gateway served by uvicorn on a free port.

Playwright drives the machine's own browser through ``executable_path`` and never
downloads one. Without /usr/bin/chromium (or Playwright) the tests skip, unless
``IOT_TEST_REQUIRE_BROWSER=1`` (as in CI) makes that a failure. Each test's screenshots
go to ``build/browser-screenshots/<test>/`` as artefacts (build/ is ignored by git).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from iotkit.config import Settings
from tests.conftest import Backend, Suite, suite_with_gateway

CHROMIUM = Path(os.environ.get("IOT_TEST_CHROMIUM", "/usr/bin/chromium"))
# Headless and quiet: no GPU, no QUIC, no first-run pages, and no network calls of the
# browser's own (updates, sync, field trials) in a test or in CI.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Chat's start (its language model) is the slowest: only the chat tests ask for it.
CONSOLE_SERVICES = ("auth", "devices", "telemetry", "analytics")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "browser-screenshots"
# Long enough for a chart's first draw on a busy CI machine, short enough to fail fast.
TIMEOUT_MS = 15_000


def _missing(reason: str) -> None:
    if os.environ.get("IOT_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}, and IOT_TEST_REQUIRE_BROWSER=1 requires a browser")
    pytest.skip(f"{reason}: install Debian's chromium (apt-get install chromium) to run them")


@dataclass
class Console:
    """A browser page on the console, what it logged as errors, and its screenshots."""

    page: Any
    base_url: str
    http: httpx.AsyncClient
    suite: Suite
    shots: Path
    errors: list[str] = field(default_factory=list)
    # The page's own calls of the API, answered or not, in order: shown beside a failure
    # (a 401 is not an error above, and a screen that never shows its answer says no more).
    calls: list[str] = field(default_factory=list, repr=False)

    async def open(self, route: str = "") -> None:
        """Load the console at ``#<route>``."""
        await self.page.goto(f"{self.base_url}/#{route}")

    def forgive(self, status: int) -> None:
        """Drop the failed loads of ``status`` logged so far: the browser logs an answer
        the test asked for (a refused sign-in, a rejected form) as an error."""
        self.errors[:] = [error for error in self.errors if f"status of {status} " not in error]

    async def screenshot(self, name: str) -> None:
        """Save the page as ``<name>.png`` among the test's artefacts."""
        self.shots.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)


def _api_call(request: Any) -> str | None:
    """``METHOD /v1/path`` of a page's call of the API, or None for anything else."""
    path = urlsplit(request.url).path
    return f"{request.method} {path}" if path.startswith("/v1/") else None


async def _record_answer(calls: list[str], response: Any) -> None:
    call = _api_call(response.request)
    if call is None:
        return
    index = len(calls)
    body = response.request.post_data or ""
    # What the page sent too, but never a password or token (sign-in, its reset, refresh).
    sent = f" {body[:200]}" if body and "/v1/auth/" not in call else ""
    calls.append(f"{call}{sent} -> {response.status}")
    if response.status >= 400 and "event-stream" not in response.headers.get("content-type", ""):
        with contextlib.suppress(Exception):  # the page may have gone meanwhile
            calls[index] += f" {(await response.text())[:300]}"


def _record_failure(calls: list[str], request: Any) -> None:
    call = _api_call(request)
    if call is not None:
        calls.append(f"{call} -> failed: {request.failure}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed browser test's report lists the page's calls of the API and their answers."""
    report = yield
    console = getattr(item, "funcargs", {}).get("console")
    if report.failed and report.when == "call" and isinstance(console, Console):
        report.sections.append(("page's API calls", "\n".join(console.calls) or "(none)"))
    return report


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless chromium, one per test (each test has its own event loop)."""
    if not CHROMIUM.is_file():
        _missing(f"browser tests need {CHROMIUM}")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _missing("browser tests need Playwright for Python (the dev extras)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def console(
    browser: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Console]:
    """The suite on SQLite with a gateway, and a fresh browser page; fails the test when
    the page logged a JavaScript error or a Content-Security-Policy violation. Parametrize
    it indirectly with a dict to change the suite's settings (``access_token_ttl``), and
    with ``services`` to start others than :data:`CONSOLE_SERVICES`."""
    backend = Backend("sqlite", Settings(data_dir=tmp_path / "data"), "")
    changes: dict[str, Any] = dict(getattr(request, "param", {}))
    services = changes.pop("services", CONSOLE_SERVICES)
    async with suite_with_gateway(backend, services, **changes) as (suite, http):
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = await context.new_page()
        shots = SCREENSHOTS / re.sub(r"[^\w.-]+", "_", request.node.name)
        opened = Console(page, str(http.base_url).rstrip("/"), http, suite, shots)

        def console_error(message: Any) -> None:
            # A 401 is logged by the browser as a failed load; the console handles it.
            if message.type == "error" and "401" not in message.text:
                opened.errors.append(f"console error: {message.text}")

        page.on("pageerror", lambda error: opened.errors.append(f"page error: {error}"))
        page.on("console", console_error)
        page.on("response", lambda response: _record_answer(opened.calls, response))
        page.on("requestfailed", lambda call: _record_failure(opened.calls, call))
        try:
            yield opened
        finally:
            await context.close()
        assert opened.errors == [], "the page logged errors"
