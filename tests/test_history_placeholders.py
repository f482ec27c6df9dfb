"""`history` and `memory show` after messages with a voice note, a photo, a text file and a
reply went through the real relay: the placeholders stand out (dim, italic) in a terminal, and
`history --json` gives them as fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.conversation.turn_parts import TurnPart, styled, turn_parts
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI
from tests.relay_harness import PluginClient, run_cli, running_app, write_cli_config
from tests.test_attachments import photo, settings, voice
from tests.test_relay import RULES

DIM_ITALIC = "\x1b[2;3m"


def test_a_turn_splits_into_words_and_placeholders() -> None:
    text = (
        '(replying to Sam: "the plan")\nwhat do you think?\nreally\n'
        "[file: notes.txt, 13 bytes]\n```\nbring snacks\n```\n"
        "[voice message, 0:12] see you\n[photo: beach.png]"
    )
    assert turn_parts(text) == [
        TurnPart("reply", '(replying to Sam: "the plan")', "the plan", "Sam"),
        TurnPart("text", detail="what do you think?\nreally"),
        TurnPart("file", "[file: notes.txt, 13 bytes]", "bring snacks"),
        TurnPart("voice", "[voice message, 0:12]", "see you"),
        TurnPart("photo", "[photo: beach.png]"),
    ]
    assert turn_parts("hello [sic]") == [TurnPart("text", detail="hello [sic]")]
    # Shown as stored, but for the fences around a file's content (which is dim instead).
    assert styled(text).plain == text.replace("```\n", "")
    shown = styled(text)
    marks = {shown.plain[span.start : span.end] for span in shown.spans if "italic" in span.style}
    assert marks == {
        '(replying to Sam: "the plan")',
        "[file: notes.txt, 13 bytes]",
        "[voice message, 0:12]",
        "[photo: beach.png]",
    }


async def test_history_and_memory_show_make_attachments_transcripts_and_replies_readable(
    tmp_path: Path,
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_openai.transcript = "are you coming tonight"
    config = settings(fake_discord, fake_openai, TRANSCRIBE_MODEL="whisper-1")
    async with running_app(tmp_path, RULES, **config) as running:
        cli_config = str(write_cli_config(running, tmp_path / "config.json"))
        client = await PluginClient.connect(running.url)
        await client.message("7001", "111", "222", "", attachments=[voice(fake_discord)])
        await fake_discord.wait_for_messages(1)
        await client.message(
            "7002",
            "111",
            "222",
            "look!",
            attachments=[photo(fake_discord)],
            reference={"author": "Sam", "content": "send me the beach"},
        )
        await fake_discord.wait_for_messages(2)
        await running.app.relay.drain()
        await client.close()

        as_json = await run_cli("history", "--json", "--config", cli_config, cwd=tmp_path)
        monkeypatch.setenv("FORCE_COLOR", "1")  # rich styles a pipe as it would a terminal
        as_table = await run_cli("history", "--config", cli_config, cwd=tmp_path)
        shown = await run_cli("memory", "show", "111", "222", "--config", cli_config, cwd=tmp_path)

    assert as_json.returncode == 0, as_json.stderr
    entries = json.loads(as_json.stdout)
    voice_note, _reply, photo_message, _second_reply = entries
    assert voice_note["text"] == "[voice message, 0:12] are you coming tonight"
    assert voice_note["placeholders"] == [
        {
            "kind": "voice",
            "placeholder": "[voice message, 0:12]",
            "content": "are you coming tonight",
        }
    ]
    assert photo_message["placeholders"] == [
        {
            "kind": "reply",
            "placeholder": '(replying to Sam: "send me the beach")',
            "author": "Sam",
            "content": "send me the beach",
        },
        {"kind": "photo", "placeholder": "[photo: beach.png]"},
    ]
    assert _reply["placeholders"] == []  # a placeholder counts only as a line of its own

    assert as_table.returncode == 0, as_table.stderr
    assert f"{DIM_ITALIC}[voice message, 0:12]" in as_table.stdout
    assert f"{DIM_ITALIC}[photo: beach.png]" in as_table.stdout
    assert "are you coming tonight" in as_table.stdout

    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "them (111): " in lines[0]
    assert f"{DIM_ITALIC}[voice message, 0:12]" in lines[0]
    assert "are you coming tonight" in lines[0]
    assert f'{DIM_ITALIC}(replying to Sam: "send me the beach")' in shown.stdout
    assert f"{DIM_ITALIC}[photo: beach.png]" in shown.stdout
