"""`discord-auto-reply history`: what the relay said in the owner's name, and what it let pass.

A table (or JSON) of every message, reply, draft and skipped message since a time: when, in
which chat, who said what, which backend answered and how long it took.
"""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import datetime
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from server.conversation.memory import PairKey
from server.conversation.turn_parts import styled, turn_parts
from server.storage.owner_store import HistoryEntry, OwnerStore

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
WHO = {"message": "them", "owner": "you", "reply": "relay", "skipped": "skipped", "draft": "draft"}
STYLE = {"reply": "green", "skipped": "yellow", "draft": "cyan", "owner": "bold"}


class SpanError(ValueError):
    """A `--since` value that is not a number and a unit."""


def parse_span(text: str) -> float:
    """Seconds in a span such as `90s`, `30m`, `2h`, `1.5d` or `1w`."""
    match = _SPAN.match(text)
    if not match:
        raise SpanError(f"--since {text!r}: give a number and a unit (s, m, h, d, w), e.g. 2h")
    return float(match[1]) * UNITS[match[2]]


def console_for(out: TextIO) -> Console:
    """A rich console on `out`: the terminal's width, or a wide one for a file or pipe."""
    return Console(file=out, width=None if out.isatty() else 140)


def _when(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def as_json(entry: HistoryEntry) -> dict[str, Any]:
    """One entry as `history --json` prints it; `placeholders`: what a turn carried besides
    words (attachments, voice transcripts, the message it replies to), as fields."""
    said = entry.kind != "skipped"  # a skipped entry's text is the reason, not a turn
    extras = [p.as_json() for p in turn_parts(entry.text) if p.kind != "text"] if said else []
    return {
        "at": entry.at,
        "time": datetime.fromtimestamp(entry.at).astimezone().isoformat(timespec="seconds"),
        "user": entry.user,
        "channel": entry.channel,
        "who": WHO[entry.kind],
        "text": entry.text,
        "backend": entry.backend,
        "seconds": entry.seconds,
        "note": entry.note,
        "placeholders": extras,
    }


def table(entries: list[HistoryEntry], title: str) -> Table:
    """The entries as a rich table."""
    view = Table("TIME", "CHAT", "WHO", "WHAT", "BACKEND", "TOOK", title=title)
    for entry in entries:
        style = STYLE.get(entry.kind, "")
        what = (
            Text(entry.text, style=style) if entry.kind == "skipped" else styled(entry.text, style)
        )
        if entry.note:
            what.append(f" ({entry.note})", style="dim")
        view.add_row(
            _when(entry.at),
            f"{entry.user} in {entry.channel}",
            WHO[entry.kind],
            what,
            entry.backend or "",
            "" if entry.seconds is None else f"{entry.seconds:.1f} s",
        )
    return view


async def history(
    store: OwnerStore,
    span_seconds: float,
    pair: PairKey | None,
    *,
    json_output: bool,
    out: TextIO = sys.stdout,
) -> int:
    """Print what happened in the last `span_seconds` (in one pair, or all)."""
    since = time.time() - span_seconds
    entries = await store.history(since, pair)
    if json_output:
        out.write(json.dumps([as_json(e) for e in entries], ensure_ascii=False, indent=2) + "\n")
        return 0
    where = f" with user {pair[0]} in channel {pair[1]}" if pair else ""
    if not entries:
        print(f"nothing since {_when(since)}{where}", file=out)
        return 0
    replies = sum(entry.kind == "reply" for entry in entries)
    skipped = sum(entry.kind == "skipped" for entry in entries)
    title = f"Since {_when(since)}{where} · replies: {replies} · skipped: {skipped}"
    console_for(out).print(table(entries, title))
    return 0
