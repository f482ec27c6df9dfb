"""The gateway bot against a server as rude as Spacebar, or as Discord on a bad day: refused
commands, null guild ids, interactions without a channel object, payloads discord.py cannot read.
Whatever it sends or refuses costs at most what it concerns; messages are still answered."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import pytest

from server.bot import registration
from server.bot.commands import REFUSAL
from tests.bot_harness import DM_CHANNEL, FRIEND, GUILD_CHANNEL, STRANGER, running_bot
from tests.fakes.openai_api import FakeOpenAI
from tests.fault_rig import eventually

RULES = f'''
REPLY_TO = [("{FRIEND}", "{DM_CHANNEL}"), ("{FRIEND}", "{GUILD_CHANNEL}")]
PERSONAS = {{"pirate": "You talk like a pirate."}}
'''


def lines(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[str]:
    """The captured log lines at `level` or above that contain `text`."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= level and text in record.getMessage()
    ]


async def test_refused_commands_cost_only_the_commands_and_are_registered_later(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registration, "FIRST_RETRY_SECONDS", 0.2)
    caplog.set_level(logging.DEBUG, logger="server.bot")
    async with running_bot(tmp_path, fake_openai, RULES, flavour="spacebar") as running:
        api = running.api
        # Spacebar refused the bulk overwrite (its schema lacks max_length); the bot went on.
        assert api.refused_overwrites == 1
        assert api.command_overwrites == 0
        [refused] = lines(caplog, logging.WARNING, "slash commands")
        assert refused.startswith(
            "the slash commands (/reset, /persona, /ask, /session) are not registered"
        )
        assert "50035" in refused
        assert "In /persona.options.0: must NOT have additional properties" in refused
        assert "messages are still answered" in refused

        # A DM (Spacebar sends "guild_id": null in it) and a mention are answered meanwhile.
        api.post_as_user(FRIEND, DM_CHANNEL, "hello over there")
        [reply] = await running.replies(1)
        assert reply["content"] == "echo: hello over there [turns=1]"
        assert reply["channel_id"] == DM_CHANNEL
        api.post_as_user(FRIEND, GUILD_CHANNEL, f"<@{api.BOT_ID}> and here?", mentions_bot=True)
        replies = await running.replies(2)
        assert replies[1]["content"] == "echo: and here? [turns=1]"

        # Tried again with backoff: still refused (at debug level only), then accepted.
        await eventually(lambda: api.refused_overwrites >= 2, "a second attempt")
        assert len(lines(caplog, logging.INFO, "slash commands")) == 1
        api.refused_option_keys = frozenset()
        await eventually(lambda: api.command_overwrites == 1, "registered at last", timeout=5)
        await eventually(
            lambda: bool(lines(caplog, logging.INFO, "registered 4 slash commands at attempt")),
            "the registration logged",
        )
        assert {command["name"] for command in api.commands} == {
            "reset",
            "persona",
            "ask",
            "session",
        }
        times = api.overwrite_times
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert len(gaps) >= 2
        assert all(later >= earlier * 1.5 for earlier, later in itertools.pairwise(gaps))
        assert gaps[0] >= 0.2


