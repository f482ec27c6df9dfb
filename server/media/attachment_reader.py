"""Reading what a message carries for the model: images as data URLs (for a model that takes
them), voice notes as transcripts, small text files inlined. Whatever cannot be read keeps its
placeholder (`placeholders`), so a message is never lost to a failed download.

The text it returns is what memory keeps (transcripts and file contents, image placeholders);
the images go with the request only.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.config import Settings
from server.conversation.placeholders import (
    attachment_placeholder,
    is_image,
    is_voice,
    suffix,
    turn_text,
    voice_placeholder,
)
from server.conversation.rules import Rule
from server.llm.model_quirks import takes_images
from server.media.attachments import MAX_AUDIO_BYTES, MAX_IMAGE_BYTES, AttachmentFetcher
from server.transport.protocol import Attachment, IncomingMessage

if TYPE_CHECKING:
    from server.media.transcriber import Transcriber

log = logging.getLogger(__name__)

MAX_IMAGES = 4
"""Images sent per message; the others keep their placeholder."""
MAX_TEXT_FILE_BYTES = 16 * 1024
"""Text attachments smaller than this are inlined."""
TEXT_SUFFIXES = frozenset(
    [
        ".txt",
        ".md",
        ".markdown",
        ".csv",
        ".tsv",
        ".json",
        ".jsonl",
        ".log",
        ".ini",
        ".toml",
        ".yaml",
        ".yml",
        ".xml",
        ".html",
        ".css",
        ".sql",
        ".py",
        ".js",
        ".mjs",
        ".ts",
        ".tsx",
        ".jsx",
        ".java",
        ".kt",
        ".c",
        ".h",
        ".cpp",
        ".hpp",
        ".cs",
        ".go",
        ".rs",
        ".rb",
        ".php",
        ".sh",
        ".bat",
        ".ps1",
        ".swift",
        ".lua",
        ".r",
        ".m",
        ".pl",
        ".scala",
        ".dart",
        ".vue",
        ".svelte",
    ]
)
# The first bytes of each image format a model takes, and its MIME type for the data URL.
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass(frozen=True)
class ReadMessage:
    """A message as the model gets it: `text` (also what memory keeps) and `images` (data URLs,
    for this request only)."""

    text: str
    images: tuple[str, ...] = ()


def sends_images(settings: Settings, rule: Rule) -> bool:
    """Whether `rule`'s model is sent images: its `vision`, else VISION ("auto": by model name)."""
    vision = rule.vision if rule.vision is not None else settings.VISION
    return takes_images(rule.model or settings.OPENAI_MODEL) if vision == "auto" else vision


def image_type(data: bytes) -> str | None:
    """The MIME type of PNG, JPEG, GIF or WebP bytes; None for anything else."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _IMAGE_MAGIC if data.startswith(magic)), None)


def is_text_file(attachment: Attachment) -> bool:
    """A text or source file, by extension or content type."""
    kind = (attachment.content_type or "").split(";")[0].strip()
    return (
        suffix(attachment.filename) in TEXT_SUFFIXES
        or kind.startswith("text/")
        or kind
        in (
            "application/json",
            "application/xml",
        )
    )


def decoded_text(data: bytes) -> str | None:
    """UTF-8 text without NUL characters, else None (a binary file by another name)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


class AttachmentReader:
    """Reads a message's attachments through the CDN fetcher and the transcriber (if on)."""

    def __init__(self, settings: Settings) -> None:
        timeout = min(settings.LLM_TIMEOUT_SECONDS, 30.0)
        self._fetcher = AttachmentFetcher(hosts=settings.ATTACHMENT_HOSTS, timeout=timeout)
        self._transcriber: Transcriber | None = None
        if settings.TRANSCRIBE_MODEL:
            from server.media.transcriber import Transcriber  # noqa: PLC0415 -- loads openai

            self._transcriber = Transcriber(
                model=settings.TRANSCRIBE_MODEL,
                base_url=settings.TRANSCRIBE_BASE_URL or settings.OPENAI_BASE_URL,
                api_key=settings.OPENAI_API_KEY,
                timeout=settings.LLM_TIMEOUT_SECONDS,
            )

    async def read(
        self, message: IncomingMessage, *, images: bool, inline_chars: int
    ) -> ReadMessage:
        """`message` as a turn: up to MAX_IMAGES images when `images` (the model takes them),
        voice notes transcribed, text files inlined while they fit in `inline_chars`."""
        if not message.attachments:
            return ReadMessage(turn_text(message))
        image_slots = [images and is_image(a) and not is_voice(a) for a in message.attachments]
        for index in [i for i, slot in enumerate(image_slots) if slot][MAX_IMAGES:]:
            image_slots[index] = False
        results = await asyncio.gather(
            *(
                self._read_one(attachment, as_image)
                for attachment, as_image in zip(message.attachments, image_slots, strict=True)
            )
        )
        texts: list[str] = []
        urls: list[str] = []
        room = inline_chars
        for attachment, (read, url) in zip(message.attachments, results, strict=True):
            placeholder = attachment_placeholder(attachment)
            inlined = is_text_file(attachment) and read != placeholder
            text = placeholder if inlined and len(read) > room else read
            if inlined:
                room -= len(text)
            texts.append(text)
            if url is not None:
                urls.append(url)
        return ReadMessage(turn_text(message, texts), tuple(urls))

    async def _read_one(self, attachment: Attachment, as_image: bool) -> tuple[str, str | None]:
        """One attachment's text in the turn, and its data URL if it is an image to send."""
        placeholder = attachment_placeholder(attachment)
        if is_voice(attachment):
            return await self._transcribe(attachment), None
        if as_image:
            data = await self._fetcher.fetch(attachment, MAX_IMAGE_BYTES)
            mime = image_type(data) if data is not None else None
            if data is None or mime is None:
                return placeholder, None
            return placeholder, f"data:{mime};base64,{base64.b64encode(data).decode()}"
        if is_text_file(attachment) and attachment.size < MAX_TEXT_FILE_BYTES:
            data = await self._fetcher.fetch(attachment, MAX_TEXT_FILE_BYTES)
            text = decoded_text(data) if data is not None else None
            if text is not None:
                return f"{placeholder}\n```\n{text.strip()}\n```", None
        return placeholder, None

    async def _transcribe(self, attachment: Attachment) -> str:
        """`[voice message, 0:12] transcript`, or the placeholder alone."""
        placeholder = voice_placeholder(attachment)
        if self._transcriber is None:
            return placeholder
        data = await self._fetcher.fetch(attachment, MAX_AUDIO_BYTES)
        if data is None:
            return placeholder
        content_type = attachment.content_type or "audio/ogg"
        words = await self._transcriber.transcribe(attachment.filename, data, content_type)
        return f"{placeholder} {words}" if words else placeholder

    async def aclose(self) -> None:
        """Close the fetcher's and the transcriber's connections."""
        await self._fetcher.aclose()
        if self._transcriber is not None:
            await self._transcriber.aclose()
