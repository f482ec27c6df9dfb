"""Splits a reply into Discord-sized parts at natural boundaries, keeping code fences balanced.

Lengths are measured in UTF-16 code units (`discord_length`), the stricter of the two counts
Discord-compatible servers use, so every part is accepted by all of them.
"""

from __future__ import annotations

import bisect
import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

FENCE = "```"
CLOSE_FENCE = "\n" + FENCE
# A fence's language tag is a short word right before the end of its line (Discord's rule).
FENCE_RE = re.compile(r"```(?:([A-Za-z0-9_+\-.#]{1,16})(?=\r?\n))?")
# A reopened fence (20), kept indentation (16), a fence token (19) and a closing fence (4) must
# fit, so that a hard cut is always possible.
MIN_LIMIT = 64
# Cut points, best first; each pattern's match end is where a part may end.
BOUNDARIES = (
    re.compile(r"(?=\n[^\S\n]*\n)"),  # paragraph: before a blank line
    re.compile(r"(?=\n)"),  # line
    re.compile(r"[.!?…][\"'\u201d\u2019)\]]*(?=\s)"),  # sentence end, closing quotes included
    re.compile(r"(?=\s)"),  # word
)
# Code indentation kept at the start of a part that reopens a block; more is dropped.
MAX_KEPT_INDENT = 16
ZERO_WIDTH_JOINER = "\u200d"


def discord_length(text: str) -> int:
    """The length of `text` as a message limit counts it: UTF-16 code units.

    Discord's API counts code points; JavaScript servers such as Spacebar count UTF-16 units,
    in which a character outside the Basic Multilingual Plane (most emoji) counts twice. The
    UTF-16 count is never the smaller one, so text within a limit by it fits both.
    """
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _unit_offsets(text: str) -> Sequence[int]:
    """`offsets[i]` is `discord_length(text[:i])`, for every i from 0 to len(text)."""
    if discord_length(text) == len(text):  # no surrogate pairs: units are code points
        return range(len(text) + 1)
    return list(itertools.accumulate((2 if ord(ch) > 0xFFFF else 1 for ch in text), initial=0))


def _attaches(char: str) -> bool:
    """Whether `char` belongs to the symbol before it: combining marks, variation selectors,
    joiners, skin tones and emoji tags."""
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me")
        or char == ZERO_WIDTH_JOINER
        or "\U0001f3fb" <= char <= "\U0001f3ff"
        or "\U000e0020" <= char <= "\U000e007f"
    )


def _is_regional_indicator(char: str) -> bool:
    return "\U0001f1e6" <= char <= "\U0001f1ff"


@dataclass(frozen=True)
class _Block:
    """A fenced code block: its opening token `text[start:end]`, language, and closing fence."""

    start: int
    end: int
    lang: str
    close: int | None


def _blocks(text: str) -> list[_Block]:
    """Pair the fences of `text` into blocks, in order; an unclosed last one has close=None."""
    blocks: list[_Block] = []
    opening: re.Match[str] | None = None
    for match in FENCE_RE.finditer(text):
        if opening is None:
            opening = match
        else:
            blocks.append(_Block(opening.start(), opening.end(), opening[1] or "", match.start()))
            opening = None
    if opening is not None:
        blocks.append(_Block(opening.start(), opening.end(), opening[1] or "", None))
    return blocks


