"""Notifications through Apprise into a local `json://` endpoint (a small aiohttp server): which
events go out, with which texts and links, NOTIFY_TEXT false, bursts merged, a failing or hanging
endpoint that delays no reply, Apprise reaching nothing but the configured URL, and `check`."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from server.cli.health_check import _check_notifications, render_table
from server.config import ConfigError, Settings, load_settings
from server.conversation.rules import parse_rules
from server.owner import notifier as notifier_module
from server.owner.notifier import (
    FailureWatch,
    Notice,
    Notifier,
    chat_link,
    describe_url,
    merge,
    urgent_word,
)
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI
from tests.relay_harness import PluginClient, running_app
from tests.test_away_mode import away_settings, presence, quiet

RULES = (
    'CONTEXT_MESSAGE = "You stand in for Sam."\n'
    "REPLY_TO = [\n"
    '    ("111", "222"),\n'
    '    ("112", "223", {"mode": "draft"}),\n'
    '    ("113", "224", {"notify": "all"}),\n'
    "]\n"
)


class JsonEndpoint:
    """What Apprise's `json://` posts to: records each notification; may refuse or hang."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        self.hang = False
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/notify"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/notify", self._notify)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _notify(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.received.append(body)
        self.arrived.set()
        if self.hang:
            await asyncio.sleep(30)
        return web.Response(status=self.status, text="{}")

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} notifications, got {self.received}")
            await asyncio.sleep(0.02)
        return self.received

    def texts(self) -> str:
        return "\n".join(f"{n['title']}\n{n['message']}" for n in self.received)


@pytest_asyncio.fixture
async def endpoint() -> AsyncIterator[JsonEndpoint]:
    server = JsonEndpoint()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(autouse=True)
def fast_notifications(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notifier_module, "MIN_INTERVAL_SECONDS", 0.05)
    monkeypatch.setattr(notifier_module, "SEND_TIMEOUT_SECONDS", 2.0)


# Pure parts.


def test_links_urls_and_urgent_words() -> None:
    assert chat_link("222") == "https://discord.com/channels/@me/222"
    assert chat_link("222", "333") == "https://discord.com/channels/333/222"
    # Only a scheme and a real host are ever logged: in many schemes the "host" is a token.
    assert describe_url("json://user:pa55w0rd@127.0.0.1:8080/x?token=1") == "json://127.0.0.1:8080"
    assert describe_url("ntfys://ntfy.sh/my-secret-topic") == "ntfys://ntfy.sh"
    assert describe_url("tgram://123456789:AAHdqTcvbXorY/987654") == "tgram://"
    assert describe_url("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js") == "discord://"
    words = ("urgent", "asap", "call me")
    assert urgent_word("Please CALL ME when you can", words) == "call me"
    assert urgent_word("asap!", words) == "asap"
    assert urgent_word("an Urgent matter", words) == "urgent"
    assert urgent_word("insurgents and asapx", words) is None


def test_a_burst_is_merged_and_failures_are_told_once_per_streak() -> None:
    one = Notice("draft", "Draft waiting", "text", "https://discord.com/channels/@me/1")
    assert merge([one]) is one
    many = merge([one, Notice("failure", "Stopped", "why")] + [one] * 12)
    assert many.title == "14 notifications" and many.kind == "failure"
    assert "…and 4 more" in many.body and "https://discord.com/channels/@me/1" in many.body

    watch = FailureWatch(llm_failure_seconds=300)
    assert watch.llm_result(False, 1000.0) is None  # a streak starts
    assert watch.llm_result(False, 1200.0) is None
    told = watch.llm_result(False, 1300.0)
    assert told is not None and "5 min" in told.body
    assert watch.llm_result(False, 1400.0) is None  # once per streak
    assert watch.llm_result(True, 1500.0) is None
    assert watch.llm_result(False, 1600.0) is None and watch.llm_result(False, 1900.0) is not None
    assert watch.undeliverable("token refused") is not None
    assert watch.undeliverable("token refused") is None


def test_settings_defaults_and_bad_values(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.NOTIFY_URLS == [] and settings.NOTIFY_TEXT is True
    assert settings.NOTIFY_ON == ["draft", "urgent", "failure", "summary"]
    assert "urgent" in settings.URGENT_WORDS and "call me" in settings.URGENT_WORDS
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"NOTIFY_URLS": ["ntfys//secret-topic"]}, indent=2))
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert "NOTIFY_URLS.0 (line 2): must be an Apprise URL" in str(error.value)
    assert "secret-topic" not in str(error.value)  # the URL may hold a token: never echoed
    config.write_text(json.dumps({"NOTIFY_ON": ["draft", "everything"]}, indent=2))
    with pytest.raises(ConfigError, match=r"NOTIFY_ON.1 \(line 2\)"):
        load_settings(config)
    url = "ntfys://ntfy.sh/a-long-secret-topic"
    assert url in Settings(NOTIFY_URLS=[url]).secret_values()  # redacted from every log line
    assert parse_rules({"REPLY_TO": [("1", "2", {"notify": "all"})]}, "rc").rules[0].notify == "all"


