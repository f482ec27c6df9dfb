"""The owner's writing style: learned by the configured LLM from the owner's own messages (those
stored from watched chats, and optionally Discord's data package), reviewed by the owner, kept in
the relay's database, and added to the system prompt with STYLE (or a rule's "style").

Private messages go only to the configured LLM, sampled and capped, with the instruction never to
quote them; the profile describes the style and invents its example lines.
"""

from __future__ import annotations

import csv
import io
import json
import random
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from server.llm.base import ChatMessage

PROFILE_KEY = "style_profile"
"""Where the profile is kept (the owner_state table)."""
MAX_LINES = 200
"""Messages sent to learn from, sampled when there are more."""
MAX_LINE_CHARS = 300
"""Characters of each message sent."""
MAX_PROFILE_CHARS = 2000
"""Characters of a profile kept (it goes into every system prompt)."""
INSTRUCTION = (
    "Below are messages one person wrote in chats. Describe how this person writes, so that "
    "someone else could answer in their style: typical message length, use of capital letters, "
    "punctuation, emoji and emoticons, abbreviations and slang, languages and when they switch, "
    "tone. Then give three to five short example lines in that style that you invent yourself. "
    "Never quote, repeat or paraphrase the messages below or mention any name, place or detail "
    "from them: they are private. Answer with the description and the examples only, at most "
    "150 words."
)
PROMPT_HEADING = "Write in the owner's own style:"


class PackageError(ValueError):
    """A data package that cannot be read; the text names the file."""


def package_lines(path: Path) -> list[str]:
    """The owner's messages in Discord's data package ("Request all of my data"): each
    `messages/*/messages.json` (a list of objects with `Contents`) or `messages.csv` (a
    `Contents` column)."""
    lines: list[str] = []
    try:
        with zipfile.ZipFile(path) as package:
            for name in package.namelist():
                parts = PurePosixPath(name).parts
                if "messages" not in parts[:-1] or parts[-1] not in (
                    "messages.json",
                    "messages.csv",
                ):
                    continue
                text = package.read(name).decode("utf-8-sig", errors="replace")
                lines += _json_lines(text) if name.endswith(".json") else _csv_lines(text)
    except (OSError, zipfile.BadZipFile) as exc:
        raise PackageError(f"{path}: not a readable Discord data package ({exc})") from None
    return lines


def _json_lines(text: str) -> list[str]:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError:
        return []
    if not isinstance(rows, list):
        return []
    return [str(row.get("Contents", "")) for row in rows if isinstance(row, dict)]


def _csv_lines(text: str) -> list[str]:
    return [row.get("Contents", "") or "" for row in csv.DictReader(io.StringIO(text))]


def sample(lines: Iterable[str], *, seed: int | None = None) -> list[str]:
    """At most MAX_LINES non-empty messages, each cut to MAX_LINE_CHARS, sampled evenly at
    random when there are more (placeholders and links are not style: left out)."""
    kept = [
        line.strip()[:MAX_LINE_CHARS]
        for line in lines
        if line.strip() and not line.lstrip().startswith(("[", "(replying", "http"))
    ]
    if len(kept) > MAX_LINES:
        kept = random.Random(seed).sample(kept, MAX_LINES)
    return kept


def learning_request(lines: list[str]) -> list[ChatMessage]:
    """The chat that asks the model for the profile."""
    listing = "\n".join(f"- {' '.join(line.split())}" for line in lines)
    return [ChatMessage("system", INSTRUCTION), ChatMessage("user", listing)]


def clean_profile(text: str) -> str:
    """A profile as kept: stripped and capped."""
    return text.strip()[:MAX_PROFILE_CHARS]


def with_style(prompt: str, profile: str) -> str:
    """The system prompt with the style profile after it ("" changes nothing)."""
    if not profile.strip():
        return prompt
    return f"{prompt}\n\n{PROMPT_HEADING}\n{profile.strip()}"
