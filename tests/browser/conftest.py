"""Fixtures for the plugin in Chromium: the browser, the relay server, the pages to close."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from playwright.async_api import Browser, async_playwright

from tests.browser.plugin_page import PluginPage, RelayServer, launch_chromium
from tests.fakes.openai_api import FakeOpenAI

RULES = """CONTEXT_MESSAGE = "You are helpful."
REPLY_TO = [
    ("111", "222"),
    ("*", "333"),
    ("*", "334"),
    ("*", "335"),
]
"""


# One browser for the module (starting Playwright and Chromium takes about two seconds), so every
# fixture and test here runs on the module's event loop.
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium() -> AsyncIterator[Browser]:
    """A headless system Chromium driven by Playwright."""
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="module")
async def relay(tmp_path: Path) -> AsyncIterator[RelayServer]:
    """The relay server and its fake LLM; tests start and stop the server themselves."""
    llm = FakeOpenAI()
    await llm.start()
    server = RelayServer(tmp_path, llm, RULES)
    try:
        yield server
    finally:
        await server.stop()
        await llm.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def pages() -> AsyncIterator[list[PluginPage]]:
    """Pages a test opened: closed afterwards, and none may have thrown an uncaught error."""
    opened: list[PluginPage] = []
    yield opened
    for page in opened:
        errors = page.errors
        await page.close()
        assert errors == [], f"uncaught errors in the page: {errors}"