class _Splitter:
    """The state of one split: the text, its blocks, and where each fence token lies."""

    def __init__(self, text: str, limit: int) -> None:
        self.text = text
        self.limit = limit
        self.offsets = _unit_offsets(text)
        self.blocks = _blocks(text)
        self.block_starts = [block.start for block in self.blocks]
        self.tokens = [match.span() for match in FENCE_RE.finditer(text)]
        self.token_starts = [start for start, _ in self.tokens]

    def block_at(self, cut: int) -> _Block | None:
        """The block a part ending at `cut` would leave open, if any."""
        index = bisect.bisect_right(self.block_starts, cut) - 1
        if index < 0:
            return None
        block = self.blocks[index]
        inside = block.end <= cut and (block.close is None or cut <= block.close)
        return block if inside else None

    def width(self, start: int, end: int) -> int:
        """`discord_length(text[start:end])`."""
        return self.offsets[end] - self.offsets[start]

    def splits_token(self, cut: int) -> bool:
        index = bisect.bisect_left(self.token_starts, cut) - 1
        return index >= 0 and cut < self.tokens[index][1]

    def splits_symbol(self, cut: int) -> bool:
        """Whether a cut at `cut` would break one visible symbol (an emoji sequence, a flag, a
        letter with its accents) in two."""
        if not 0 < cut < len(self.text):
            return False
        before, after = self.text[cut - 1], self.text[cut]
        return (
            _attaches(after)
            or before == ZERO_WIDTH_JOINER
            or (_is_regional_indicator(before) and _is_regional_indicator(after))
        )

    def fits(self, pos: int, cut: int, reopen: str, strict: bool) -> bool:
        """Whether `text[pos:cut]` makes a valid part, closing any block it leaves open.

        `strict` also refuses a part that would end or start with an empty code block.
        """
        body = self.text[pos:cut].rstrip()
        if cut <= pos or not body.strip() or self.splits_token(cut):
            return False
        block = self.block_at(cut)
        size = len(reopen) + self.width(pos, pos + len(body)) + (len(CLOSE_FENCE) if block else 0)
        if size > self.limit:
            return False
        if block is None or not strict:
            return True
        block_end = len(self.text) if block.close is None else block.close
        opened_here = self.text[max(pos, block.end) : cut].strip()
        return bool(opened_here) and bool(self.text[cut:block_end].strip())

    def window_end(self, pos: int, reopen: str) -> int:
        """The furthest end of a part starting at `pos` whose text fits the limit (UTF-16)."""
        end = bisect.bisect_right(self.offsets, self.offsets[pos] + self.limit - len(reopen))
        return end - 1

    def leads_to_a_break(self, cut: int) -> bool:
        """Whether the part after a cut at `cut` can end at a boundary too (or is the last).

        If it cannot, that part is cut hard anyway and the break at `cut` only wastes the room
        left before it: `[auto-reply] echo:` and 3,000 emoji took five parts, the first "echo:".
        """
        block = self.block_at(cut)
        reopen = f"{FENCE}{block.lang}\n" if block else ""
        start = self.skip_space(cut, in_block=block is not None)
        rest = self.text[start:].rstrip()
        if len(reopen) + self.width(start, start + len(rest)) <= self.limit:
            return True
        end = self.window_end(start, reopen)
        return any(char.isspace() for char in self.text[start + 1 : end + 1])

    def cut(self, pos: int, reopen: str) -> int:
        """The best place to end the part that starts at `pos`: the best boundary, unless the
        part after it would have none (then the part is filled instead)."""
        window_end = self.window_end(pos, reopen)
        for boundary in BOUNDARIES:
            cuts = []
            for match in boundary.finditer(self.text, pos):
                if match.end() > window_end:
                    break
                cuts.append(match.end())
            best = next((c for c in reversed(cuts) if self.fits(pos, c, reopen, strict=True)), None)
            if best is not None and self.leads_to_a_break(best):
                return best
            if best is not None:
                break  # no good break: fill the part
        for cut in range(window_end, pos, -1):
            if not self.splits_symbol(cut) and self.fits(pos, cut, reopen, strict=False):
                return cut
        for cut in range(window_end, pos, -1):  # one symbol longer than a part: cut it anyway
            if self.fits(pos, cut, reopen, strict=False):
                return cut
        raise AssertionError("unreachable: MIN_LIMIT leaves room for a hard cut")

    def skip_space(self, pos: int, in_block: bool) -> int:
        """Where the next part starts: after the cut's whitespace, but keeping code indentation."""
        end = pos
        while end < len(self.text) and self.text[end].isspace():
            end += 1
        if in_block:
            newline = self.text.rfind("\n", pos, end)
            if newline != -1 and end - (newline + 1) <= MAX_KEPT_INDENT:
                return newline + 1
        return end


def split_message(text: str, limit: int = 2000) -> list[str]:
    """Split `text` into parts of at most `limit` UTF-16 units, at the best boundary available.

    `limit` is in `discord_length` units: pass the message limit less `discord_length(prefix)`
    of anything put before each part. Boundaries, best first: blank line, line, sentence end,
    word, else a hard cut that keeps emoji sequences and accented letters whole. A boundary
    after which the next part would have to be cut hard anyway is no good break: the part is
    filled instead, so no part is wasted. Whitespace
    at cut points is dropped. A part that ends inside a code block closes it, and the next
    part reopens it with the same language tag. Whitespace-only text gives no parts.
    """
    if limit < MIN_LIMIT:
        raise ValueError(f"limit must be at least {MIN_LIMIT} characters, got {limit}")
    if not text.strip():
        return []
    if discord_length(text) <= limit:
        return [text]
    splitter = _Splitter(text, limit)
    parts: list[str] = []
    pos = splitter.skip_space(0, in_block=False)
    reopen = ""
    while text[pos:].strip():
        rest = text[pos:].rstrip()
        if len(reopen) + splitter.width(pos, pos + len(rest)) <= limit:
            parts.append(reopen + rest)
            break
        cut = splitter.cut(pos, reopen)
        block = splitter.block_at(cut)
        parts.append(reopen + text[pos:cut].rstrip() + (CLOSE_FENCE if block else ""))
        reopen = f"{FENCE}{block.lang}\n" if block else ""
        pos = splitter.skip_space(cut, in_block=block is not None)
    return parts
