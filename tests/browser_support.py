"""Browser tests: Playwright driving Debian's chromium (never `playwright install`), pages shaped like the phones and
desks that use the app, screenshots under test-artifacts/, and uvicorn serving an ASGI app on a loopback port.

tests/conftest.py registers the fixtures (`pytest_plugins`); a test module imports the helpers:

    from tests.browser_support import new_page, serve_app

    def test_desk(phone_page: Page, screenshot: Screenshot) -> None:
        with serve_app(app) as base:
            phone_page.goto(f"{base}/desk")
            screenshot(phone_page)

Without chromium (`make browser` installs it with apt-get) every test that asks for `browser` skips, saying so."""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts" / "screenshots"

# DUTIES_CHROMIUM points elsewhere; otherwise Debian's wrapper, then whatever chromium is on PATH.
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
NOT_INSTALLED = (
    "chromium is not installed (looked for {looked}): run `make browser` (apt-get install chromium fonts-noto-cjk)"
)

# The DingTalk in-app browser on an iPhone, as the duty officers open their links.
DINGTALK_IOS_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 "
    "AliApp(DingTalk/7.6.0) com.laiwang.DingTalk/35288426 Channel/201200 language/zh-Hans-CN UT4Aplus/0.0.6 WK"
)
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": DINGTALK_IOS_UA,
}
DESK: dict[str, Any] = {"viewport": {"width": 1366, "height": 900}}
COMMON: dict[str, Any] = {"locale": "zh-CN", "timezone_id": "Asia/Shanghai"}
TIMEOUT_MS = 10_000  # a step that takes longer than this on loopback is a failure, not something to wait out

# Font families that carry Chinese glyphs; `fonts_for` names the ones chromium actually used.
CJK_FAMILIES = ("CJK", "Source Han", "WenQuanYi", "Droid Sans Fallback", "Noto Sans SC", "Noto Serif SC")

Screenshot = Callable[..., Path]


def find_chromium() -> str | None:
    """The chromium executable to drive, or None when there is none."""
    override = os.environ.get("DUTIES_CHROMIUM")
    for candidate in (override,) if override else CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless chromium per test module; skips every browser test when it is missing or will not start.

    Not per session: Playwright's sync API keeps an event loop running in the main thread while it is open, and
    later tests that use asyncio (Prefect's client, asyncio.run) would find it and fail.
    """
    executable = find_chromium()
    if executable is None:
        looked = os.environ.get("DUTIES_CHROMIUM") or ", ".join(CHROMIUM_CANDIDATES)
        pytest.skip(NOT_INSTALLED.format(looked=looked))
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        except Exception as exc:  # a browser that will not start: skip, with the reason
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            pytest.skip(f"chromium at {executable} did not start ({first}); run `make browser` to (re)install it")
        yield launched
        launched.close()


@contextmanager
def new_page(browser: Browser, *, phone: bool, base_url: str | None = None) -> Iterator[Page]:
    """A page in its own context: a phone in DingTalk (390x844 @3x, touch) or a desk (1366x900), both zh-CN in
    Asia/Shanghai. With `base_url`, `page.goto("/path")` is relative to it. The context closes on exit."""
    options = {**COMMON, **(PHONE if phone else DESK)}
    if base_url is not None:
        options["base_url"] = base_url
    context = browser.new_context(**options)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def phone_page(browser: Browser) -> Iterator[Page]:
    with new_page(browser, phone=True) as page:
        yield page


@pytest.fixture
def desk_page(browser: Browser) -> Iterator[Page]:
    with new_page(browser, phone=False) as page:
        yield page


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """test-artifacts/screenshots/ at the repository root (ignored by git), kept after the run for people to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def screenshot(artifacts_dir: Path, request: pytest.FixtureRequest) -> Screenshot:
    """`screenshot(page)` or `screenshot(page, "after-confirm")`: a full-page PNG named after the test; returns it."""

    def take(page: Page, label: str = "") -> Path:
        name = re.sub(r"[^\w.-]+", "_", request.node.name).strip("_") + (f"-{label}" if label else "")
        path = artifacts_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def fonts_for(page: Page, selector: str) -> list[str]:
    """The font families chromium used to draw the text of the first element matching `selector` (via CDP)."""
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument")["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        assert node, f"nothing matches {selector!r}"
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
        return [font["familyName"] for font in fonts if font.get("glyphCount", 0) > 0]
    finally:
        cdp.detach()


@contextmanager
def serve_app(app: Any, *, startup_timeout: float = 10.0) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread on a free 127.0.0.1 port; yield its base URL, then stop it.

    The socket is bound here and handed to uvicorn, so no other process can take the port in between."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="auto"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"uvicorn-{port}")
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        thread.join(0.02)  # wait for uvicorn to start serving, without sleeping blind
    try:
        if not server.started:
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port} within {startup_timeout}s")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
