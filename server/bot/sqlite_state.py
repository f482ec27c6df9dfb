"""The bot's personas and sessions per (user, channel), kept in the relay's SQLite file."""

from __future__ import annotations

import sqlite3

from server.bot.state import MAIN_SESSION
from server.conversation.memory import PairKey
from server.storage.database import Database


class SqliteBotState:
    """A `BotStateStore` in the same database as the conversations, so choices survive restarts."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def persona(self, pair: PairKey) -> str | None:
        """The persona name chosen for `pair`, or None for the rule's own."""

        def read(db: sqlite3.Connection) -> str | None:
            row = db.execute(
                "SELECT persona FROM bot_pairs WHERE user_id = ? AND channel_id = ?", pair
            ).fetchone()
            return None if row is None else row[0]

        return await self._database.run(read)

    async def set_persona(self, pair: PairKey, name: str | None) -> None:
        """Choose persona `name` for `pair` (None: back to the rule's own)."""

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO bot_pairs (user_id, channel_id, persona) VALUES (?, ?, ?)"
                " ON CONFLICT (user_id, channel_id) DO UPDATE SET persona = excluded.persona",
                (*pair, name),
            )

        await self._database.run(write)

    async def sessions(self, pair: PairKey) -> list[str]:
        """The titles of `pair`'s sessions, oldest first, `MAIN_SESSION` always first."""

        def read(db: sqlite3.Connection) -> list[str]:
            rows = db.execute(
                "SELECT title FROM bot_sessions WHERE user_id = ? AND channel_id = ? ORDER BY id",
                pair,
            )
            return [MAIN_SESSION, *(str(title) for (title,) in rows)]

        return await self._database.run(read)

    async def current_session(self, pair: PairKey) -> str:
        """The title of the session `pair`'s messages go to."""

        def read(db: sqlite3.Connection) -> str:
            row = db.execute(
                "SELECT current FROM bot_pairs WHERE user_id = ? AND channel_id = ?", pair
            ).fetchone()
            return MAIN_SESSION if row is None else str(row[0])

        return await self._database.run(read)

    async def add_session(self, pair: PairKey, title: str) -> bool:
        """Create session `title` and make it current; False (and no change) if it exists."""

        def write(db: sqlite3.Connection) -> bool:
            if title == MAIN_SESSION:
                return False
            added = db.execute(
                "INSERT INTO bot_sessions (user_id, channel_id, title) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (*pair, title),
            ).rowcount
            if added:
                _set_current(db, pair, title)
            return bool(added)

        return await self._database.run(write)

    async def switch_session(self, pair: PairKey, title: str) -> bool:
        """Make session `title` current; False (and no change) if there is none by that title."""

        def write(db: sqlite3.Connection) -> bool:
            exists = (
                title == MAIN_SESSION
                or db.execute(
                    "SELECT 1 FROM bot_sessions WHERE user_id = ? AND channel_id = ? AND title = ?",
                    (*pair, title),
                ).fetchone()
            )
            if exists:
                _set_current(db, pair, title)
            return bool(exists)

        return await self._database.run(write)


def _set_current(db: sqlite3.Connection, pair: PairKey, title: str) -> None:
    db.execute(
        "INSERT INTO bot_pairs (user_id, channel_id, current) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id, channel_id) DO UPDATE SET current = excluded.current",
        (*pair, title),
    )
