"""The real plugin in a real Chromium, as Discord's client runs it, against the real relay server.

The Node tests (tests/plugin) cover the plugin in depth; these check what only a browser engine
decides: its WebSocket (a refused connection, `close()` from `onerror`, close codes) and the
Origin header the page sends, which the server checks.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

import pytest
from playwright.async_api import Browser

from tests.browser.plugin_page import SECRET, PluginPage, RelayServer

pytestmark = pytest.mark.asyncio(loop_scope="module")  # the module's browser lives on that loop


def echo(text: str) -> str:
    """The fake LLM's reply to `text` as the first turn of its pair, as the relay posts it."""
    return f"[auto-reply] echo: {text} [turns=1]"


def echoed(content: str) -> str | None:
    """The text the fake LLM echoed in a reply posted by the relay, whatever its turn."""
    match = re.fullmatch(r"\[auto-reply\] echo: (.*) \[turns=\d+\]", content, re.DOTALL)
    return match[1] if match else None


async def follow_up(
    page: PluginPage, caplog: pytest.LogCaptureFixture, pairs: list[tuple[str, str]], label: str
) -> list[str]:
    """One more message in each pair ([user, channel]), and all their replies, as the Node test's
    followUp (tests/plugin/server-restart.test.js): once the server has logged a pair's earlier
    reply, a message it took twice would get a reply of its own before the new one's, so what has
    not come by then will not come."""
    deadline = time.monotonic() + 8
    for user, channel in pairs:
        logged = f"replied to user {user} in channel {channel} "
        while not any(logged in record.getMessage() for record in caplog.records):
            assert time.monotonic() < deadline, f"the server never logged: {logged}"
            await asyncio.sleep(0.02)
    texts = []
    for user, channel in pairs:
        texts.append(f"{label} in {channel}")
        await page.receive(channel_id=channel, author={"id": user}, content=texts[-1])
    await page.wait_for(
        "(t, texts) => texts.every((text) => t.replies().some((r) => r.content.includes(text)))",
        f"the replies to {texts}",
        texts,
    )
    return texts


async def open_plugin(
    chromium: Browser, relay: RelayServer, pages: list[PluginPage], **kwargs: str
) -> PluginPage:
    page = await PluginPage.open(chromium, relay.plugin_settings, **kwargs)
    pages.append(page)
    return page


async def test_messages_are_forwarded_and_answered(
    chromium: Browser, relay: RelayServer, pages: list[PluginPage]
) -> None:
    await relay.start()
    page = await open_plugin(chromium, relay, pages)
    await page.wait_for("(t) => t.plugin.status === 'connected'", "the welcome")
    hello = await page.evaluate("(t) => t.sockets[0].sent[0]")
    assert hello["type"] == "hello" and hello["secret"] == SECRET

    watched = await page.receive(channel_id="222", author={"id": "111", "username": "friend"})
    await page.receive(channel_id="999", author={"id": "111"}, content="SECRET unwatched")
    replies = await page.wait_for("(t) => t.replies().length >= 1 && t.replies()", "the reply")
    assert replies == [{"channel": "222", "content": echo("hello")}]
    forwarded = await page.evaluate("(t) => t.forwarded().filter((frame) => !frame.self)")
    assert [frame["id"] for frame in forwarded] == [watched]
    await page.wait_for("(t) => t.plugin.outbox.size === 0", "every forwarded frame acked")
    sent = await page.evaluate("(t) => t.sockets[0].sent.find((f) => f.type === 'sent')")
    assert sent["ok"] is True


async def test_a_page_on_another_origin_is_refused_at_the_handshake(
    chromium: Browser, relay: RelayServer, pages: list[PluginPage], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="websockets")
    await relay.start()
    # Over the WebSocket only: the check under test is the server's on its handshake's Origin
    # (BdApi.Net.fetch sends none; a page outside BetterDiscord has no Net.fetch).
    settings = {**relay.plugin_settings, "transport": "websocket"}
    page = await PluginPage.open(chromium, settings, origin="https://discord.example")
    pages.append(page)
    await page.wait_for("(t) => t.sockets.length >= 3", "three refused attempts")
    events = await page.evaluate("(t) => t.sockets.slice(0, 2).map((socket) => socket.events)")
    assert events == [["error", "close 1006"]] * 2
    assert await page.status() == "reconnecting"
    refusals = [r.getMessage() for r in caplog.records if "403" in r.getMessage()]
    assert len(refusals) >= 3, caplog.text  # the server refused the Origin with HTTP 403


