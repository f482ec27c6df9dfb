"""Photos, voice notes and files through the whole relay, over real sockets: the fake Discord's
CDN serves them at signed URLs, the fake OpenAI server checks the content parts, refuses images
for a text-only model, and transcribes. Whatever fails, the message is answered."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from server.llm.model_quirks import ModelQuirks, Rejection, learn, takes_images
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import TEXT_ONLY, FakeOpenAI
from tests.relay_harness import PluginClient, running_app
from tests.test_relay import RULES, rest_settings


def png() -> bytes:
    """A real 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def photo(fake_discord: FakeDiscord, name: str = "beach.png", **changes: Any) -> dict[str, Any]:
    data = png()
    url = fake_discord.add_attachment("222", name, data, "image/png")
    return {
        "filename": name,
        "content_type": "image/png",
        "size": len(data),
        "url": url,
        "width": 1,
        "height": 1,
        **changes,
    }


def settings(fake_discord: FakeDiscord, fake_openai: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return rest_settings(fake_discord, fake_openai, ATTACHMENT_HOSTS=["127.0.0.1"], **extra)


def parts(request: dict[str, Any]) -> list[Any]:
    """The content of the request's last user message."""
    return [m for m in request["messages"] if m["role"] == "user"][-1]["content"]


async def test_a_photo_reaches_a_vision_model_as_an_image_and_memory_as_its_placeholder(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    async with running_app(tmp_path, RULES, **settings(fake_discord, fake_openai)) as running:
        client = await PluginClient.connect(running.url)
        await client.message("6001", "111", "222", "look!", attachments=[photo(fake_discord)])
        [posted] = await fake_discord.wait_for_messages(1)
        await client.message("6002", "111", "222", "nice?")
        await fake_discord.wait_for_messages(2)
        await running.app.relay.drain()
        turns = await running.app.store.conversation(("111", "222"))
        await client.close()

    first, second = fake_openai.requests
    assert first["model"] == "gpt-4o-mini"
    text, image = parts(first)
    assert text == {"type": "text", "text": "look!\n[photo: beach.png]"}
    assert image["type"] == "image_url"
    assert image["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
    assert posted["content"] == "[auto-reply] echo: look!\n[photo: beach.png] [turns=1]"
    # Afterwards only the placeholder: in the next request and in memory.
    assert [m["content"] for m in second["messages"] if m["role"] == "user"] == [
        "look!\n[photo: beach.png]",
        "nice?",
    ]
    assert turns[0].content == "look!\n[photo: beach.png]"
    assert len(fake_discord.cdn_requests) == 1


async def test_a_model_that_refuses_images_is_asked_again_with_the_placeholder_and_remembered(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    fake_openai.models["text-only"] = TEXT_ONLY
    config = settings(fake_discord, fake_openai, OPENAI_MODEL="text-only", VISION=True)
    async with running_app(tmp_path, RULES, **config) as running:
        client = await PluginClient.connect(running.url)
        await client.message("6101", "111", "222", "", attachments=[photo(fake_discord)])
        [posted] = await fake_discord.wait_for_messages(1)
        await client.message("6102", "111", "222", "", attachments=[photo(fake_discord, "b.png")])
        await fake_discord.wait_for_messages(2)
        await running.app.relay.drain()
        await client.close()

    refused, retried, second = fake_openai.requests
    assert isinstance(parts(refused), list)
    assert parts(retried) == "[photo: beach.png]"
    assert posted["content"] == "[auto-reply] echo: [photo: beach.png] [turns=1]"
    assert parts(second) == "[photo: b.png]"  # learned: no second refusal


@pytest.mark.parametrize(
    ("extra", "model"),
    [
        ({}, "local-model"),  # VISION "auto": not known to take images
        ({"VISION": False}, "gpt-4o"),
        ({"ATTACHMENT_HOSTS": ["cdn.discordapp.com"]}, "gpt-4o"),  # 127.0.0.1 not allowed
    ],
)
async def test_no_image_is_downloaded_for_a_text_model_or_from_another_host(
    tmp_path: Path,
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    extra: dict[str, Any],
    model: str,
) -> None:
    config = {**settings(fake_discord, fake_openai, OPENAI_MODEL=model), **extra}
    async with running_app(tmp_path, RULES, **config) as running:
        client = await PluginClient.connect(running.url)
        await client.message("6201", "111", "222", "see", attachments=[photo(fake_discord)])
        await fake_discord.wait_for_messages(1)
        await running.app.relay.drain()
        await client.close()
    assert parts(fake_openai.requests[0]) == "see\n[photo: beach.png]"
    assert fake_discord.cdn_requests == []


async def test_an_expired_or_slow_download_becomes_the_placeholder_and_is_answered(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    expired = photo(fake_discord, "old.png")
    expired["url"] = fake_discord.add_attachment("222", "old.png", png(), expires_in=-60)
    unsigned = photo(fake_discord, "forged.png")
    unsigned["url"] = unsigned["url"].replace("hm=", "hm=0")
    async with running_app(tmp_path, RULES, **settings(fake_discord, fake_openai)) as running:
        client = await PluginClient.connect(running.url)
        await client.message("6301", "111", "222", "two", attachments=[expired, unsigned])
        [posted] = await fake_discord.wait_for_messages(1)
        await running.app.relay.drain()
        await client.close()
    assert parts(fake_openai.requests[0]) == "two\n[photo: old.png]\n[photo: forged.png]"
    assert len(fake_discord.cdn_requests) == 2
    assert posted["content"].startswith("[auto-reply] echo: two")


async def test_at_most_four_images_go_with_a_message(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    photos = [photo(fake_discord, f"p{n}.png") for n in range(6)]
    async with running_app(tmp_path, RULES, **settings(fake_discord, fake_openai)) as running:
        client = await PluginClient.connect(running.url)
        await client.message("6401", "111", "222", "album", attachments=photos)
        await fake_discord.wait_for_messages(1)
        await running.app.relay.drain()
        await client.close()
    content = parts(fake_openai.requests[0])
    assert [part["type"] for part in content] == ["text"] + ["image_url"] * 4
    assert len(fake_discord.cdn_requests) == 4


def voice(fake_discord: FakeDiscord) -> dict[str, Any]:
    data = b"OggS" + b"\x00" * 2000
    return {
        "filename": "voice-message.ogg",
        "content_type": "audio/ogg",
        "size": len(data),
        "url": fake_discord.add_attachment("222", "voice-message.ogg", data, "audio/ogg"),
        "voice": True,
        "duration": 12.0,
    }


async def test_a_voice_note_is_answered_from_its_transcript_and_remembered_with_it(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    fake_openai.transcript = "are you coming tonight"
    config = settings(fake_discord, fake_openai, TRANSCRIBE_MODEL="whisper-1")
    async with running_app(tmp_path, RULES, **config) as running:
        client = await PluginClient.connect(running.url)
        await client.message("6501", "111", "222", "", attachments=[voice(fake_discord)])
        [posted] = await fake_discord.wait_for_messages(1)
        await running.app.relay.drain()
        turns = await running.app.store.conversation(("111", "222"))
        await client.close()
    assert fake_openai.transcriptions == [
        {
            "model": "whisper-1",
            "filename": "voice-message.ogg",
            "content_type": "audio/ogg",
            "size": 2004,
        }
    ]
    expected = "[voice message, 0:12] are you coming tonight"
    assert parts(fake_openai.requests[0]) == expected
    assert turns[0].content == expected
    assert posted["content"] == f"[auto-reply] echo: {expected} [turns=1]"


@pytest.mark.parametrize("model", ["", "whisper-1"])
async def test_without_transcription_or_when_it_fails_the_voice_note_keeps_its_placeholder(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI, model: str
) -> None:
    fake_openai.fail_transcriptions(5)
    config = settings(fake_discord, fake_openai, TRANSCRIBE_MODEL=model)
    async with running_app(tmp_path, RULES, **config) as running:
        client = await PluginClient.connect(running.url)
        await client.message("6601", "111", "222", "", attachments=[voice(fake_discord)])
        [posted] = await fake_discord.wait_for_messages(1)
        await running.app.relay.drain()
        await client.close()
    assert posted["content"] == "[auto-reply] echo: [voice message, 0:12] [turns=1]"
    assert len(fake_openai.transcriptions) == (2 if model else 0)  # one retry by the SDK


async def test_small_text_files_are_inlined_and_large_ones_named(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    small = b"milk\neggs\n"
    large = b"x" * 20_000
    files = [
        {
            "filename": name,
            "content_type": "text/plain",
            "size": len(data),
            "url": fake_discord.add_attachment("222", name, data, "text/plain"),
        }
        for name, data in (("list.txt", small), ("big.txt", large))
    ]
    async with running_app(tmp_path, RULES, **settings(fake_discord, fake_openai)) as running:
        client = await PluginClient.connect(running.url)
        await client.message("6701", "111", "222", "shopping", attachments=files)
        await fake_discord.wait_for_messages(1)
        await running.app.relay.drain()
        await client.close()
    assert parts(fake_openai.requests[0]) == (
        "shopping\n[file: list.txt, 10 bytes]\n```\nmilk\neggs\n```\n[file: big.txt, 20 KB]"
    )
    assert len(fake_discord.cdn_requests) == 1


def test_vision_models_are_known_by_name() -> None:
    for model in ("gpt-4o-mini", "openai/gpt-4.1", "gemma3:4b", "llama3.2-vision", "o3", "o1"):
        assert takes_images(model), model
    for model in ("gpt-3.5-turbo", "o3-mini", "o1-mini", "llama3.1:8b", "local-model"):
        assert not takes_images(model), model


def test_an_image_refusal_teaches_only_when_images_were_sent() -> None:
    for message in (
        "Invalid content type. image_url is only supported by certain models.",
        "Qwen2-7B is not a multimodal model",
        "image input is not supported - hint: you may need to provide the mmproj",
    ):
        rejection = Rejection(400, message)
        lesson = learn(ModelQuirks(), rejection, sends_images=True)
        assert lesson is not None and not lesson.quirks.images, message
        assert learn(ModelQuirks(), rejection) is None
