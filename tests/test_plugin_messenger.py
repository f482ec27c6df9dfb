"""The plugin messenger over real sockets: waiting for a plugin, disconnects, two plugins."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from server.messengers.base import MessengerError
from server.messengers.plugin import PluginMessenger
from tests.fakes.openai_api import FakeOpenAI
from tests.relay_harness import PluginClient, RunningApp, running_app

RULES = 'REPLY_TO = [("111", "222")]\n'


def messenger(running: RunningApp) -> PluginMessenger:
    sender = running.app.messenger
    assert isinstance(sender, PluginMessenger)
    return sender


async def wait_until(condition: object, timeout: float = 5.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for a condition")
        await asyncio.sleep(0.01)


async def test_a_send_waits_for_a_plugin_to_connect(tmp_path: Path) -> None:
    async with running_app(tmp_path, RULES, SEND_TIMEOUT_SECONDS=10.0) as running:
        sending = asyncio.create_task(messenger(running).send("222", "hi", nonce="n1"))
        await asyncio.sleep(0.2)
        assert not sending.done()  # no plugin yet: waiting, not failing
        client = await PluginClient.connect(running.url)
        await asyncio.wait_for(sending, 5)
        assert [(f["nonce"], f["channel"], f["content"]) for f in client.sends] == [
            ("n1", "222", "hi")
        ]
        await client.close()


async def test_no_plugin_within_the_timeout_is_a_clear_error(tmp_path: Path) -> None:
    async with running_app(tmp_path, RULES, SEND_TIMEOUT_SECONDS=0.3) as running:
        with pytest.raises(MessengerError) as caught:
            await messenger(running).send("222", "hi", nonce="n1")
    assert str(caught.value) == (
        "channel 222: no answer from the plugin within 0.3 s "
        "(is Discord open with the plugin enabled?)"
    )


async def test_a_plugin_that_disconnects_mid_send_gets_the_same_frame_after_reconnecting(
    tmp_path: Path,
) -> None:
    async with running_app(tmp_path, RULES, SEND_TIMEOUT_SECONDS=10.0) as running:
        first = await PluginClient.connect(running.url)
        first.answer_sends = False  # it receives the frame, then goes away without answering
        sending = asyncio.create_task(
            messenger(running).send("222", "once", nonce="n1", reply_to="77")
        )
        [frame] = await first.wait_for_sends(1)
        await first.close()
        await asyncio.sleep(0.2)
        assert not sending.done()  # waiting for the plugin to come back
        second = await PluginClient.connect(running.url)
        await asyncio.wait_for(sending, 5)
        assert second.sends == [frame]  # the same nonce: the plugin can tell it is a repeat
        assert frame["reply_to"] == "77"
        await second.close()


async def test_a_plugin_that_disconnects_and_stays_away_fails_the_send_at_the_timeout(
    tmp_path: Path,
) -> None:
    async with running_app(tmp_path, RULES, SEND_TIMEOUT_SECONDS=0.5) as running:
        client = await PluginClient.connect(running.url)
        client.answer_sends = False
        started = time.monotonic()
        sending = asyncio.create_task(messenger(running).send("222", "hi", nonce="n1"))
        await client.wait_for_sends(1)
        await client.close()
        with pytest.raises(MessengerError) as caught:
            await sending
        assert 0.4 < time.monotonic() - started < 3.0
    assert str(caught.value).startswith(
        "channel 222: the plugin disconnected before answering, and no plugin answered within 0.5 s"
    )


async def test_with_two_plugins_connected_each_frame_goes_to_the_newest_only(
    tmp_path: Path,
) -> None:
    async with running_app(tmp_path, RULES, SEND_TIMEOUT_SECONDS=5.0) as running:
        older = await PluginClient.connect(running.url)
        newer = await PluginClient.connect(running.url)
        sender = messenger(running)
        await sender.send("222", "first", nonce="n1")
        await sender.typing("222")
        await wait_until(lambda: newer.typing == ["222"])
        assert [f["nonce"] for f in newer.sends] == ["n1"]
        assert older.sends == [] and older.typing == []  # nothing is posted twice

        await newer.close()
        await sender.send("222", "second", nonce="n2")  # the older one takes over
        assert [f["nonce"] for f in older.sends] == ["n2"]
        assert [f["nonce"] for f in newer.sends] == ["n1"]
        await older.close()


async def test_a_refusal_from_the_plugin_is_not_resent(tmp_path: Path) -> None:
    async with running_app(tmp_path, RULES, SEND_TIMEOUT_SECONDS=5.0) as running:
        client = await PluginClient.connect(running.url)
        client.answer_sends = False
        sending = asyncio.create_task(messenger(running).send("222", "hi", nonce="n1"))
        await client.wait_for_sends(1)
        await client.send_raw('{"type":"sent","nonce":"n1","ok":false,"error":"Missing Access"}')
        with pytest.raises(MessengerError, match="the plugin could not send: Missing Access"):
            await sending
        assert len(client.sends) == 1
        await client.close()


async def test_a_deadline_before_the_timeout_ends_the_wait_sooner(tmp_path: Path) -> None:
    async with running_app(tmp_path, RULES, SEND_TIMEOUT_SECONDS=30.0) as running:
        started = time.monotonic()
        deadline = asyncio.get_running_loop().time() + 0.3
        with pytest.raises(MessengerError, match="no answer from the plugin within the reply's"):
            await messenger(running).send("222", "hi", nonce="n1", deadline=deadline)
        assert time.monotonic() - started < 3.0


async def test_a_reply_whose_echo_came_back_is_not_asked_of_another_plugin(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    llm = {"OPENAI_BASE_URL": fake_openai.base_url, "OPENAI_API_KEY": FakeOpenAI.API_KEY}
    async with running_app(tmp_path, RULES, SEND_TIMEOUT_SECONDS=5.0, **llm) as running:
        older = await PluginClient.connect(running.url)
        newer = await PluginClient.connect(running.url)
        newer.answer_sends = False  # it posts, forwards the echo, and goes away before `sent`
        await newer.message("1001", "111", "222", "are you there?")
        [frame] = await newer.wait_for_sends(1)
        await newer.message(
            "1002", "999", "222", frame["content"], is_self=True, nonce=frame["nonce"]
        )
        await newer.close()

        await running.app.relay.drain()  # the reply counts as delivered...
        assert older.sends == []  # ...and the other Discord client is not asked to post it
        assert await running.app.store.undelivered_replies() == []
        [exported] = await running.app.store.export(("111", "222"))
        turns = exported["turns"]
        assert isinstance(turns, list)
        assert [turn["kind"] for turn in turns] == ["message", "reply"]  # the echo: not a 3rd
        await older.close()
