"""Who and when, for the system prompt: the sender's name, the owner's local date, weekday and
time (TIMEZONE), whether the owner is away, since when, and the away note.

A persona may place these itself with `{sender}`, `{owner}`, `{date}`, `{time}`, `{weekday}`,
`{away_note}` and `{away_since}`; otherwise one short context line is added after it. Pure: the
time and the owner's state come in as values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

PLACEHOLDERS = ("sender", "owner", "date", "time", "weekday", "away_note", "away_since")
DEFAULT_OWNER = "the owner"


@dataclass(frozen=True)
class OwnerContext:
    """The owner as the replies should know them: name, away or not, since when, the note."""

    name: str = ""
    away: bool = False
    away_since: float | None = None
    note: str = ""


NOBODY_AWAY = OwnerContext()


@dataclass(frozen=True)
class PromptContext:
    """Everything a system prompt may be told for one reply."""

    sender: str
    owner: OwnerContext
    now: float
    zone: tzinfo | None = None
    """TIMEZONE; None: the machine's local time."""

    def values(self) -> dict[str, str]:
        """The text of each placeholder."""
        now = datetime.fromtimestamp(self.now, self.zone)
        since = ""
        if self.owner.away and self.owner.away_since is not None:
            started = datetime.fromtimestamp(self.owner.away_since, self.zone)
            same_day = started.date() == now.date()
            since = started.strftime("%H:%M" if same_day else "%A %H:%M")
        return {
            "sender": self.sender,
            "owner": self.owner.name or DEFAULT_OWNER,
            "date": now.strftime("%Y-%m-%d"),
            "time": now.strftime("%H:%M"),
            "weekday": now.strftime("%A"),
            "away_note": self.owner.note,
            "away_since": since,
        }

    def line(self) -> str:
        """One short line saying who writes, the owner's local time, and their absence."""
        v = self.values()
        parts = [
            f"You are answering {v['sender']} for {v['owner']}.",
            f"It is {v['weekday']} {v['date']}, {v['time']} where {v['owner']} is.",
        ]
        if self.owner.away:
            since = f" since {v['away_since']}" if v["away_since"] else ""
            parts.append(f"{v['owner']} is away{since}.")
        if v["away_note"]:
            parts.append(f'Their away note: "{v["away_note"]}".')
        return " ".join(parts)


def system_prompt(persona: str, context: PromptContext) -> str:
    """`persona` with its placeholders filled, or followed by the context line if it has none."""
    marks = {f"{{{name}}}" for name in PLACEHOLDERS}
    if not any(mark in persona for mark in marks):
        return f"{persona}\n\n{context.line()}" if persona.strip() else context.line()
    for name, value in context.values().items():
        persona = persona.replace(f"{{{name}}}", value)
    return persona
