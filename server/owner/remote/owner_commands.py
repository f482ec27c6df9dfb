"""The owner's slash commands in the bot's DM (/away, /drafts, /history): their registration
payloads and their answers, as pure functions of what the relay says."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from server.owner.history import WHO, SpanError, parse_span
from server.storage.owner_store import HistoryEntry

STRING = 3
BOT_DM = 1
GUILD_INSTALL = 0
DEFAULT_SINCE = "24h"
HISTORY_LINES = 15
LINE_LIMIT = 120
ANSWER_LIMIT = 2000

OWNER_COMMANDS: list[dict[str, Any]] = [
    {
        "name": "away",
        "description": "Switch away mode (on, off, auto) and set the away note; alone, show it",
        "type": 1,
        "contexts": [BOT_DM],
        "integration_types": [GUILD_INSTALL],
        "options": [
            {
                "type": STRING,
                "name": "mode",
                "description": "on: away; off: present; auto: follow your Discord status",
                "required": False,
                "choices": [{"name": mode, "value": mode} for mode in ("on", "off", "auto")],
            },
            {
                "type": STRING,
                "name": "note",
                "description": "The away note the replies may mention (empty: none)",
                "required": False,
            },
        ],
    },
    {
        "name": "drafts",
        "description": "The drafts waiting for you",
        "type": 1,
        "contexts": [BOT_DM],
        "integration_types": [GUILD_INSTALL],
    },
    {
        "name": "history",
        "description": "What the relay said for you lately",
        "type": 1,
        "contexts": [BOT_DM],
        "integration_types": [GUILD_INSTALL],
        "options": [
            {
                "type": STRING,
                "name": "since",
                "description": "How far back: 30m, 2h, 1d (default 24h)",
                "required": False,
            }
        ],
    },
]
"""Usable only in the bot's DM (contexts: BOT_DM); the bot answers only the owner anyway."""


def command_options(data: object) -> dict[str, str]:
    """A command's string options by name, from the interaction's `data`."""
    if not isinstance(data, dict):
        return {}
    found: dict[str, str] = {}
    for option in data.get("options") or []:
        if isinstance(option, dict) and isinstance(option.get("value"), str):
            found[str(option.get("name"))] = option["value"]
    return found


def _cut(text: str, limit: int = LINE_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fit(lines: list[str]) -> str:
    text = "\n".join(lines)
    return text if len(text) <= ANSWER_LIMIT else text[: ANSWER_LIMIT - 1] + "…"


def away_answer(status: dict[str, Any]) -> str:
    """The `away_status` frame (with `note`) in a few words."""
    away = "away" if status.get("away") else "present"
    replying = "replies go out" if status.get("replying") else "no replies go out"
    lines = [f"Switch: **{status.get('switch')}** · you count as {away} · {replying}."]
    schedule = status.get("schedule")
    if isinstance(schedule, dict) and schedule.get("window"):
        lines.append(f"Away hours {schedule['window']!r} until <t:{int(schedule['until'])}:t>.")
    if status.get("note"):
        lines.append(f"Away note: {_cut(str(status['note']))}")
    return _fit(lines)


def drafts_answer(frames: list[dict[str, Any]]) -> str:
    """The pending drafts, one line each (their DMs above carry the buttons)."""
    if not frames:
        return "No drafts are waiting."
    lines = [f"{len(frames)} draft(s) waiting (the buttons are on their messages):"]
    for frame in frames:
        who = frame.get("author") or f"user {frame['user']}"
        lines.append(f"• **{frame['id']}** to {who}: {_cut(str(frame['content']), 80)}")
    return _fit(lines)


def history_since(text: str | None, now: float | None = None) -> float:
    """The start of the `since` span (default 24h); `SpanError` for a value that is no span."""
    span = parse_span(text or DEFAULT_SINCE)
    return (time.time() if now is None else now) - span


def history_answer(entries: list[HistoryEntry], since_text: str) -> str:
    """The last HISTORY_LINES entries, one short line each."""
    if not entries:
        return f"Nothing in the last {since_text}."
    replies = sum(entry.kind == "reply" for entry in entries)
    lines = [f"Last {since_text}: {replies} repl(ies), {len(entries)} entries; the latest:"]
    for entry in entries[-HISTORY_LINES:]:
        when = datetime.fromtimestamp(entry.at).strftime("%H:%M")
        note = f" ({entry.note})" if entry.note else ""
        lines.append(f"`{when}` {entry.user} · {WHO[entry.kind]}: {_cut(entry.text, 90)}{note}")
    return _fit(lines)


__all__ = [
    "OWNER_COMMANDS",
    "SpanError",
    "away_answer",
    "command_options",
    "drafts_answer",
    "history_answer",
    "history_since",
]