async def test_a_url_apprise_cannot_use_stops_the_start_naming_it() -> None:
    notifier = Notifier(Settings(NOTIFY_URLS=["nosuchservice://host.example.com/secret"]))
    with pytest.raises(ConfigError, match=r"NOTIFY_URLS\[0\] \(nosuchservice://host.example"):
        await notifier.start()
    await notifier.aclose()


async def test_apprise_reaches_only_the_configured_url(
    endpoint: JsonEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importing Apprise, loading the URL and sending: no connection but to the endpoint, no
    name looked up (no plugin or image downloads)."""
    connected: list[Any] = []
    looked_up: list[Any] = []
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def record_connect(self: socket.socket, address: Any) -> Any:
        connected.append(address)
        return connect(self, address)

    def record_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(host)
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", record_connect)
    monkeypatch.setattr(socket, "getaddrinfo", record_lookup)
    notifier = Notifier(Settings(NOTIFY_URLS=[endpoint.url]))
    await notifier.start()
    try:
        assert await notifier.send(Notice("failure", "t", "b")) == [None]
    finally:
        await notifier.aclose()
    assert connected and {address[:2] for address in connected} == {("127.0.0.1", endpoint.port)}
    assert set(looked_up) <= {"127.0.0.1"}


# Over real sockets: the App, the plugin's client, the fakes and the JSON endpoint.


async def test_drafts_urgent_messages_and_the_summary_reach_the_owner(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI, endpoint: JsonEndpoint
) -> None:
    settings = away_settings(fake_discord, fake_openai, NOTIFY_URLS=[endpoint.url])
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await presence(client, "idle")
        await client.message("1001", "112", "223", "can you send me the slides?")
        await endpoint.wait_for(1)
        [draft] = endpoint.received
        assert draft["title"] == "Draft waiting: user112 (112)"
        assert "They wrote: can you send me the slides?" in draft["message"]
        assert "Draft: echo: can you send me the slides?" in draft["message"]
        assert draft["message"].endswith("https://discord.com/channels/@me/223")

        await client.message("1002", "111", "222", "URGENT: the server is down", guild="999")
        await client.message("1003", "113", "224", "just saying hi")  # "notify": "all"
        await client.message("1004", "111", "222", "nothing special")
        await fake_discord.wait_for_messages(3)
        await endpoint.wait_for(2)
        await asyncio.sleep(0.3)  # a burst: merged into one notification, or two
        texts = endpoint.texts()
        assert "user111 (111) wrote (urgent: 'urgent'):\nURGENT: the server is down" in texts
        assert "https://discord.com/channels/999/222" in texts
        assert "user113 (113) wrote (notify: all):\njust saying hi" in texts
        assert "nothing special" not in texts  # neither urgent nor "notify": "all"
        assert "Replied" not in texts  # "reply" is not in NOTIFY_ON by default

        count = len(endpoint.received)
        await presence(client, "online")
        await endpoint.wait_for(count + 1)
        summary = endpoint.received[-1]
        assert summary["title"] == "While you were away"
        assert "https://discord.com/channels/@me/224" in summary["message"]
        assert "Draft waiting for user112 (112)" in summary["message"]
        await client.close()


async def test_notify_text_false_leaves_the_texts_out_and_replies_may_be_notified(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI, endpoint: JsonEndpoint
) -> None:
    settings = away_settings(
        fake_discord,
        fake_openai,
        NOTIFY_URLS=[endpoint.url],
        NOTIFY_TEXT=False,
        NOTIFY_ON=["draft", "urgent", "reply"],
    )
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await presence(client, "idle")
        await client.message("1001", "112", "223", "my secret plans")
        await endpoint.wait_for(1)
        await client.message("1002", "111", "222", "call me, secret stuff")
        await fake_discord.wait_for_messages(1)
        deadline = time.monotonic() + 10
        while "Replied to" not in endpoint.texts():  # the urgent message and the reply
            assert time.monotonic() < deadline, endpoint.received
            await asyncio.sleep(0.02)
        texts = endpoint.texts()
        assert "secret" not in texts and "echo" not in texts
        assert "A reply to user112 (112) waits for you" in texts
        assert "user111 (111) wrote (urgent: 'call me')." in texts
        assert "Replied to user111 (111)." in texts
        assert "https://discord.com/channels/@me/223" in texts
        assert "https://discord.com/channels/@me/222" in texts
        await client.close()


async def test_a_refused_token_and_a_failing_llm_are_told_once(
    tmp_path: Path,
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    endpoint: JsonEndpoint,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(notifier_module, "LLM_FAILURE_SECONDS", 0.2)
    settings = away_settings(fake_discord, fake_openai, NOTIFY_URLS=[endpoint.url])
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await presence(client, "idle")
        fake_openai.fail_next(500, count=3)
        await client.message("1001", "111", "222", "one")
        await running.app.relay.drain()
        await asyncio.sleep(0.3)
        await client.message("1002", "111", "222", "two")
        await client.message("1003", "111", "222", "three")
        await endpoint.wait_for(1)
        await quiet(running)
        failures = [n for n in endpoint.received if "LLM backend" in n["message"]]
        assert len(failures) == 1 and failures[0]["title"] == "Auto-replies stopped"

        fake_discord.fail_next(401)
        count = len(endpoint.received)
        await client.message("1004", "111", "222", "four")
        await client.message("1005", "111", "222", "five")
        await endpoint.wait_for(count + 1)
        await quiet(running)
        refused = [n for n in endpoint.received if "Discord refused" in n["message"]]
        assert len(refused) == 1
        await client.close()


async def test_a_hanging_or_failing_endpoint_delays_no_reply_and_is_logged_once(
    tmp_path: Path,
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    endpoint: JsonEndpoint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    endpoint.hang = True
    settings = away_settings(
        fake_discord,
        fake_openai,
        NOTIFY_URLS=[endpoint.url],
        NOTIFY_ON=["urgent", "reply"],
        MAX_REPLIES_PER_MINUTE=0,
    )
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await presence(client, "idle")
        started = time.monotonic()
        await client.message("1001", "111", "222", "urgent: are you there?")
        await fake_discord.wait_for_messages(1)
        assert time.monotonic() - started < 1.0  # the notification hangs for 30 s meanwhile
        await asyncio.wait_for(endpoint.arrived.wait(), 5)
        for index in range(2, 5):
            started = time.monotonic()
            await client.message(f"100{index}", "111", "222", f"urgent #{index}")
            await fake_discord.wait_for_messages(index)
            assert time.monotonic() - started < 1.0
        await asyncio.sleep(2.5)  # past the notifier's timeout, twice
        endpoint.hang, endpoint.status = False, 500
        await client.message("1005", "111", "222", "urgent, again")
        await fake_discord.wait_for_messages(5)
        await asyncio.sleep(1.0)
        logged = [r.getMessage() for r in caplog.records if r.name == "server.owner.notifier"]
        failed = [line for line in logged if "failed" in line]
        assert len(failed) == 1, logged  # once per failure streak
        assert f"NOTIFY_URLS[0] (json://127.0.0.1:{endpoint.port})" in failed[0]
        assert "no answer within 2 s" in failed[0]
        assert all("/notify" not in line for line in logged)  # never the URL whole
        endpoint.status = 200
        await client.message("1006", "111", "222", "urgent, last")
        await fake_discord.wait_for_messages(6)
        deadline = time.monotonic() + 5
        while not any("work again" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, logged
            await asyncio.sleep(0.05)
        await client.close()


async def test_check_sends_a_test_notification_to_each_url(endpoint: JsonEndpoint) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    dead = f"json://127.0.0.1:{closed_port}/nobody"
    settings = Settings(NOTIFY_URLS=[endpoint.url, dead])
    rows = await _check_notifications(settings)
    [test] = endpoint.received
    assert test["title"] == "discord-auto-reply" and "test notification" in test["message"]
    assert [(row.part, row.ok) for row in rows] == [
        (f"notify json://127.0.0.1:{endpoint.port}", True),
        (f"notify json://127.0.0.1:{closed_port}", False),
    ]
    table = render_table(rows)
    assert f"✔  notify json://127.0.0.1:{endpoint.port}" in table
    assert f"✘  notify json://127.0.0.1:{closed_port}" in table
    assert await _check_notifications(Settings()) == []


async def test_a_plugin_gone_longer_than_the_send_timeout_while_messages_wait_is_told_once(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    endpoint: JsonEndpoint,
) -> None:
    """With the plugin messenger, replies wait for a plugin: gone for longer than
    SEND_TIMEOUT_SECONDS while a reply waits or failed for want of one, the owner is told, once
    per absence."""
    settings = {
        "MESSENGER": "plugin",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": FakeOpenAI.API_KEY,
        "NOTIFY_URLS": [endpoint.url],
        "SEND_TIMEOUT_SECONDS": 0.5,
        "REPLY_WITHIN_MINUTES": 1.0,
    }
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        client.answer_sends = False  # the plugin leaves before it posts the reply
        await client.message("2001", "111", "222", "anyone there?")
        await client.wait_for_sends(1)
        await client.close()
        [told] = await endpoint.wait_for(1)
        assert told["title"] == "Auto-replies stopped"
        assert "No plugin has been connected for" in told["message"]
        assert "replies it must post wait or were not delivered" in told["message"]
        await asyncio.sleep(1.5)  # still gone: not told again
        assert len([n for n in endpoint.received if "No plugin" in n["message"]]) == 1

        back = await PluginClient.connect(running.url)  # back: the next absence is news again
        await back.message("2002", "111", "222", "and now?")
        back.answer_sends = False
        await back.wait_for_sends(1, timeout=10)
        await back.close()
        await endpoint.wait_for(2)
        assert len([n for n in endpoint.received if "No plugin" in n["message"]]) == 2