async def test_a_refused_connection_is_retried_until_the_server_is_up(
    chromium: Browser, relay: RelayServer, pages: list[PluginPage]
) -> None:
    page = await open_plugin(chromium, relay, pages)
    early = await page.receive(channel_id="333", author={"id": "801"}, content="before the server")
    await page.wait_for("(t) => t.sockets.length >= 5", "five refused attempts")
    events = await page.evaluate("(t) => t.sockets.slice(0, 4).map((socket) => socket.events)")
    assert events == [["error", "close 1006"]] * 4
    assert await page.status() == "reconnecting"
    toasts = await page.evaluate("(t) => t.fake.toasts.map((toast) => toast.content)")
    assert len([text for text in toasts if "not reachable" in text]) == 1

    await relay.start()
    await page.wait_for("(t) => t.plugin.status === 'connected'", "the welcome")
    replies = await page.wait_for("(t) => t.replies().length >= 1 && t.replies()", "the reply")
    assert replies == [{"channel": "333", "content": echo("before the server")}]
    forwarded = await page.evaluate("(t) => t.forwarded().filter((frame) => !frame.self)")
    assert [frame["id"] for frame in forwarded] == [early]


async def test_a_server_restart_loses_nothing_and_answers_each_once(
    chromium: Browser, relay: RelayServer, pages: list[PluginPage], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.delivery.outbox")
    await relay.start()
    page = await open_plugin(chromium, relay, pages)
    await page.wait_for("(t) => t.plugin.status === 'connected'", "the welcome")
    await page.receive(channel_id="222", author={"id": "111"}, content="before the restart")
    await page.wait_for("(t) => t.replies().length === 1", "the first reply")
    await page.wait_for("(t) => t.plugin.outbox.size === 0", "its acks (and the echo's)")

    await relay.stop()
    await page.wait_for("(t) => t.plugin.status === 'reconnecting'", "the loss to be noticed")
    sockets_down = await page.evaluate("(t) => t.sockets.length")
    while_down = [
        await page.receive(channel_id=channel, author={"id": user}, content=text)
        for channel, user, text in [
            ("333", "802", "first while down"),
            ("334", "803", "second while down"),
            ("999", "804", "SECRET unwatched while down"),
            ("335", "805", "third while down"),
        ]
    ]
    await page.wait_for(f"(t) => t.sockets.length >= {sockets_down + 2}", "refused retries")
    assert await page.evaluate("(t) => t.plugin.outbox.size") == 3

    await relay.start()
    await page.wait_for("(t) => t.plugin.status === 'connected'", "the welcome after the restart")
    await page.wait_for("(t) => t.replies().length === 4", "three more replies")
    await page.wait_for("(t) => t.plugin.outbox.size === 0", "every buffered frame acked")
    later = await follow_up(page, caplog, [("802", "333"), ("803", "334"), ("805", "335")], "after")
    last = await page.evaluate("(t) => t.sockets.length - 1")
    resent = await page.evaluate(
        "(t, last) => t.forwarded().filter((f) => f.socket === last && !f.self).map((f) => f.id)",
        last,
    )
    watched_ids = [while_down[0], while_down[1], while_down[3]]
    assert resent[:3] == watched_ids, "re-sent in order, original ids, nothing unwatched"
    assert len(resent) == 3 + len(later)
    replies = await page.evaluate("(t) => t.replies()")
    texts = ["before the restart", "first while down", "second while down", "third while down"]
    assert sorted(echoed(reply["content"]) or "" for reply in replies) == sorted(texts + later)
    assert "SECRET" not in str(await page.evaluate("(t) => t.forwarded()"))
