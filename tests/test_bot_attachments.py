"""Bot mode reads messages as the relay does, through discord.py's own objects: photos to a vision
model, voice notes transcribed, text files inlined, the replied-to message quoted, the sender's
display name and the time in the system prompt. Real discord.py against the fake gateway and
REST (whose CDN serves the files at signed URLs) and the fake OpenAI server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from server.conversation.memory import PairKey
from tests.bot_harness import DM_CHANNEL, FRIEND, GUILD_CHANNEL, running_bot
from tests.fakes.openai_api import FakeOpenAI
from tests.test_attachments import png

RULES = f'''
CONTEXT_MESSAGE = "You are Sam's assistant."
REPLY_TO = [("{FRIEND}", "{DM_CHANNEL}"), ("*", "{GUILD_CHANNEL}")]
'''
IS_VOICE_MESSAGE = 1 << 13
CDN = {"ATTACHMENT_HOSTS": ["127.0.0.1"]}


def user_parts(request: dict[str, Any]) -> Any:
    """The content of the request's last user message."""
    return [m for m in request["messages"] if m["role"] == "user"][-1]["content"]


async def remembered(bot: Any, pair: PairKey) -> list[str]:
    """What the bot's memory holds for `pair`'s main session."""
    store = bot.parts.store
    assert store is not None
    return [turn.content for turn in await store.conversation(pair)]


async def test_a_photo_without_text_reaches_a_vision_model_and_memory_as_its_placeholder(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    config = {**CDN, "OPENAI_MODEL": "gpt-4o", "AWAY_NOTE": "on a train, back at 18:00"}
    async with running_bot(tmp_path, fake_openai, RULES, **config) as running:
        photo = running.api.attachment(DM_CHANNEL, "beach.png", png(), "image/png")
        running.api.post_as_user(FRIEND, DM_CHANNEL, "", attachments=[photo])
        [posted] = await running.replies(1)
        memory = await remembered(running.bot, (FRIEND, DM_CHANNEL))

    [request] = fake_openai.requests
    text, image = user_parts(request)
    assert text == {"type": "text", "text": "[photo: beach.png]"}
    assert image["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
    assert posted["content"] == "echo: [photo: beach.png] [turns=1]"
    assert memory == ["[photo: beach.png]", "echo: [photo: beach.png] [turns=1]"]
    # Who writes (the display name: the fake's global name) and when, and the away note.
    persona, context = request["messages"][0]["content"].split("\n\n")
    assert persona == "You are Sam's assistant."
    assert re.fullmatch(
        r"You are answering User0001 for the owner\. It is \w+day \d{4}-\d\d-\d\d, \d\d:\d\d "
        r'where the owner is\. Their away note: "on a train, back at 18:00"\.',
        context,
    ), context


async def test_a_text_only_model_gets_the_placeholder_and_a_failed_download_keeps_it(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_bot(tmp_path, fake_openai, RULES, ATTACHMENT_HOSTS=[]) as running:
        photo = running.api.attachment(DM_CHANNEL, "cat.png", png(), "image/png")
        running.api.post_as_user(FRIEND, DM_CHANNEL, "look!", attachments=[photo])
        [posted] = await running.replies(1)
        assert running.api.cdn_requests == []  # 127.0.0.1 is not among ATTACHMENT_HOSTS
    assert user_parts(fake_openai.requests[0]) == "look!\n[photo: cat.png]"
    assert posted["content"] == "echo: look!\n[photo: cat.png] [turns=1]"


async def test_a_voice_note_is_answered_from_its_transcript(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.transcript = "are you coming tonight"
    config = {**CDN, "TRANSCRIBE_MODEL": "whisper-1"}
    async with running_bot(tmp_path, fake_openai, RULES, **config) as running:
        data = b"OggS" + b"\x00" * 2000
        note = running.api.attachment(
            DM_CHANNEL, "voice-message.ogg", data, "audio/ogg", duration_secs=12.0
        )
        running.api.post_as_user(FRIEND, DM_CHANNEL, "", attachments=[note], flags=IS_VOICE_MESSAGE)
        [posted] = await running.replies(1)
        memory = await remembered(running.bot, (FRIEND, DM_CHANNEL))
    [form] = fake_openai.transcriptions
    assert form["model"] == "whisper-1" and form["size"] == 2004
    expected = "[voice message, 0:12] are you coming tonight"
    assert user_parts(fake_openai.requests[0]) == expected
    assert posted["content"] == f"echo: {expected} [turns=1]"
    assert memory[0] == expected


async def test_a_failed_transcription_keeps_the_voice_placeholder(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail_transcriptions(5)
    config = {**CDN, "TRANSCRIBE_MODEL": "whisper-1"}
    async with running_bot(tmp_path, fake_openai, RULES, **config) as running:
        note = running.api.attachment(
            DM_CHANNEL, "voice-message.ogg", b"OggS" + b"\x00" * 10, "audio/ogg", duration_secs=3
        )
        running.api.post_as_user(FRIEND, DM_CHANNEL, "", attachments=[note], flags=IS_VOICE_MESSAGE)
        [posted] = await running.replies(1)
    assert posted["content"] == "echo: [voice message, 0:03] [turns=1]"


async def test_a_reply_carries_what_it_replies_to_and_a_text_file_is_inlined(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_bot(tmp_path, fake_openai, RULES, **CDN) as running:
        api = running.api
        earlier = api.post_as_user(
            FRIEND, GUILD_CHANNEL, "the plan for saturday", mentions_bot=True
        )
        await running.replies(1)
        notes = api.attachment(GUILD_CHANNEL, "notes.txt", b"bring snacks\n", "text/plain")
        api.post_as_user(
            FRIEND,
            GUILD_CHANNEL,
            "what do you think?",
            mentions_bot=True,
            reply_to=earlier["id"],
            attachments=[notes],
            stickers=["Wave"],
        )
        replies = await running.replies(2)
    request = fake_openai.requests[-1]
    assert user_parts(request) == (
        '(replying to User0001: "the plan for saturday")\n'
        "what do you think?\n"
        "[file: notes.txt, 13 bytes]\n```\nbring snacks\n```\n"
        "[sticker: Wave]"
    )
    # A ("*", CHANNEL) rule: the newest turn carries its author's name.
    assert [m for m in request["messages"] if m["role"] == "user"][-1]["name"] == "User0001"
    assert replies[1]["content"].startswith('echo: (replying to User0001: "the plan')
