"""The rules chosen from Discord (the plugin's menus, `rules add`), kept next to the conversations.

Every statement on the `discord_rules` table is here, and the one that says when the relay last
replied in each chat; they run on the database thread, in the conversation store's SQLite file.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast

from server.config_file import ReplyMode, ReplyWhen
from server.storage.conversations import ConversationStore

T = TypeVar("T")
_COLUMNS = "user_id, channel_id, persona, mode, reply_when, label, created_at"


@dataclass(frozen=True)
class StoredRule:
    """One chat chosen from Discord; None fields follow the defaults (CONTEXT_MESSAGE, MODE,
    REPLY_WHEN)."""

    user: str
    channel: str
    persona: str | None = None
    """A PERSONAS name."""
    mode: ReplyMode | None = None
    reply_when: ReplyWhen | None = None
    label: str | None = None
    created_at: float = 0.0


@dataclass(frozen=True)
class PairReply:
    """When the relay last replied to a person in a chat, and whether that chat is a DM."""

    user: str
    channel: str
    at: float
    dm: bool
    """None of the messages it answered there had a guild."""


class RuleStore:
    """The `discord_rules` table: list, create or replace, remove; and the last replies."""

    def __init__(self, conversations: ConversationStore) -> None:
        self._conversations = conversations

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        # The conversation store may swap its database (a file that cannot be opened): follow it.
        return await self._conversations.database.run(work)

    async def rules(self) -> list[StoredRule]:
        """Every stored rule, oldest first."""

        def read(db: sqlite3.Connection) -> list[StoredRule]:
            rows = db.execute(f"SELECT {_COLUMNS} FROM discord_rules ORDER BY created_at, rowid")
            return [_stored_rule(row) for row in rows]

        return await self._run(read)

    async def put(self, rule: StoredRule) -> StoredRule:
        """Create the rule for its (user, channel), or replace its settings (keeping when it was
        first created); the rule as stored."""

        def upsert(db: sqlite3.Connection) -> StoredRule:
            db.execute(
                f"INSERT INTO discord_rules ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (user_id, channel_id) DO UPDATE SET persona = excluded.persona,"
                " mode = excluded.mode, reply_when = excluded.reply_when, label = excluded.label",
                (
                    rule.user,
                    rule.channel,
                    rule.persona,
                    rule.mode,
                    rule.reply_when,
                    rule.label,
                    rule.created_at or time.time(),
                ),
            )
            row = db.execute(
                f"SELECT {_COLUMNS} FROM discord_rules WHERE user_id = ? AND channel_id = ?",
                (rule.user, rule.channel),
            ).fetchone()
            return _stored_rule(row)

        return await self._run(upsert)

    async def remove(self, user: str, channel: str) -> StoredRule | None:
        """Delete the rule for (user, channel); the rule it was, or None if there was none."""

        def delete(db: sqlite3.Connection) -> StoredRule | None:
            pair = (user, channel)
            row = db.execute(
                f"SELECT {_COLUMNS} FROM discord_rules WHERE user_id = ? AND channel_id = ?", pair
            ).fetchone()
            db.execute("DELETE FROM discord_rules WHERE user_id = ? AND channel_id = ?", pair)
            return None if row is None else _stored_rule(row)

        return await self._run(delete)

    async def last_replies(self) -> list[PairReply]:
        """For each (person, chat) the relay replied in (at least one part delivered): its newest
        reply's time, and whether the chat is a DM (no answered message there had a guild)."""

        def read(db: sqlite3.Connection) -> list[PairReply]:
            rows = db.execute(
                "SELECT r.user_id, r.channel_id, MAX(r.at), MAX(m.guild_id) IS NULL"
                " FROM turns r LEFT JOIN turns m ON m.id = r.follows"
                " WHERE r.kind = 'reply' AND r.content != ''"
                " GROUP BY r.user_id, r.channel_id"
            )
            return [
                PairReply(str(user), str(channel), float(at), bool(dm))
                for user, channel, at, dm in rows
            ]

        return await self._run(read)


def _stored_rule(row: tuple[object, ...]) -> StoredRule:
    user, channel, persona, mode, reply_when, label, created_at = row
    return StoredRule(
        user=str(user),
        channel=str(channel),
        persona=None if persona is None else str(persona),
        mode=cast(ReplyMode | None, mode),
        reply_when=cast(ReplyWhen | None, reply_when),
        label=None if label is None else str(label),
        created_at=float(cast(float, created_at)),
    )
