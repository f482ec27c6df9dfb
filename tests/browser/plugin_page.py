"""The real plugin in a Chromium page whose origin is https://discord.com; the relay server.

The page never touches the network: Playwright answers every request for https://discord.com
from memory (the page itself, the fake BdApi, the plugin file), and the host resolver maps every
other name to nothing. The plugin's websocket goes to the real server on 127.0.0.1 and carries the
page's own Origin, exactly as in Discord's client.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Playwright, Route

from server.app import App
from server.config import Settings
from tests.fakes.openai_api import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent.parent
PLUGIN_FILE = ROOT / "plugin" / "discord-auto-reply.plugin.js"
FAKE_BDAPI = ROOT / "tests" / "plugin" / "fake-bdapi.js"
PAGE_SCRIPT = Path(__file__).with_name("plugin-page.js")
DISCORD = "https://discord.com"
SECRET = "browser-test-secret-0123456789abcdef"
FAST_BACKOFF = {"baseMs": 20, "capMs": 100}
# Nothing but loopback: a name that would leave the machine resolves to nothing.
LAUNCH_ARGS = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
PAGE_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Discord</title>
<script src="/fake-bdapi.js"></script><script src="/plugin-page.js"></script>
</head><body></body></html>"""


def chromium_path() -> str:
    """The system Chromium (Debian's `chromium` package), or `$CHROMIUM`; fails if there is none."""
    found = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail(
            "chromium is not installed; the browser tests drive the system Chromium: run "
            "`make system-deps` (apt-get install chromium) or set CHROMIUM=/path/to/chromium",
            pytrace=False,
        )
    return found


async def launch_chromium(playwright: Playwright) -> Browser:
    """Headless system Chromium; Playwright never downloads a browser of its own here."""
    return await playwright.chromium.launch(executable_path=chromium_path(), args=LAUNCH_ARGS)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RelayServer:
    """The real relay (plugin messenger, fake OpenAI) on a fixed port, so it can be restarted."""

    def __init__(self, tmp_path: Path, llm: FakeOpenAI, rules: str) -> None:
        self.port = free_port()
        self.reply_config = tmp_path / "reply_config.py"
        self.reply_config.write_text(rules, encoding="utf-8")
        self.settings = Settings(
            WEBSOCKET_PORT=self.port,
            WEBSOCKET_SECRET=SECRET,
            MESSENGER="plugin",
            LLM_BACKENDS=["openai"],
            OPENAI_BASE_URL=llm.base_url,
            OPENAI_API_KEY=FakeOpenAI.API_KEY,
            LLM_MAX_RETRIES=0,
            TYPING_INTERVAL_SECONDS=0.05,
            TYPING_DELAY_SECONDS=0.0,
            DATABASE=str(tmp_path / "auto_reply.db"),
            COALESCE_SECONDS=0.0,
            REPLY_WHEN="always",  # away mode is tested in tests/test_away_mode.py
        )
        self.app: App | None = None

    @property
    def plugin_settings(self) -> dict[str, Any]:
        """The plugin's settings for this server."""
        return {"host": "127.0.0.1", "port": self.port, "secret": SECRET, "enabled": True}

    async def start(self) -> None:
        self.app = App(self.settings, self.reply_config)
        await self.app.start()

    async def stop(self) -> None:
        if self.app is not None:
            await self.app.stop()
            self.app = None


class PluginPage:
    """One Chromium page at `origin` running the plugin; page errors are kept in `errors`."""

    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.context = context
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    @classmethod
    async def open(
        cls, browser: Browser, settings: dict[str, Any], *, origin: str = DISCORD
    ) -> PluginPage:
        """Open `origin`/app with the fake Discord and start the plugin with `settings`."""
        context = await browser.new_context()
        # Chromium's Local Network Access: a public site may reach 127.0.0.1 only with this
        # permission. Discord's client must grant it for the plugin to connect; here we do.
        await context.grant_permissions(["local-network-access"], origin=origin)
        page = await context.new_page()
        await page.route(f"{origin}/**", _serve_page)
        plugin_page = cls(context, page)
        await page.goto(f"{origin}/app")
        await page.evaluate(
            "(options) => startPlugin(options)", {"settings": settings, "backoff": FAST_BACKOFF}
        )
        return plugin_page

    async def evaluate(self, expression: str, arg: Any = None) -> Any:
        """Evaluate a function of `relayTest` (and `arg`) in the page."""
        return await self.page.evaluate(f"([arg]) => ({expression})(window.relayTest, arg)", [arg])

    async def wait_for(self, expression: str, what: str, arg: Any = None) -> Any:
        """Wait until a function of `relayTest` (and `arg`) is truthy; returns its value."""
        try:
            handle = await self.page.wait_for_function(
                f"([arg]) => ({expression})(window.relayTest, arg)",
                arg=[arg],
                polling=20,
                timeout=8000,
            )
        except Exception as exc:
            state = await self.evaluate("(t) => ({status: t.plugin.status, logs: t.fake.logs})")
            raise AssertionError(f"timed out waiting for {what}; plugin: {state}") from exc
        return await handle.json_value()

    async def receive(self, **fields: Any) -> str:
        """Play a MESSAGE_CREATE from Discord's gateway; returns the message id."""
        return str(await self.evaluate("(t, fields) => t.discord.receive(fields).id", fields))

    async def status(self) -> str:
        return str(await self.evaluate("(t) => t.plugin.status"))

    async def close(self) -> None:
        await self.evaluate("(t) => t.plugin.stop()")
        await self.context.close()


async def _serve_page(route: Route) -> None:
    """Answer every request for the page's origin from memory."""
    path = route.request.url.split("/", 3)[3].split("?")[0]
    files = {
        "fake-bdapi.js": FAKE_BDAPI,
        "plugin-page.js": PAGE_SCRIPT,
        "discord-auto-reply.plugin.js": PLUGIN_FILE,
    }
    if path == "app":
        await route.fulfill(status=200, content_type="text/html", body=PAGE_HTML)
    elif path in files:
        body = files[path].read_text(encoding="utf-8")
        if path == "fake-bdapi.js":  # keep its top-level names out of the page's global scope
            body = f"(() => {{\n{body}\n}})();"
        await route.fulfill(status=200, content_type="text/javascript", body=body)
    else:
        await route.fulfill(status=404, content_type="application/json", body=json.dumps({}))