async def test_interactions_with_only_a_channel_id_are_answered_from_the_ids(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_bot(tmp_path, fake_openai, RULES, flavour="spacebar") as running:
        api, gateway = running.api, running.gateway
        in_dm = api.new_interaction("persona", FRIEND, DM_CHANNEL, options={"name": "pirate"})
        assert "channel" not in in_dm.payload and in_dm.payload["guild_id"] is None
        gateway.interact(in_dm)
        answered = await api.wait_for_answer(in_dm)
        assert answered["content"] == "From now on I answer you here as “pirate”."

        in_guild = api.new_interaction("ask", FRIEND, GUILD_CHANNEL, options={"prompt": "2+2?"})
        assert "channel" not in in_guild.payload
        gateway.interact(in_guild)
        assert (await api.wait_for_answer(in_guild))["content"] == "echo: 2+2? [turns=1]"

        refused = api.new_interaction("ask", STRANGER, DM_CHANNEL, options={"prompt": "hi"})
        gateway.interact(refused)
        await refused.acknowledged.wait()
        assert refused.callback is not None
        assert refused.callback["data"]["content"] == REFUSAL  # the rules saw the channel id


async def test_an_interaction_not_answered_is_logged_with_the_reason(
    tmp_path: Path, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.bot")
    async with running_bot(tmp_path, fake_openai, RULES) as running:
        api, gateway = running.api, running.gateway
        nowhere = api.new_interaction("ask", FRIEND, DM_CHANNEL, options={"prompt": "hi"})
        del nowhere.payload["channel"], nowhere.payload["channel_id"]
        gateway.interact(nowhere)
        button = api.new_interaction("ask", FRIEND, DM_CHANNEL)
        button.payload["type"] = 3  # a message component: the bot has none
        button.payload["data"] = {"custom_id": "x", "component_type": 2}
        gateway.interact(button)
        await eventually(
            lambda: bool(lines(caplog, logging.INFO, f"interaction {button.id} not answered")),
            "the component logged",
        )
        [said] = lines(caplog, logging.WARNING, f"(interaction {nowhere.id}) not answered")
        assert said == f"/ask (interaction {nowhere.id}) not answered: it names no channel"
        assert lines(caplog, logging.INFO, f"interaction {button.id} not answered") == [
            f"interaction {button.id} not answered: a component, and the bot has only "
            "slash commands"
        ]


async def test_unreadable_events_are_logged_once_per_type_without_their_text(
    tmp_path: Path, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="server.bot")
    async with running_bot(tmp_path, fake_openai, RULES) as running:
        api, gateway = running.api, running.gateway
        broken = api.post_as_user(FRIEND, DM_CHANNEL, "a secret plan")  # answered: 1 reply
        await running.replies(1)
        for n in range(3):
            gateway.dispatch("MESSAGE_CREATE", {**broken, "id": f"not-a-snowflake-{n}"})
        gateway.dispatch("TYPING_START", {"channel_id": None, "user_id": FRIEND})
        gateway.dispatch("MESSAGE_CREATE", {**broken, "author": None})
        api.post_as_user(FRIEND, DM_CHANNEL, "still there?")
        replies = await running.replies(2)
        assert replies[1]["content"] == "echo: still there? [turns=3]"
        assert len(gateway.identifies) == 1  # the connection was kept

        said = [
            r.getMessage()
            for r in caplog.records
            if r.levelno >= logging.INFO and "could not be read" in r.getMessage()
        ]
        assert len(said) == 2, said  # once per event type
        assert said[0].startswith("skipped a MESSAGE_CREATE event the gateway sent")
        assert said[1].startswith("skipped a TYPING_START event the gateway sent")
        assert running.bot.client.payloads.skipped == {"MESSAGE_CREATE": 4, "TYPING_START": 1}
        informative = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
        assert "a secret plan" not in informative


async def test_a_frame_discord_py_cannot_handle_costs_a_reconnection_not_the_bot(
    tmp_path: Path, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.bot")
    async with running_bot(tmp_path, fake_openai, RULES) as running:
        api, gateway = running.api, running.gateway
        await gateway.send_raw(json.dumps(["not", "an", "object"]))
        await eventually(lambda: len(gateway.identifies) == 2, "connected again", timeout=10)
        await gateway.wait_until_ready()
        api.post_as_user(FRIEND, DM_CHANNEL, "are you back?")
        [reply] = await running.replies(1)
        assert reply["content"] == "echo: are you back? [turns=1]"
        [said] = lines(caplog, logging.WARNING, "gateway connection stopped")
        assert "AttributeError" in said
        assert not running.task.done()
