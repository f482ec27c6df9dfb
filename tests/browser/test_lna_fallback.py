"""The plugin in a Chromium that enforces Local Network Access and refuses it the permission.

This is what Discord's client is heading for (issue 15): the page https://discord.com may not open
a WebSocket (or a fetch) to 127.0.0.1, and Discord's main process denies the permission without a
prompt. BetterDiscord's `BdApi.Net.fetch` is made outside the page (here by `NetBridge`, from
Python), so it still reaches the server, and the plugin must fall back to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, async_playwright

from tests.browser.plugin_page import LNA_ARGS, SECRET, PluginPage, RelayServer, launch_chromium

pytestmark = pytest.mark.asyncio(loop_scope="module")  # the module's browser lives on that loop

HOLD_SECONDS = 3.5


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium() -> AsyncIterator[Browser]:
    """Headless system Chromium with Local Network Access enforced for fetch and WebSockets."""
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright, LNA_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(
    chromium: Browser, pages: list[PluginPage], settings: dict[str, Any]
) -> PluginPage:
    """https://discord.com/app without the Local Network Access permission, the plugin started."""
    page = await PluginPage.open(chromium, settings, local_network=False)
    pages.append(page)
    return page


def echo(text: str) -> str:
    return f"[auto-reply] echo: {text} [turns=1]"


class Probe:
    """A tiny local HTTP/WebSocket server that counts every TCP connection it accepts."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        self.stream_ended = False
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._websocket)
        app.router.add_route("*", "/echo", self._echo)
        app.router.add_get("/stream", self._stream)
        app.router.add_get("/hold", self._hold)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]
        protocol_factory = server._protocol_factory  # count connections before any HTTP is read

        def counting_factory() -> Any:
            self.connections += 1
            return protocol_factory()

        server._protocol_factory = counting_factory

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.close()
        return socket

    async def _echo(self, request: web.Request) -> web.Response:
        body = await request.text()
        seen = {"method": request.method, "headers": dict(request.headers), "body": body}
        self.requests.append(seen)
        return web.json_response(seen)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        self.stream_ended = False
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        await response.write(b'{"n": 1}\n')
        await asyncio.sleep(0.5)
        self.stream_ended = True
        await response.write(b'{"n": 2}\n')
        await response.write_eof()
        return response

    async def _hold(self, request: web.Request) -> web.Response:
        await asyncio.sleep(HOLD_SECONDS)
        return web.Response(text="held")


@pytest_asyncio.fixture(loop_scope="module")
async def probe() -> AsyncIterator[Probe]:
    server = Probe()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_chromium_refuses_loopback_to_discord_com_without_the_permission(
    chromium: Browser, pages: list[PluginPage], probe: Probe
) -> None:
    """The block is real: what tests/plugin/fake-net.js's LNA switch reproduces, measured."""
    page = await open_page(chromium, pages, {"enabled": False})
    seen = await page.page.evaluate(
        """async (port) => {
            const socket = new WebSocket(`ws://127.0.0.1:${port}/ws`);
            const events = [];
            const initial = socket.readyState;
            const close = await new Promise((resolve) => {
                socket.onopen = () => events.push("open");
                socket.onerror = () => events.push(`error ${socket.readyState}`);
                socket.onclose = (event) => resolve(event);
            });
            events.push(`close ${close.code}`);
            let fetched;
            try {
                fetched = `status ${(await fetch(`http://127.0.0.1:${port}/echo`)).status}`;
            } catch (error) {
                fetched = `${error.constructor.name}: ${error.message}`;
            }
            const permission = await navigator.permissions.query({name: "local-network-access"});
            return {initial, events, wasClean: close.wasClean, reason: close.reason,
                    readyState: socket.readyState, fetched, permission: permission.state};
        }""",
        probe.port,
    )
    assert seen == {
        "initial": 0,  # CONNECTING: the constructor does not fail
        "events": ["error 3", "close 1006"],  # CLOSED already in the error event
        "wasClean": False,
        "reason": "",
        "readyState": 3,
        "fetched": "TypeError: Failed to fetch",
        "permission": "denied",  # refused without a prompt, as Discord's client does
    }
    await asyncio.sleep(0.1)
    assert probe.connections == 0, "nothing reached the server"


