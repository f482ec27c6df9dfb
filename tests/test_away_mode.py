"""Away mode: the owner's Discord status and the manual switch decide whether the relay speaks.

Over real sockets: the real App, a websocket client doing what the plugin does, the fakes of
Discord and OpenAI, and the real command line as a subprocess.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from server.config import Settings
from server.conversation.reply_policy import Presence
from server.conversation.rules import RulesError, parse_rules
from server.storage.owner_store import OwnerStore
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI
from tests.relay_harness import SECRET, PluginClient, run_cli, running_app, write_cli_config
from tests.test_relay import rest_settings

RULES = (
    'CONTEXT_MESSAGE = "You stand in for Sam."\n'
    'REPLY_TO = [("111", "222"), ("112", "223", {"reply_when": "always"})]\n'
)


def away_settings(fake_discord: FakeDiscord, fake_openai: FakeOpenAI, **extra: Any) -> Any:
    return rest_settings(fake_discord, fake_openai, REPLY_WHEN="away", **extra)


async def presence(client: PluginClient, status: str) -> None:
    await client.send_raw(json.dumps({"type": "presence", "status": status}))


async def quiet(running: Any) -> None:
    """Let any reply that would be written get written, then check none was."""
    await running.app.relay.drain()
    await asyncio.sleep(0.1)
    await running.app.relay.drain()


# The rule alone, without sockets.


@pytest.mark.parametrize(
    ("status", "switch", "reply_when", "replies"),
    [
        (None, "auto", "away", False),  # nothing heard since the start: present
        ("online", "auto", "away", False),
        ("idle", "auto", "away", True),
        ("dnd", "auto", "away", True),
        ("invisible", "auto", "away", True),
        ("offline", "auto", "away", True),
        ("online", "on", "away", True),  # the switch wins over the status
        ("idle", "off", "away", False),
        ("online", "auto", "always", True),
        ("online", "off", "always", True),
    ],
)
def test_presence_decides_whether_the_relay_may_speak(
    status: Any, switch: Any, reply_when: Any, replies: bool
) -> None:
    decision = Presence(status, switch).allows(reply_when)
    assert decision.reply is replies
    if not replies:
        assert decision.reason.startswith("the owner is present")


def test_reply_when_defaults_to_away_and_rules_may_override_it_or_draft() -> None:
    assert Settings().REPLY_WHEN == "away"
    assert Settings().MODE == "send"
    assert Settings().DRAFT_EXPIRE_MINUTES == 30.0
    rules = parse_rules(
        {"REPLY_TO": [("1", "2", {"reply_when": "always", "mode": "draft"}), ("3", "4")]}, "rc.py"
    )
    assert (rules.rules[0].reply_when, rules.rules[0].mode) == ("always", "draft")
    assert (rules.rules[1].reply_when, rules.rules[1].mode) == (None, None)
    with pytest.raises(RulesError, match=r"rc.py: REPLY_TO\[0\]: reply_when"):
        parse_rules({"REPLY_TO": [("1", "2", {"reply_when": "never"})]}, "rc.py")


# Presence frames over a real websocket.


async def test_presence_frames_switch_replying_on_and_off(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    async with running_app(tmp_path, RULES, **away_settings(fake_discord, fake_openai)) as running:
        client = await PluginClient.connect(running.url)
        greeting = await client.wait_for_owner_frame("away_status")
        assert greeting["presence"] is None and greeting["replying"] is False

        # A fresh start counts as present: no LLM call, no post.
        await client.message("1001", "111", "222", "before any status")
        await presence(client, "online")
        await client.message("1002", "111", "222", "while online")
        await quiet(running)
        assert fake_openai.requests == [] and fake_discord.messages == []
        assert fake_discord.typing == []

        for index, status in enumerate(["idle", "dnd", "invisible"]):
            await presence(client, status)
            await client.message(f"20{index}", "111", "222", f"while {status}")
            posted = await fake_discord.wait_for_messages(index + 1)
            assert posted[-1]["content"].startswith(f"[auto-reply] echo: while {status}")
        await client.wait_for_owner_frame("away_status", presence="invisible", replying=True)

        await presence(client, "online")
        await client.message("3001", "111", "222", "back again")
        await quiet(running)
        assert len(fake_openai.requests) == 3 and len(fake_discord.messages) == 3
        await client.close()


async def test_a_reply_being_written_when_the_owner_comes_back_is_not_sent(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    async with running_app(tmp_path, RULES, **away_settings(fake_discord, fake_openai)) as running:
        client = await PluginClient.connect(running.url)
        await presence(client, "idle")
        fake_openai.delay = 0.5
        writing = asyncio.Event()
        chain = running.app.llm
        answer = chain.answer

        async def answer_and_tell(*args: Any, **kwargs: Any) -> Any:
            writing.set()
            return await answer(*args, **kwargs)

        chain.answer = answer_and_tell  # type: ignore[method-assign]
        await client.message("1001", "111", "222", "slow one")
        await asyncio.wait_for(writing.wait(), 5)
        await presence(client, "online")  # back while the LLM is still writing
        await quiet(running)
        assert len(fake_openai.requests) == 1  # it was written...
        assert fake_discord.messages == []  # ...but not sent
        history = await OwnerStore(running.app.store).history(0)
        assert [(e.kind, e.text) for e in history] == [
            ("message", "slow one"),
            ("skipped", "the owner is present (Discord status online)"),
        ]
        await client.close()


async def test_a_rule_with_reply_when_always_answers_while_the_owner_is_present(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    async with running_app(tmp_path, RULES, **away_settings(fake_discord, fake_openai)) as running:
        client = await PluginClient.connect(running.url)
        await presence(client, "online")
        await client.message("1001", "112", "223", "anyone?")
        [posted] = await fake_discord.wait_for_messages(1)
        assert posted["channel_id"] == "223"
        await client.close()


async def test_a_plugin_that_disconnects_leaves_the_last_known_status(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    async with running_app(tmp_path, RULES, **away_settings(fake_discord, fake_openai)) as running:
        first = await PluginClient.connect(running.url)
        await presence(first, "idle")
        await first.wait_for_owner_frame("away_status", presence="idle")
        await first.close()
        second = await PluginClient.connect(running.url)
        status = await second.wait_for_owner_frame("away_status")
        assert (status["presence"], status["away"], status["replying"]) == ("idle", True, True)
        await second.message("1001", "111", "222", "still there?")
        await fake_discord.wait_for_messages(1)
        await second.close()


async def test_coming_back_sends_one_summary_of_what_was_said(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    settings = away_settings(fake_discord, fake_openai)
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await presence(client, "online")
        await client.message("900", "111", "222", "before you left")  # present: not answered
        await presence(client, "idle")
        await client.message("1001", "111", "222", "first\nquestion")
        await fake_discord.wait_for_messages(1)
        await client.message("1002", "111", "222", "second")
        await client.message("1003", "112", "223", "other chat")
        await fake_discord.wait_for_messages(3)
        await running.app.relay.drain()
        assert not [f for f in client.owner_frames if f["type"] == "summary"]

        await presence(client, "online")
        summary = await client.wait_for_owner_frame("summary")
        chats = {(chat["user"], chat["channel"]): chat for chat in summary["chats"]}
        assert chats["111", "222"]["answered"] == 2
        assert chats["111", "222"]["replies"] == [
            "echo: first",  # the first line of each reply
            "echo: second [turns=4]",  # 900 is remembered, though not answered
        ]
        assert chats["112", "223"] == {
            "user": "112",
            "channel": "223",
            "answered": 1,
            "replies": ["echo: other chat [turns=1]"],
        }
        assert summary["drafts"] == []
        await presence(client, "online")  # no new away period: no second summary
        # Frames are handled in order: the status answer comes after any summary would have.
        await client.send_raw(json.dumps({"type": "status"}))
        assert (await client.next_frame())["type"] == "status"
        assert len([f for f in client.owner_frames if f["type"] == "summary"]) == 1
        await client.close()


# The manual switch, from the command line against the running server.


async def test_the_away_command_switches_the_running_server_and_wins_over_the_status(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    settings = away_settings(fake_discord, fake_openai)
    async with running_app(tmp_path, RULES, **settings) as running:
        config = str(write_cli_config(running, tmp_path / "config.json"))
        client = await PluginClient.connect(running.url)
        await presence(client, "online")

        status = await run_cli("away", "status", "--config", config, cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        assert "away switch:     auto (follows your Discord status)" in status.stdout
        assert "Discord status:  online" in status.stdout
        assert "replies go out:  no (you are present)" in status.stdout
        assert '(1 rule(s) with "reply_when": "always" reply anyway)' in status.stdout

        on = await run_cli("away", "on", "--config", config, cwd=tmp_path)
        assert on.returncode == 0, on.stderr
        assert "replies go out:  yes (you are away)" in on.stdout
        await client.wait_for_owner_frame("away_status", switch="on")  # the plugin is told
        await client.message("1001", "111", "222", "you there?")
        await fake_discord.wait_for_messages(1)

        off = await run_cli("away", "off", "--config", config, cwd=tmp_path)
        assert "away switch:     off" in off.stdout
        await presence(client, "idle")  # the switch wins over an idle status
        await client.message("1002", "111", "222", "hello?")
        await quiet(running)
        assert len(fake_discord.messages) == 1
        summary = await client.wait_for_owner_frame("summary")  # switching off is coming back
        assert summary["chats"][0]["answered"] == 1

        auto = await run_cli("away", "auto", "--config", config, cwd=tmp_path)
        assert "Discord status:  idle" in auto.stdout
        assert "replies go out:  yes" in auto.stdout
        await client.message("1003", "111", "222", "and now?")
        await fake_discord.wait_for_messages(2)
        await client.close()

    # The switch survives a restart; the Discord status does not (present until reported).
    async with running_app(tmp_path, RULES, **settings) as running:
        config = str(write_cli_config(running, tmp_path / "config.json"))
        await run_cli("away", "on", "--config", config, cwd=tmp_path)
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        status = await client.wait_for_owner_frame("away_status")
        assert (status["switch"], status["presence"], status["replying"]) == ("on", None, True)
        await client.close()


async def test_a_cli_client_is_never_chosen_to_post_replies(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    settings = {
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": FakeOpenAI.API_KEY,
        "MESSENGER": "plugin",
        "REPLY_WHEN": "away",
    }
    async with running_app(tmp_path, RULES, **settings) as running:
        plugin = await PluginClient.connect(running.url)
        async with connect(running.url) as cli:
            hello = {"type": "hello", "secret": SECRET, "client": "cli", "role": "cli"}
            await cli.send(json.dumps(hello))
            assert json.loads(await cli.recv())["type"] == "welcome"
            await cli.send(json.dumps({"type": "away", "mode": "on"}))
            answer = json.loads(await cli.recv())
            assert (answer["type"], answer["switch"], answer["replying"]) == (
                "away_status",
                "on",
                True,
            )
            # The CLI connected last, yet the reply goes through the plugin.
            await plugin.message("1001", "111", "222", "hi")
            [send] = await plugin.wait_for_sends(1)
            assert send["content"] == "[auto-reply] echo: hi [turns=1]"
            await cli.send(json.dumps({"type": "away"}))  # a plain status request
            assert json.loads(await cli.recv())["switch"] == "on"
        await running.app.relay.drain()
        await plugin.close()


async def test_the_away_command_says_clearly_when_it_cannot_reach_the_server(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.json"
    async with running_app(tmp_path, RULES) as running:
        write_cli_config(running, config)
        values = json.loads(config.read_text())
        config.write_text(json.dumps({**values, "WEBSOCKET_SECRET": "not-the-servers-secret"}))
        refused = await run_cli("away", "on", "--config", str(config), cwd=tmp_path)
        assert refused.returncode == 2
        assert "refused the secret" in refused.stderr
        assert "not-the-servers-secret" not in refused.stderr + refused.stdout
    down = await run_cli("away", "status", "--config", str(config), cwd=tmp_path)
    assert down.returncode == 2
    assert f"no relay server at ws://127.0.0.1:{values['WEBSOCKET_PORT']}" in down.stderr
    assert "discord-auto-reply serve" in down.stderr
