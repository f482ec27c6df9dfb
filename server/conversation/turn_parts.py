"""A stored turn's text split back into what it was made of: the words people wrote, and the
placeholders `placeholders` put in for what was not text (`[photo: …]`, `[voice message, 0:12]
transcript`, `[file: …]` with an inlined file's content, `(replying to Sam: "…")` …).

Memory keeps turns as text only; `history` and `memory show` use this to make the placeholders
stand out, and `--json` to give them as fields. Pure: text in, parts out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from rich.text import Text

PartKind = Literal[
    "text", "photo", "video", "audio", "voice", "file", "sticker", "link", "reply", "forward"
]
PLACEHOLDER_STYLE = "dim italic"
"""How placeholders look in a terminal."""
FENCE = "```"

_REPLY = re.compile(r'^\(replying(?: to (?P<who>.+?))?: "(?P<detail>.*)"\)$')
_FORWARD = re.compile(r'^\(forwarded: "(?P<detail>.*)"\)$')
_VOICE = re.compile(r"^(?P<mark>\[voice message(?:, \d+:\d\d)?\])(?: (?P<detail>.*))?$")
_TAGGED = re.compile(r"^\[(?P<kind>photo|video|audio|file|sticker|link): (?P<name>.*)\]$")


@dataclass(frozen=True)
class TurnPart:
    """One part of a turn: `mark` is the placeholder as stored ("" for text); `detail` what it
    carries: the words (text), a transcript, a file's content, a quoted message."""

    kind: PartKind
    mark: str = ""
    detail: str = ""
    who: str = ""
    """Whom a reply quotes."""

    def as_json(self) -> dict[str, Any]:
        """The part as `--json` gives it (only the fields it has)."""
        fields: dict[str, Any] = {"kind": self.kind}
        if self.mark:
            fields["placeholder"] = self.mark
        if self.who:
            fields["author"] = self.who
        if self.detail:
            fields["text" if self.kind == "text" else "content"] = self.detail
        return fields


def turn_parts(text: str) -> list[TurnPart]:
    """`text` (one stored turn) as its parts, in order; consecutive lines of words are one part."""
    parts: list[TurnPart] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        part = _placeholder(line)
        if part is None:
            if parts and parts[-1].kind == "text":
                parts[-1] = TurnPart("text", detail=f"{parts[-1].detail}\n{line}")
            else:
                parts.append(TurnPart("text", detail=line))
            continue
        if part.kind == "file" and index < len(lines) and lines[index] == FENCE:
            end = _closing_fence(lines, index + 1)
            if end is not None:  # an inlined file: its content between the fences
                part = TurnPart("file", part.mark, "\n".join(lines[index + 1 : end]))
                index = end + 1
        parts.append(part)
    return parts


def _closing_fence(lines: list[str], start: int) -> int | None:
    return next((i for i in range(start, len(lines)) if lines[i] == FENCE), None)


def _placeholder(line: str) -> TurnPart | None:
    """The placeholder a whole line is, or None for words."""
    if match := _REPLY.match(line):
        return TurnPart("reply", line, match["detail"], match["who"] or "")
    if match := _FORWARD.match(line):
        return TurnPart("forward", line, match["detail"])
    if match := _VOICE.match(line):
        return TurnPart("voice", match["mark"], match["detail"] or "")
    if match := _TAGGED.match(line):
        kind: PartKind = match["kind"]  # type: ignore[assignment]  # the regex's alternatives
        return TurnPart(kind, line)
    return None


def has_placeholders(text: str) -> bool:
    """Whether a turn holds anything but words."""
    return any(part.kind != "text" for part in turn_parts(text))


def styled(text: str, style: str = "") -> Text:
    """A turn for a terminal: words in `style`, placeholders dim and italic (a transcript and a
    quoted message in the words' style after their mark, a file's content dim)."""
    out = Text(style=style)
    for number, part in enumerate(turn_parts(text)):
        if number:
            out.append("\n")
        if part.kind == "text":
            out.append(part.detail, style=style)
        elif part.kind == "voice":
            out.append(part.mark, style=PLACEHOLDER_STYLE)
            if part.detail:
                out.append(f" {part.detail}", style=style)
        elif part.kind == "file" and part.detail:
            out.append(part.mark, style=PLACEHOLDER_STYLE)
            out.append(f"\n{part.detail}", style="dim")
        else:
            out.append(part.mark, style=PLACEHOLDER_STYLE)
    return out
