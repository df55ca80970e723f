"""A real browser for the console's tests: Debian's Chromium, headless, driven by Playwright.

Playwright's own browser download is not used (nor reachable where these tests run): the tests
launch the system's Chromium by its path. Without it, or without Playwright, the browser tests
skip with one line saying so. Screenshots go to `tests/artifacts/` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    # A closed network refuses Chromium's own connections; these keep it from trying.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def chromium_path() -> str | None:
    """CHROMIUM, else Debian's chromium on the PATH or at /usr/bin/chromium."""
    configured = os.environ.get("CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def required() -> bool:
    """CI sets CONSOLE_BROWSER_TESTS=required: there, a missing browser fails the run."""
    return os.environ.get("CONSOLE_BROWSER_TESTS") == "required"


def missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (make install adds it with the dev dependencies)"
    if chromium_path() is None:
        return "no Chromium to drive (apt-get install -y chromium, or set CHROMIUM to its path)"
    return None


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_FLAGS
        )
        try:
            yield launched
        finally:
            await launched.close()


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{name}.png"
