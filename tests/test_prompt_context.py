"""Who and when in the system prompt: the sender's name, the owner's local time, their absence
and the away note (set from the command line, AWAY_NOTE, or the Discord custom status); personas
that place these themselves; names on the turns of channels where anyone may write."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from server.conversation.prompt_context import OwnerContext, PromptContext, system_prompt
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI
from tests.relay_harness import PluginClient, run_cli, running_app, write_cli_config
from tests.test_relay import rest_settings

BERLIN = ZoneInfo("Europe/Berlin")
# Friday 2026-12-04 17:30 in Berlin; away since 14:05 that day.
NOW = datetime(2026, 12, 4, 17, 30, tzinfo=BERLIN).timestamp()
SINCE = datetime(2026, 12, 4, 14, 5, tzinfo=BERLIN).timestamp()
AWAY = OwnerContext("Sam", away=True, away_since=SINCE, note="at the gym, back at 18:00")


def test_one_context_line_follows_a_persona_without_placeholders() -> None:
    prompt = system_prompt("You stand in for Sam.", PromptContext("Ann", AWAY, NOW, BERLIN))
    assert prompt == (
        "You stand in for Sam.\n\nYou are answering Ann for Sam. It is Friday 2026-12-04, "
        '17:30 where Sam is. Sam is away since 14:05. Their away note: "at the gym, back at '
        '18:00".'
    )


def test_a_persona_places_the_values_itself() -> None:
    persona = (
        "{owner} is out ({away_note}) since {away_since}; {weekday} {date} {time}; hi {sender}"
    )
    prompt = system_prompt(persona, PromptContext("Ann", AWAY, NOW, BERLIN))
    assert (
        prompt
        == "Sam is out (at the gym, back at 18:00) since 14:05; Friday 2026-12-04 17:30; hi Ann"
    )


def test_present_owner_unknown_name_and_an_earlier_day() -> None:
    present = PromptContext("Ann", OwnerContext(), NOW, BERLIN)
    assert (
        present.line()
        == "You are answering Ann for the owner. It is Friday 2026-12-04, 17:30 where the owner is."
    )
    yesterday = OwnerContext("Sam", away=True, away_since=SINCE - 86400)
    assert "Sam is away since Thursday 14:05." in PromptContext("A", yesterday, NOW, BERLIN).line()
    assert system_prompt("", present) == present.line()


RULES = 'CONTEXT_MESSAGE = "You stand in for Sam."\nREPLY_TO = [("111", "222"), ("*", "333")]\n'


def system_of(fake_openai: FakeOpenAI) -> str:
    return str(fake_openai.requests[-1]["messages"][0]["content"])


async def test_when_are_you_back_can_be_answered_from_the_note_and_the_time(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    settings = rest_settings(fake_discord, fake_openai, REPLY_WHEN="away", TIMEZONE="Europe/Berlin")
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        presence = {
            "type": "presence",
            "status": "idle",
            "custom_status": "on holiday",
            "name": "Sam",
        }
        await client.send_raw(json.dumps(presence))
        await client.wait_for_owner_frame("away_status", presence="idle")
        await client.message("7001", "111", "222", "when are you back?")
        await fake_discord.wait_for_messages(1)
        # No note set and no AWAY_NOTE: the custom status stands in.
        line = system_of(fake_openai).split("\n\n")[1]
        local = datetime.fromtimestamp(time.time(), BERLIN)
        assert line.startswith(f"You are answering user111 for Sam. It is {local:%A %Y-%m-%d}, ")
        assert " Sam is away since " in line
        assert line.endswith('Their away note: "on holiday".')

        # The CLI sets a note; `away status` shows it and where it comes from.
        config = str(write_cli_config(running, tmp_path / "config.json"))
        set_note = await run_cli(
            "away", "note", "at the gym, back at 18:00", "--config", config, cwd=tmp_path
        )
        assert set_note.returncode == 0, set_note.stderr
        assert (
            'away note:       "at the gym, back at 18:00" (set with away note)' in set_note.stdout
        )
        ann = {"id": "111", "username": "ann", "display_name": "Ann"}
        again = {"type": "message", "id": "7002", "channel": "222", "content": "and now?"}
        await client.send_raw(json.dumps({**again, "author": ann}))
        await fake_discord.wait_for_messages(2)
        await running.app.relay.drain()
        line = system_of(fake_openai).split("\n\n")[1]
        assert line.startswith("You are answering Ann for Sam.")
        assert line.endswith('Their away note: "at the gym, back at 18:00".')

        cleared = await run_cli("away", "note", "--clear", "--config", config, cwd=tmp_path)
        assert '"on holiday" (your Discord custom status)' in cleared.stdout
        both = await run_cli(
            "away", "on", "--note", "back Monday", "--config", config, cwd=tmp_path
        )
        assert 'away note:       "back Monday" (set with away note)' in both.stdout
        assert "away switch:     on" in both.stdout
        status = await run_cli("away", "status", "--config", config, cwd=tmp_path)
        assert '"back Monday"' in status.stdout
        bad = await run_cli("away", "note", "--config", config, cwd=tmp_path)
        assert bad.returncode == 2 and "--clear" in bad.stderr
        await client.close()

    # Kept across a restart.
    async with running_app(tmp_path, RULES, **settings) as running:
        assert running.app.away_note.text == "back Monday"


async def test_away_note_from_config_and_names_where_anyone_may_write(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    settings = rest_settings(fake_discord, fake_openai, AWAY_NOTE="travelling until Sunday")
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        frame = {"type": "message", "channel": "333", "content": "hi all"}
        for index, (user, name) in enumerate([("501", "Ann Lee"), ("502", "Bo")]):
            author = {"id": user, "username": f"u{user}", "display_name": name}
            await client.send_raw(json.dumps({**frame, "id": f"71{index}", "author": author}))
            await fake_discord.wait_for_messages(index + 1)
        await running.app.relay.drain()
        await client.close()
    ann, bo = fake_openai.requests
    assert ann["messages"][-1] == {"role": "user", "content": "hi all", "name": "Ann_Lee"}
    assert bo["messages"][-1]["name"] == "Bo"
    assert "You are answering Bo for the owner." in bo["messages"][0]["content"]
    assert 'Their away note: "travelling until Sunday".' in bo["messages"][0]["content"]
