"""Harness for the browser tests: Debian's chromium driven by Playwright (never a downloaded
browser), the real server with its fakes, and screenshots kept for people to look at."""
from __future__ import annotations

import os
import shutil
import struct
import time
import zlib
from pathlib import Path

import pytest

from bot.desk.console_auth import hash_password
from tests.conftest import IN_CI

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}
OPERATOR, PASSWORD = "王", "browser test password"
SCREENS_ENV = "BOT_TEST_SCREENS_DIR"  # also copy every screenshot here (for a person to look at)


def require_chromium() -> None:
    """Fail under CI=true (never skip silently) when chromium or Playwright is missing."""
    missing = [what for what, ok in (("chromium (apt-get install chromium)", os.path.exists(CHROMIUM)),
                                     ("playwright (pip)", _has_playwright())) if not ok]
    if missing:
        message = f"browser tests need {', '.join(missing)}"
        pytest.fail(message) if IN_CI else pytest.skip(message)


def _has_playwright() -> bool:
    """Whether the Playwright package imports."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


def account_lines() -> str:
    """The `[[ops.accounts]]` TOML of the test operator."""
    return f'\n[[ops.accounts]]\nname = "{OPERATOR}"\npassword_hash = "{hash_password(PASSWORD)}"\n'


def shoot(page, folder: Path, name: str) -> Path:
    """A full-page screenshot in `folder` (copied to $BOT_TEST_SCREENS_DIR when set)."""
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get(SCREENS_ENV)
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / path.name)
    return path


def no_sideways_scroll(page) -> bool:
    """The page is never wider than the window."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def log_in(page, base_url: str, user: str = OPERATOR, password: str = PASSWORD):
    """Fill and send the login form; the response of the form's POST."""
    page.goto(f"{base_url}/ops/login")
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", password)
    with page.expect_response(lambda r: r.url.endswith("/ops/login") and r.request.method == "POST") as sent:
        page.click("button.primary")
    page.wait_for_load_state()
    return sent.value


def wait_for(check, timeout: float, what: str, state=lambda: ""):
    """Poll `check` until truthy (returned); AssertionError (with `state()`) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}: {state()}")
        time.sleep(0.2)
    return value


def png(width: int = 240, height: int = 160) -> bytes:
    """A small PNG "screenshot": a grey page with a blue title bar and a missing row in red."""
    def pixel(x: int, y: int) -> bytes:
        """The colour at (x, y)."""
        if y < height // 6:
            return b"\x1d\x5f\xd1"
        if height // 2 <= y < height // 2 + 12 and 16 <= x < width - 16:
            return b"\xd9\x2d\x20"
        return b"\xf2\xf3\xf5"
    rows = b"".join(b"\x00" + b"".join(pixel(x, y) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        """One PNG chunk with its CRC."""
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
