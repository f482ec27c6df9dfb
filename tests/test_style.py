"""`style learn | show | set | reset` through the real CLI: the owner's stored messages and a
data package go to the configured LLM (the fake OpenAI server) with the instruction never to
quote them; the profile is kept in the relay's database and joins the system prompt of a rule
with "style"."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from server.owner.style_profile import INSTRUCTION, MAX_LINES, PROMPT_HEADING, sample
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI, reply
from tests.relay_harness import PluginClient, run_cli, running_app, write_cli_config
from tests.test_relay import rest_settings

RULES = (
    'CONTEXT_MESSAGE = "You are Sam\'s stand-in."\n'
    'REPLY_TO = [{"user": "111", "channel": "222", "style": True}, ("112", "223")]\n'
)
PROFILE = "Short lowercase lines, few commas, a 🙂 now and then.\nExample: ok sounds good 🙂"


def package(path: Path) -> Path:
    """A tiny data package: one channel's messages as JSON, another's as CSV."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "messages/c100/messages.json",
            json.dumps([{"ID": 1, "Timestamp": "2024-01-01", "Contents": "brb grabbing food"}]),
        )
        archive.writestr(
            "messages/c200/messages.csv",
            'ID,Timestamp,Contents,Attachments\n2,2024-01-02,"nah, tmrw maybe",\n',
        )
        archive.writestr("account/user.json", json.dumps({"Contents": "not a message"}))
    return path


def answer(messages: list[dict[str, Any]]) -> str:
    """The profile for a style request, else the usual echo."""
    return PROFILE if messages[0]["content"] == INSTRUCTION else reply(messages)


def test_sample_caps_and_leaves_out_placeholders() -> None:
    lines = [f"line {n}" for n in range(MAX_LINES * 3)] + ["[photo: a.png]", "  ", "x" * 900]
    picked = sample(lines, seed=1)
    assert len(picked) == MAX_LINES
    assert "[photo: a.png]" not in picked and all(len(line) <= 300 for line in picked)


async def test_style_learn_show_set_reset_and_the_profile_in_the_system_prompt(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply_fn = answer
    settings = rest_settings(fake_discord, fake_openai, TAKEOVER_MINUTES=0.0)
    async with running_app(tmp_path, RULES, **settings) as running:
        config_path = write_cli_config(running, tmp_path / "config.json")
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config.update(
            OPENAI_API_KEY=fake_openai.API_KEY,
            OPENAI_BASE_URL=fake_openai.base_url,
            LLM_BACKENDS=["openai"],
        )
        config_path.write_text(json.dumps(config), encoding="utf-8")
        cli = ("--config", str(config_path))
        client = await PluginClient.connect(running.url)
        # The owner writes in a watched chat: stored as the owner's turn.
        await client.message("9001", "9", "222", "lol ok see u at 8", is_self=True)
        await running.app.relay.drain()

        empty = await run_cli("style", "show", *cli, cwd=tmp_path)
        assert "no style profile yet" in empty.stdout
        zip_path = package(tmp_path / "package.zip")
        learned = await run_cli("style", "learn", "--from", str(zip_path), *cli, cwd=tmp_path)
        assert learned.returncode == 0, learned.stderr
        assert "learned from 3 of your messages" in learned.stdout
        assert PROFILE in learned.stdout
        [request] = fake_openai.requests
        system, sent = request["messages"]
        assert system == {"role": "system", "content": INSTRUCTION}
        assert "Never quote" in system["content"]
        assert sorted(sent["content"].splitlines()) == [
            "- brb grabbing food",
            "- lol ok see u at 8",
            "- nah, tmrw maybe",
        ]
        shown = await run_cli("style", "show", *cli, cwd=tmp_path)
        assert shown.stdout.strip() == PROFILE

        # A rule with "style": the profile joins the system prompt; others go without it.
        await client.message("9002", "111", "222", "you coming?")
        await client.message("9003", "112", "223", "you coming?")
        await fake_discord.wait_for_messages(2)
        await running.app.relay.drain()
        # The system prompt names who writes: "You are answering user111 …".
        styled, plain = (
            next(r["messages"][0]["content"] for r in fake_openai.requests[1:] if who in str(r))
            for who in ("answering user111", "answering user112")
        )
        assert styled.endswith(f"{PROMPT_HEADING}\n{PROFILE}")
        assert PROMPT_HEADING not in plain

        own = tmp_path / "mine.txt"
        own.write_text("Writes in full sentences.\n", encoding="utf-8")
        changed = await run_cli("style", "set", "--file", str(own), *cli, cwd=tmp_path)
        assert changed.returncode == 0, changed.stderr
        shown = await run_cli("style", "show", *cli, cwd=tmp_path)
        assert shown.stdout.strip() == "Writes in full sentences."
        removed = await run_cli("style", "reset", *cli, cwd=tmp_path)
        assert "removed" in removed.stdout
        shown = await run_cli("style", "show", *cli, cwd=tmp_path)
        assert "no style profile yet" in shown.stdout
        await client.close()
