"""The owner's remote (OWNER_BOT): the real relay with its discord.py owner bot against the fake
Discord gateway and REST API (which also takes the relay's REST replies): a draft DM with
buttons, Send pressed twice at once posting once, the Edit modal, a stranger refused, /away from
the DM, and a refused token that costs nothing but the bot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import discord.state
import pytest

from server.owner.notifier import Notice
from server.owner.remote import draft_messages
from server.owner.remote.owner_commands import history_since
from tests.fakes.discord_bot_api import EPHEMERAL
from tests.fakes.discord_gateway import FakeGateway
from tests.fakes.discord_owner_dm import FakeDiscordOwnerBot
from tests.fakes.openai_api import FakeOpenAI
from tests.relay_harness import PluginClient, RunningApp, running_app
from tests.test_relay import rest_settings

OWNER = "1180000000000000777"
STRANGER = "1180000000000000666"
RULES = 'CONTEXT_MESSAGE = "You stand in for Sam."\nREPLY_TO = [("111", "222")]\n'


@pytest.fixture(autouse=True)
def quick_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    """discord.py waits `guild_ready_timeout` (2 s) after READY for GUILD_CREATEs before the
    owner bot's ready; the fake sends none, so that documented Client option is short here."""
    init = discord.state.ConnectionState.__init__

    def short_wait(self: discord.state.ConnectionState[Any], *args: Any, **options: Any) -> None:
        init(self, *args, **{"guild_ready_timeout": 0.05, **options})

    monkeypatch.setattr(discord.state.ConnectionState, "__init__", short_wait)


@asynccontextmanager
async def owner_bot_relay(
    tmp_path: Path, fake_openai: FakeOpenAI, *, wait_ready: bool = True, **extra: Any
) -> AsyncIterator[tuple[RunningApp, FakeDiscordOwnerBot, FakeGateway]]:
    """The relay in draft mode with OWNER_BOT, its REST replies and its bot on one fake."""
    api = FakeDiscordOwnerBot()
    await api.start()
    gateway = FakeGateway(api)
    await gateway.start()
    values: dict[str, Any] = {
        "MODE": "draft",
        "OWNER_BOT": True,
        "DISCORD_BOT_TOKEN": api.BOT_TOKEN,
        "OWNER_ID": OWNER,
        **extra,
    }
    settings = rest_settings(api, fake_openai, **values)
    try:
        async with running_app(tmp_path, RULES, **settings) as running:
            if wait_ready:
                await gateway.wait_until_ready()
            yield running, api, gateway
    finally:
        await gateway.stop()
        await api.stop()


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def replies_in(api: FakeDiscordOwnerBot, channel: str) -> list[dict[str, Any]]:
    return [m for m in api.messages if m["channel_id"] == channel]


async def a_draft_dm(api: FakeDiscordOwnerBot, client: PluginClient) -> dict[str, Any]:
    await client.message("1001", "111", "222", "dinner at 8?")
    await until(lambda: len(api.dm_messages(OWNER)) == 1)
    return api.dm_messages(OWNER)[0]