async def test_net_fetch_reaches_loopback_from_outside_the_page(
    chromium: Browser, pages: list[PluginPage], probe: Probe
) -> None:
    """The page's BdApi.Net.fetch: no Origin, streamed, timed out and aborted as BetterDiscord's."""
    page = await open_page(chromium, pages, {"enabled": False})
    await page.context.expose_function("darProbeEnded", lambda: probe.stream_ended)
    base = f"http://127.0.0.1:{probe.port}"
    seen = await page.page.evaluate(
        """async (base) => {
            const Net = BdApi.Net;
            const headers = {Authorization: "Bearer s3cret", Origin: "https://discord.com"};
            const body = '{"frames": []}';
            const response = await Net.fetch(`${base}/echo`, {method: "POST", body, headers});
            const echoed = await response.json();
            const reader = (await Net.fetch(`${base}/stream`)).body.getReader();
            const first = new TextDecoder().decode((await reader.read()).value);
            const firstBeforeEnd = !(await globalThis.darProbeEnded());
            while (!(await reader.read()).done);
            const controller = new AbortController();
            const aborted = Net.fetch(`${base}/hold`, {signal: controller.signal})
                .then(() => "resolved", (error) => error.name);
            setTimeout(() => controller.abort(), 100);
            const outcome = (promise) => promise.then(async (r) => `ok ${await r.text()}`,
                (error) => `error ${error.message}`);
            const [byDefault, long, short] = await Promise.all([
                outcome(Net.fetch(`${base}/hold`)),
                outcome(Net.fetch(`${base}/hold`, {timeout: 10000})),
                outcome(Net.fetch(`${base}/hold`, {timeout: 300})),
            ]);
            return {echoed, first, firstBeforeEnd, aborted: await aborted, byDefault, long, short};
        }""",
        base,
    )
    headers = {name.lower(): value for name, value in seen["echoed"]["headers"].items()}
    assert seen["echoed"]["method"] == "POST" and seen["echoed"]["body"] == '{"frames": []}'
    assert headers["authorization"] == "Bearer s3cret"
    assert "origin" not in headers, "Net.fetch sends no Origin"
    assert headers["transfer-encoding"] == "chunked"
    assert "user-agent" not in headers
    assert seen["first"] == '{"n": 1}\n' and seen["firstBeforeEnd"] is True
    assert seen["aborted"] == "AbortError"
    assert seen["byDefault"] == "error Request timed out"  # 3 s of silence with the default
    assert seen["long"] == "ok held"
    assert seen["short"] == "error Request timed out"
    assert page.net.in_flight == 0
    assert [call["outcome"] for call in page.net.calls][:2] == ["response", "response"]


async def test_the_plugin_falls_back_to_http_and_answers(
    chromium: Browser, relay: RelayServer, pages: list[PluginPage]
) -> None:
    """With every loopback WebSocket refused, a watched message is answered over HTTP."""
    await relay.start()
    page = await open_page(chromium, pages, {**relay.plugin_settings, "transport": "auto"})
    await page.wait_for("(t) => t.plugin.status === 'connected'", "the welcome over HTTP")
    assert await page.evaluate("(t) => t.plugin.transport") == "http"
    events = await page.evaluate("(t) => t.sockets.map((socket) => socket.events)")
    assert events and all(each == ["error", "close 1006"] for each in events), events

    watched = await page.receive(channel_id="222", author={"id": "111", "username": "friend"})
    await page.receive(channel_id="999", author={"id": "111"}, content="SECRET unwatched")
    replies = await page.wait_for("(t) => t.replies().length >= 1 && t.replies()", "the reply")
    assert replies == [{"channel": "222", "content": echo("hello")}]
    forwarded = await page.evaluate("(t) => t.forwarded().filter((frame) => !frame.self)")
    assert [frame["id"] for frame in forwarded] == [watched]
    assert {frame["socket"] for frame in forwarded} == {"http"}
    await page.wait_for("(t) => t.plugin.outbox.size === 0", "every forwarded frame acked")
    sent = await page.wait_for(
        "(t) => t.httpSent().find((frame) => frame.type === 'sent')", "the `sent` frame"
    )
    assert sent["ok"] is True
    assert "SECRET" not in str(await page.evaluate("(t) => t.httpSent()"))
    for call in page.net.calls:
        headers = {name.lower(): value for name, value in call["headers"].items()}
        assert "origin" not in headers
        assert SECRET in headers.get("authorization", ""), call
    # Every call names its own finite timeout (a held poll outlives the 3 s default).
    assert await page.evaluate("(t) => t.netCalls.every((c) => Number.isFinite(c.timeout))")
