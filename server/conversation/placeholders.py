"""What a message reads as in a turn: its text, with placeholders for what is not text.

`[photo: beach.jpg]`, `[voice message, 0:12]`, `[file: notes.txt, 3 KB]`, `[sticker: Wave]`,
`[link: title (url)]`, `(replying to Sam: "…")`, `(forwarded: "…")`. Pure: a message in, text out.
The model sees these (images too when it takes them, see `attachment_reader`); memory keeps them.
"""

from __future__ import annotations

import math
from pathlib import PurePosixPath

from server.transport.protocol import Attachment, Embed, IncomingMessage, Quoted

MAX_QUOTE = 200
"""Characters of a replied-to or forwarded message quoted in a turn."""
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".webm", ".mkv"})
AUDIO_SUFFIXES = frozenset({".mp3", ".ogg", ".wav", ".m4a", ".flac", ".opus"})


def suffix(filename: str) -> str:
    """The file name's extension, lower case with its dot ("" for none)."""
    return PurePosixPath(filename).suffix.lower()


def is_image(attachment: Attachment) -> bool:
    """An image, by content type or, failing that, by extension."""
    if attachment.content_type:
        return attachment.content_type.startswith("image/")
    return suffix(attachment.filename) in IMAGE_SUFFIXES


def is_voice(attachment: Attachment) -> bool:
    """A recorded voice message (the message's IS_VOICE_MESSAGE flag)."""
    return attachment.voice


def clock(seconds: float | None) -> str:
    """A duration as m:ss ("0:12"); "" when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def size_text(size: int) -> str:
    """A file size as people write it: "512 bytes", "3 KB", "2.4 MB"."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{math.ceil(size / 1024)} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def voice_placeholder(attachment: Attachment) -> str:
    """`[voice message, 0:12]` (or without the length when it is unknown)."""
    length = clock(attachment.duration)
    return f"[voice message, {length}]" if length else "[voice message]"


def attachment_placeholder(attachment: Attachment) -> str:
    """What an attachment reads as in a turn when its content is not there."""
    name = attachment.filename
    if is_voice(attachment):
        return voice_placeholder(attachment)
    if is_image(attachment):
        return f"[photo: {name}]"
    kind = (attachment.content_type or "").split("/")[0]
    if kind == "video" or suffix(name) in VIDEO_SUFFIXES:
        return f"[video: {name}]"
    if kind == "audio" or suffix(name) in AUDIO_SUFFIXES:
        return f"[audio: {name}]"
    return f"[file: {name}, {size_text(attachment.size)}]"


def named_placeholder(filename: str) -> str:
    """A placeholder from a file name alone (attachments of a quoted message)."""
    kind = "photo" if suffix(filename) in IMAGE_SUFFIXES else "file"
    return f"[{kind}: {filename}]"


def embed_text(embed: Embed, content: str = "") -> str:
    """`[link: title: description (url)]`, with whatever parts the embed has (the URL left out
    when `content`, the message's text, already holds it)."""
    words = ": ".join(_short(part) for part in (embed.title, embed.description) if part)
    where = f"({embed.url})" if embed.url and embed.url not in content else ""
    return "[link: " + " ".join(part for part in (words, where) if part) + "]"


def _short(text: str, limit: int = MAX_QUOTE) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def quote_text(quoted: Quoted) -> str:
    """A quoted message's text and attachments, on one line, shortened."""
    parts = [_short(quoted.content)] if quoted.content.strip() else []
    parts += [named_placeholder(name) for name in quoted.attachments]
    return " ".join(parts)


def reference_line(quoted: Quoted) -> str:
    """`(replying to Sam: "…")`."""
    who = f" to {quoted.author}" if quoted.author else ""
    return f'(replying{who}: "{quote_text(quoted)}")'


def turn_text(message: IncomingMessage, attachments: list[str] | None = None) -> str:
    """The message as a turn: what it replies to, its text, then one placeholder per attachment
    (or `attachments`, one text per attachment in order, when they were read: a transcript, a
    file's content), sticker, link embed and forwarded message, one per line."""
    lines: list[str] = []
    if message.reference is not None:
        lines.append(reference_line(message.reference))
    if message.content.strip():
        lines.append(message.content)  # as written: a message of text alone is kept unchanged
    read = attachments or []
    for index, attachment in enumerate(message.attachments):
        lines.append(read[index] if index < len(read) else attachment_placeholder(attachment))
    lines += [f"[sticker: {name}]" for name in message.stickers]
    lines += [embed_text(embed, message.content) for embed in message.embeds]
    lines += [f'(forwarded: "{quote_text(quoted)}")' for quoted in message.forwarded]
    return "\n".join(lines)