async def test_a_draft_dm_has_buttons_and_two_presses_at_once_post_once(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with owner_bot_relay(tmp_path, fake_openai) as (running, api, gateway):
        client = await PluginClient.connect(running.url)
        dm = await a_draft_dm(api, client)
        draft = await client.wait_for_owner_frame("draft")
        assert "dinner at 8?" in dm["content"] and "echo: dinner at 8?" in dm["content"]
        [row] = dm["components"]
        labels = [(b["label"], b["custom_id"]) for b in row["components"]]
        assert labels == [
            ("Send", f"dar:send:{draft['id']}"),
            ("Edit", f"dar:edit:{draft['id']}"),
            ("Discard", f"dar:discard:{draft['id']}"),
        ]
        assert replies_in(api, "222") == []

        first = api.press(OWNER, dm, f"dar:send:{draft['id']}")
        second = api.press(OWNER, dm, f"dar:send:{draft['id']}")
        gateway.interact(first)
        gateway.interact(second)
        await client.wait_for_owner_frame("draft_done", id=draft["id"], status="sent")
        await until(lambda: not api.message(dm["id"])["components"])
        assert api.message(dm["id"])["content"].startswith("✅ Sent")
        await until(lambda: len(first.followups) + len(second.followups) == 1)
        [loser] = first.followups + second.followups
        assert loser["flags"] & EPHEMERAL and "draft" in loser["content"]
        [posted] = replies_in(api, "222")
        assert posted["content"] == "[auto-reply] echo: dinner at 8? [turns=1]"
        assert posted["enforce_nonce"] is True and posted["nonce"]
        await client.close()


async def test_edit_opens_a_modal_with_the_text_and_its_submit_sends_the_new_text(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with owner_bot_relay(tmp_path, fake_openai) as (running, api, gateway):
        client = await PluginClient.connect(running.url)
        dm = await a_draft_dm(api, client)
        draft = await client.wait_for_owner_frame("draft")
        gateway.interact(api.press(OWNER, dm, f"dar:edit:{draft['id']}"))
        await until(lambda: len(api.modals) == 1)
        modal = api.modals[0].data
        [row] = modal["components"]
        assert modal["custom_id"] == f"dar:edit:{draft['id']}"
        assert row["components"][0]["value"] == draft["content"]

        submit = api.submit_modal(OWNER, dm, modal["custom_id"], {"content": "Yes, at 8!"})
        gateway.interact(submit)
        await client.wait_for_owner_frame("draft_done", id=draft["id"], status="sent")
        [posted] = replies_in(api, "222")
        assert posted["content"] == "[auto-reply] Yes, at 8!"
        await until(lambda: api.message(dm["id"])["content"].startswith("✅ Sent"))
        await client.close()


async def test_a_stranger_is_refused_and_nothing_reaches_the_relay(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with owner_bot_relay(tmp_path, fake_openai) as (running, api, gateway):
        client = await PluginClient.connect(running.url)
        dm = await a_draft_dm(api, client)
        draft = await client.wait_for_owner_frame("draft")
        press = api.press(STRANGER, dm, f"dar:send:{draft['id']}")
        gateway.interact(press)
        refusal = await api.wait_for_answer(press)
        assert refusal["flags"] & EPHEMERAL and "owner only" in refusal["content"]
        command = api.new_interaction("away", STRANGER, "2000000000000000009")
        command.payload["data"]["options"] = [{"type": 3, "name": "mode", "value": "on"}]
        gateway.interact(command)
        refusal = await api.wait_for_answer(command)
        assert refusal["flags"] & EPHEMERAL
        assert running.app.away.status()["switch"] == "auto"
        assert replies_in(api, "222") == []
        assert [d["id"] for d in await running.app.drafts.frames()] == [draft["id"]]
        assert api.message(dm["id"])["components"]  # still pending, buttons still there
        await client.close()


async def test_away_drafts_and_history_from_the_dm(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    async with owner_bot_relay(tmp_path, fake_openai) as (running, api, gateway):
        assert {c["name"] for c in api.commands} == {"away", "drafts", "history"}
        assert all(c["contexts"] == [1] for c in api.commands)
        client = await PluginClient.connect(running.url)
        await a_draft_dm(api, client)
        dm_channel = api.dm_channels[OWNER]

        away = api.new_interaction(
            "away", OWNER, dm_channel, options={"mode": "on", "note": "on a train"}
        )
        gateway.interact(away)
        answer = await api.wait_for_answer(away)
        assert "Switch: **on**" in answer["content"] and "on a train" in answer["content"]
        assert running.app.away.status()["switch"] == "on"
        await client.wait_for_owner_frame("away_status", switch="on")

        drafts = api.new_interaction("drafts", OWNER, dm_channel)
        gateway.interact(drafts)
        assert "1 draft(s) waiting" in (await api.wait_for_answer(drafts))["content"]
        history = api.new_interaction("history", OWNER, dm_channel, options={"since": "1h"})
        gateway.interact(history)
        assert "dinner at 8?" in (await api.wait_for_answer(history))["content"]
        await client.close()


async def test_drafts_expiring_or_discarded_elsewhere_update_the_dm(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with owner_bot_relay(tmp_path, fake_openai) as (running, api, _gateway):
        client = await PluginClient.connect(running.url)
        dm = await a_draft_dm(api, client)
        draft = await client.wait_for_owner_frame("draft")
        await running.app.drafts.act(draft["id"], "discard")  # as the plugin or the CLI does
        await until(lambda: api.message(dm["id"])["content"].startswith("🗑️ Discarded"))
        assert api.message(dm["id"])["components"] == []
        await client.close()


async def test_urgent_messages_and_failures_reach_the_dm(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with owner_bot_relay(tmp_path, fake_openai) as (running, api, _gateway):
        await running.app.away.switch("on")
        client = await PluginClient.connect(running.url)
        await client.message("1001", "111", "222", "call me asap please")
        await until(lambda: any("urgent" in m["content"] for m in api.dm_messages(OWNER)))
        running.app.notifier.undeliverable("Discord refused the token")
        await until(lambda: any("stopped" in m["content"] for m in api.dm_messages(OWNER)))
        await client.close()


async def test_the_owner_defaults_to_the_plugins_self_id_and_a_refused_dm_is_one_line(
    tmp_path: Path, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    async with owner_bot_relay(tmp_path, fake_openai, OWNER_ID="") as (running, api, _gw):
        api.refused_dm_users.add("9")  # the harness plugin's hello says self_id "9"
        client = await PluginClient.connect(running.url)
        await client.message("1001", "111", "222", "dinner at 8?")
        await client.wait_for_owner_frame("draft")
        await until(lambda: "owner bot cannot DM you (user 9)" in caplog.text)
        assert api.dm_channels == {"9": api.dm_channels["9"]}
        [line] = [r for r in caplog.records if "cannot DM" in r.getMessage()]
        assert "50007" in line.getMessage() and "\n" not in line.getMessage()
        await client.close()


async def test_a_refused_token_is_one_line_and_replies_still_go_out(
    tmp_path: Path, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    async with owner_bot_relay(
        tmp_path, fake_openai, wait_ready=False, MODE="send", DISCORD_BOT_TOKEN="wrong.token.x"
    ) as (running, api, _gateway):
        client = await PluginClient.connect(running.url)
        await client.message("1001", "111", "222", "dinner at 8?")
        await until(lambda: len(replies_in(api, "222")) == 1)
        await until(
            lambda: running.app.owner_remote is not None and running.app.owner_remote.problem
        )
        [line] = [
            r.getMessage() for r in caplog.records if "owner bot not running" in r.getMessage()
        ]
        assert "DISCORD_BOT_TOKEN" in line and "wrong.token" not in caplog.text
        await client.close()


def test_draft_messages_are_discord_shaped() -> None:
    frame = {
        "id": "7",
        "user": "111",
        "author": "sam",
        "channel": "222",
        "guild": None,
        "question": "x" * 5000,
        "content": "y" * 5000,
        "expires_at": 1.0,
    }
    body = draft_messages.draft_message(frame)
    assert len(body["content"]) <= 2000 and body["allowed_mentions"] == {"parse": []}
    assert draft_messages.settled_message(frame, "expired")["components"] == []
    modal = draft_messages.edit_modal("7", "y" * 5000)
    assert len(modal["components"][0]["components"][0]["value"]) == 4000
    assert draft_messages.read_custom_id("dar:send:7") == draft_messages.Press("send", "7")
    assert draft_messages.read_custom_id("dar:send:x") is None
    assert draft_messages.read_custom_id("other:send:7") is None
    label = {"components": [{"type": 18, "component": {"custom_id": "content", "value": "hi"}}]}
    assert draft_messages.modal_value(label) == "hi"
    notice = draft_messages.notice_message(Notice("urgent", "T", "B", "https://l"))
    assert notice["content"] == "**T**\nB\nhttps://l"
    assert history_since("2h", now=10_000.0) == 10_000.0 - 7200


async def test_check_sends_a_test_dm_or_says_in_one_line_why_not(fake_openai: FakeOpenAI) -> None:
    from server.config import Settings  # noqa: PLC0415
    from server.owner.remote.reachability import check_owner_bot  # noqa: PLC0415

    api = FakeDiscordOwnerBot()
    await api.start()
    try:

        def settings(**values: Any) -> Settings:
            base = {"DISCORD_API_BASE": api.base_url, "OWNER_BOT": True, "OWNER_ID": OWNER}
            return Settings(**{**base, "DISCORD_BOT_TOKEN": api.BOT_TOKEN, **values})

        ok, detail = await check_owner_bot(settings())
        assert ok and detail == f"test DM sent to OWNER_ID {OWNER}"
        assert "check" in api.dm_messages(OWNER)[0]["content"]
        ok, detail = await check_owner_bot(settings(DISCORD_BOT_TOKEN="wrong.token.x"))
        assert not ok and "DISCORD_BOT_TOKEN (401)" in detail and "wrong" not in detail
        api.refused_dm_users.add(OWNER)
        ok, detail = await check_owner_bot(settings())
        assert not ok and "code 50007" in detail and "\n" not in detail
    finally:
        await api.stop()
