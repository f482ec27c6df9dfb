"""What a message with attachments, stickers, embeds, a reply or a forward reads as in a turn,
and the optional frame fields that carry them (old plugins' frames still parse)."""

from __future__ import annotations

import json
from typing import Any

from server.conversation.placeholders import size_text, turn_text
from server.transport.protocol import IncomingMessage, parse_client_frame


def frame(**fields: Any) -> IncomingMessage:
    data = {
        "type": "message",
        "id": "1",
        "channel": "222",
        "author": {"id": "111", "username": "sam", "display_name": "Sam"},
        "content": "",
        **fields,
    }
    parsed = parse_client_frame(json.dumps(data))
    assert isinstance(parsed, IncomingMessage)
    return parsed


def test_an_old_plugins_frame_still_parses_and_reads_as_its_text() -> None:
    message = frame(author={"id": "111", "username": "sam"}, content="hi")
    assert message.attachments == [] and message.reference is None
    assert message.author.name == "sam"
    assert turn_text(message) == "hi"


def test_each_attachment_kind_has_its_placeholder() -> None:
    message = frame(
        content="look!",
        attachments=[
            {"filename": "beach.jpg", "content_type": "image/jpeg", "size": 90_000},
            {"filename": "notes.txt", "content_type": "text/plain", "size": 3000},
            {"filename": "clip.mp4", "content_type": "video/mp4", "size": 10},
            {"filename": "x.png", "size": 10},
        ],
        stickers=["Wave"],
    )
    assert turn_text(message) == (
        "look!\n[photo: beach.jpg]\n[file: notes.txt, 3 KB]\n[video: clip.mp4]\n"
        "[photo: x.png]\n[sticker: Wave]"
    )


def test_a_voice_message_reads_with_its_length_or_its_transcript() -> None:
    voice = {
        "filename": "voice-message.ogg",
        "content_type": "audio/ogg",
        "size": 20_000,
        "voice": True,
        "duration": 12.4,
    }
    message = frame(attachments=[voice])
    assert message.has_substance()
    assert turn_text(message) == "[voice message, 0:12]"
    assert turn_text(message, ["[voice message, 0:12] see you at six"]) == (
        "[voice message, 0:12] see you at six"
    )


def test_a_reply_carries_what_it_replies_to_shortened() -> None:
    long = "word " * 100
    message = frame(
        content="what do you think of this?",
        reference={"author": "Ann", "content": long, "attachments": ["plan.png"]},
    )
    first, second = turn_text(message).split("\n")
    assert first.startswith('(replying to Ann: "word word')
    assert first.endswith('… [photo: plan.png]")') and len(first) < 260
    assert second == "what do you think of this?"


def test_forwards_and_link_embeds() -> None:
    message = frame(
        content="https://example.com/a",
        embeds=[{"title": "A page", "description": "About a", "url": "https://example.com/a"}],
        forwarded=[{"content": "meet at 6", "attachments": ["map.pdf"]}],
    )
    assert turn_text(message) == (
        'https://example.com/a\n[link: A page: About a]\n(forwarded: "meet at 6 [file: map.pdf]")'
    )


def test_nothing_to_answer_without_text_attachment_sticker_or_forward() -> None:
    assert not frame(content="  ").has_substance()
    assert frame(stickers=["Wave"]).has_substance()


def test_sizes_read_as_people_write_them() -> None:
    assert [size_text(n) for n in (512, 3000, 2_500_000)] == ["512 bytes", "3 KB", "2.4 MB"]
