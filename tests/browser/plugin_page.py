"""The real plugin in a Chromium page whose origin is https://discord.com; the relay server.

The page never touches the network: Playwright answers every request for https://discord.com
from memory (the page itself, the fake BdApi, the plugin file), and the host resolver maps every
other name to nothing. The plugin's websocket goes to the real server on 127.0.0.1 and carries the
page's own Origin, exactly as in Discord's client. Its `BdApi.Net.fetch` is made here, outside the
page, as BetterDiscord's preload makes it (`NetBridge`).
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Playwright, Route
from yarl import URL

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
# Chromium's Local Network Access checks, for fetch and for WebSockets. Both are on by default in
# Debian's Chromium 156 (a page on https://discord.com without the permission cannot reach
# 127.0.0.1); named anyway so that a Chromium where they are not the default enforces them too.
# --disable-features with the same names lets the socket through: the names are live.
LNA_ARGS = ["--enable-features=LocalNetworkAccessChecks,LocalNetworkAccessChecksWebSockets"]
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


async def launch_chromium(playwright: Playwright, extra_args: list[str] | None = None) -> Browser:
    """Headless system Chromium; Playwright never downloads a browser of its own here."""
    args = LAUNCH_ARGS + (extra_args or [])
    return await playwright.chromium.launch(executable_path=chromium_path(), args=args)


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


REDIRECT_CODES = {301, 302, 307, 308}
BODYLESS_STATUS_CODES = {101, 204, 205, 304}
TIMED_OUT = "Request timed out"


class NetBridge:
    """`BdApi.Net.fetch` for a page, made from Python as BetterDiscord's preload makes it in Node.

    The page's half (plugin-page.js `netFetch`) calls `darNetFetch`, then `darNetRead` for each
    chunk of the body, and `darNetAbort` when its signal aborts. As in BetterDiscord
    (src/electron/preload/api/fetch.ts): outside the page's network stack, so no LNA, no CORS and no
    Origin; only the headers given (aiohttp's own User-Agent/Accept/Accept-Encoding are left out);
    the body sent chunked; `timeout` (ms, 0 = none) an inactivity timeout, before the headers and
    between chunks (aiohttp's sock_read), failing with "Request timed out"; 301/302/307/308
    followed with the same method, the original query copied onto the absolute Location, up to
    `maxRedirects`. `calls` records each request: url, method, headers, body, status, outcome,
    and the text of the body as it was read.
    """

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self._session: aiohttp.ClientSession | None = None
        self._pending: dict[int, asyncio.Task[aiohttp.ClientResponse]] = {}
        self._open: dict[int, tuple[aiohttp.ClientResponse, dict[str, Any], Any]] = {}

    async def install(self, context: BrowserContext) -> None:
        await context.expose_function("darNetFetch", self.fetch)
        await context.expose_function("darNetRead", self.read)
        await context.expose_function("darNetAbort", self.abort)

    @property
    def in_flight(self) -> int:
        return len(self._pending) + len(self._open)

    async def fetch(self, request: dict[str, Any]) -> dict[str, Any]:
        call = {key: request[key] for key in ("url", "method", "headers", "body", "timeout")}
        call.update(status=None, outcome="pending", error=None, text="")
        self.calls.append(call)
        task = asyncio.create_task(self._request(request))
        self._pending[request["id"]] = task
        try:
            await asyncio.wait({task})
        finally:
            self._pending.pop(request["id"], None)
        try:
            if task.cancelled():
                raise RuntimeError("Request was aborted")
            response = task.result()
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            call.update(outcome="error", error=TIMED_OUT)
            raise RuntimeError(TIMED_OUT) from exc
        except Exception as exc:
            call.update(outcome="error", error=str(exc))
            raise
        call.update(status=response.status, outcome="response")
        if response.status in BODYLESS_STATUS_CODES:
            response.release()
        else:
            self._open[request["id"]] = (response, call, codecs.getincrementaldecoder("utf-8")())
        return {
            "status": response.status,
            "statusText": response.reason or "",
            "headers": dict(response.headers),
            "url": str(response.url),
            "redirected": bool(response.history) or call.get("redirected", False),
        }

    async def _request(self, request: dict[str, Any]) -> aiohttp.ClientResponse:
        if self._session is None:
            skip = ("User-Agent", "Accept", "Accept-Encoding")
            self._session = aiohttp.ClientSession(skip_auto_headers=skip, auto_decompress=False)
        seconds = request["timeout"] / 1000 or None
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)
        url, redirects = request["url"], 0
        while True:
            if not url.startswith(("http:", "https:")):
                raise RuntimeError(f"Unsupported protocol: {url.split(':')[0]}:")
            response = await self._session.request(
                request["method"],
                url,
                headers=request["headers"],
                data=_chunked(request["body"]) if request["body"] is not None else None,
                allow_redirects=False,
                timeout=timeout,
            )
            location = response.headers.get("Location")
            if response.status not in REDIRECT_CODES or request["redirect"] == "manual":
                return response
            if request["redirect"] == "error":
                response.release()
                raise RuntimeError("Failed to fetch")
            if redirects >= request["maxRedirects"]:
                raise RuntimeError(
                    f"Maximum amount of redirects reached ({request['maxRedirects']})"
                )
            if not location:
                return response
            final = URL(location)
            if not final.is_absolute():
                raise RuntimeError(f"Invalid URL: {location}")
            response.release()
            url = str(final.update_query(dict(URL(url).query)))
            redirects += 1
            self.calls[-1]["redirected"] = True

    async def read(self, request_id: int) -> str | None:
        """The next chunk of a body, base64; None at its end (or once aborted)."""
        if request_id not in self._open:
            return None
        response, call, decoder = self._open[request_id]
        try:
            chunk = await response.content.readany()
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            self._close(request_id, error=TIMED_OUT)
            raise RuntimeError(TIMED_OUT) from exc
        except Exception as exc:
            self._close(request_id, error=str(exc))
            raise
        if not chunk:
            self._close(request_id)
            return None
        call["text"] += decoder.decode(chunk)
        return base64.b64encode(chunk).decode("ascii")

    async def abort(self, request_id: int) -> None:
        if request_id in self._pending:
            self._pending[request_id].cancel()
        self._close(request_id, error="Request was aborted")

    def _close(self, request_id: int, error: str | None = None) -> None:
        if request_id in self._open:
            response, call, _ = self._open.pop(request_id)
            call["ended"] = error is None
            if error is not None:
                call["stream_error"] = error
            response.close()

    async def close(self) -> None:
        for task in self._pending.values():
            task.cancel()
        for request_id in list(self._open):
            self._close(request_id, error="closed")
        if self._session is not None:
            await self._session.close()


async def _chunked(body: str) -> Any:
    """The body as a stream, so aiohttp sends it chunked, as BetterDiscord's preload does."""
    yield body.encode("utf-8")


class PluginPage:
    """One Chromium page at `origin` running the plugin; page errors are kept in `errors`."""

    def __init__(self, context: BrowserContext, page: Page, net: NetBridge) -> None:
        self.context = context
        self.page = page
        self.net = net
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    @classmethod
    async def open(
        cls,
        browser: Browser,
        settings: dict[str, Any],
        *,
        origin: str = DISCORD,
        local_network: bool = True,
    ) -> PluginPage:
        """Open `origin`/app with the fake Discord and start the plugin with `settings`.

        With `local_network` False the page is not granted Local Network Access, so (in a Chromium
        enforcing it) its WebSockets and fetches to 127.0.0.1 are refused, as Discord's client
        refuses the permission; `BdApi.Net.fetch` still reaches it.
        """
        context = await browser.new_context()
        # Chromium's Local Network Access: a public site may reach 127.0.0.1 only with this
        # permission. Discord's client must grant it for the plugin's WebSocket to connect.
        if local_network:
            await context.grant_permissions(["local-network-access"], origin=origin)
        net = NetBridge()
        await net.install(context)
        page = await context.new_page()
        await page.route(f"{origin}/**", _serve_page)
        plugin_page = cls(context, page, net)
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
        await self.net.close()


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
