"""What the relay knows about each pair, kept in SQLite: every statement the relay runs is here.

A pair's conversation is a list of turns: the other person's messages, the owner's hand-typed
messages, the relay's replies and summaries. A turn's position is its own id, except a reply's,
which sits right after the last message it answers (messages that arrived while it was being
written come after it).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from server.conversation.memory import PairKey
from server.llm.base import ChatMessage, Role
from server.storage.database import Database

TurnKind = Literal["message", "owner", "reply", "summary"]
MessageStatus = Literal["pending", "answered", "skipped", "failed", "expired"]
"""A message's fate: waiting for a reply, answered (a reply is recorded for it), or not and why.
Its turn is the one record of that fate: `status`, `reason` and when it was `decided` (which
`history` shows for the messages that got no reply)."""
_POSITION = "COALESCE(follows, id)"  # indexed as written (turns_by_position): keep in step
# Replies that are not part of the conversation: nothing delivered yet, or the fallback message.
_IN_MEMORY = "NOT (kind = 'reply' AND (content = '' OR COALESCE(backend, '') = 'fallback'))"
FALLBACK_BACKEND = "fallback"


@dataclass(frozen=True)
class Turn:
    """One remembered turn, as the memory window sees it."""

    id: int
    position: int
    kind: TurnKind
    content: str
    images: tuple[str, ...] = ()
    """Images sent with the newest turns only (data URLs); never stored."""

    def as_chat(self) -> ChatMessage:
        """The turn as a chat message: the other person is the user, the owner the assistant."""
        role: Role = "user" if self.kind == "message" else "assistant"
        return ChatMessage(role, self.content, self.images)


@dataclass(frozen=True)
class Window:
    """The newest turns of a pair and the summary of what came before them, if any."""

    summary: str | None
    turns: list[Turn]


@dataclass(frozen=True)
class StoredTurn:
    """A turn as the memory commands show it."""

    at: float
    kind: TurnKind
    author_id: str | None
    content: str
    backend: str | None
    delivered: bool | None


@dataclass(frozen=True)
class PairSummary:
    """One line of `memory list`."""

    pair: PairKey
    turns: int
    last_activity: float
    paused_until: float | None


@dataclass(frozen=True)
class PendingMessage:
    """An accepted message that has no reply yet (found again after a restart)."""

    turn_id: int
    pair: PairKey
    discord_id: str
    guild_id: str | None
    content: str
    at: float


@dataclass(frozen=True)
class UndeliveredReply:
    """A recorded reply whose later parts were not confirmed delivered."""

    reply_id: int
    pair: PairKey
    at: float
    first_undelivered: int
    parts: list[ReplyPart]
    reply_to: str | None
    """The Discord id of the guild message it answers (Discord replies), None in DMs."""


@dataclass(frozen=True)
class ReplyPart:
    """One Discord-sized part of a reply, with the nonce it is sent with."""

    nonce: str
    content: str


class ConversationStore:
    """Conversations, replies and owner takeovers of every pair, in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.database = Database(path)

    @property
    def path(self) -> str:
        """The database file."""
        return self.database.path

    async def open(self) -> None:
        """Open and migrate the file; raises `DatabaseError` naming it."""
        await self.database.open()

    async def close(self) -> None:
        """Close the file."""
        await self.database.close()

    # The MemoryStore interface, for callers that only keep plain turns (the bot).

    async def recent(self, pair: PairKey, turns: int) -> list[ChatMessage]:
        """The last `turns` turns of `pair` since its last reset, oldest first."""
        window = await self.window(pair, limit=turns)
        return [turn.as_chat() for turn in window.turns]

    async def add(self, pair: PairKey, message: ChatMessage) -> None:
        """Append a user turn (the other person) or an assistant turn (a delivered reply)."""
        if message.role == "system":
            raise ValueError("system prompts are not stored as turns")
        kind = "message" if message.role == "user" else "reply"

        def insert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO turns (user_id, channel_id, kind, content, at, delivered)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (*pair, kind, message.content, time.time(), 1 if kind == "reply" else None),
            )

        await self.database.run_quick(insert)

    async def reset(self, pair: PairKey) -> None:
        """Start `pair` afresh; what was said stays readable in the history until pruned."""
        await self.database.run(lambda db: _reset(db, [pair]))

    # What the relay records.

    async def record_message(
        self,
        pair: PairKey,
        discord_id: str,
        author_id: str,
        content: str,
        *,
        guild_id: str | None = None,
        status: MessageStatus = "pending",
        reason: str | None = None,
    ) -> int | None:
        """Store a message from the other person, with its fate if already decided (`status`
        other than pending, and the `reason`); its turn id, or None if it was stored before."""

        def insert(db: sqlite3.Connection) -> int | None:
            now = time.time()
            decided = None if status == "pending" else now
            cursor = db.execute(
                "INSERT INTO turns (user_id, channel_id, kind, discord_id, author_id, content, at,"
                " guild_id, status, reason, decided)"
                " VALUES (?, ?, 'message', ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (discord_id) DO NOTHING",
                (*pair, discord_id, author_id, content, now, guild_id, status, reason, decided),
            )
            return cursor.lastrowid if cursor.rowcount else None

        return await self.database.run_quick(insert)

    async def rewrite_message(self, turn_id: int, content: str) -> None:
        """Replace a message's remembered text: once its attachments were read (a voice note's
        transcript, a text file's content), memory keeps that, not just the placeholder."""

        def update(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE turns SET content = ? WHERE id = ? AND kind = 'message'", (content, turn_id)
            )

        await self.database.run_quick(update)

    async def settle(self, turn_ids: list[int], status: MessageStatus, reason: str) -> None:
        """Record why pending messages will get no reply (or no longer need one), and when."""

        def update(db: sqlite3.Connection) -> None:
            now = time.time()
            db.executemany(
                "UPDATE turns SET status = ?, reason = ?, decided = ?"
                " WHERE id = ? AND status = 'pending'",
                [(status, reason, now, turn_id) for turn_id in turn_ids],
            )

        await self.database.run_quick(update)

    async def record_owner_message(
        self, pair: PairKey, discord_id: str, author_id: str, content: str
    ) -> bool:
        """Store what the owner typed by hand in the pair's chat; False if stored before."""

        def insert(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "INSERT INTO turns (user_id, channel_id, kind, discord_id, author_id, content, at)"
                " VALUES (?, ?, 'owner', ?, ?, ?, ?) ON CONFLICT (discord_id) DO NOTHING",
                (*pair, discord_id, author_id, content, time.time()),
            )
            return bool(cursor.rowcount)

        return await self.database.run_quick(insert)

    async def record_reply(
        self,
        pair: PairKey,
        answers: list[int],
        backend: str,
        parts: list[ReplyPart],
        *,
        seconds: float | None = None,
    ) -> int:
        """Store a reply about to be sent (nothing delivered yet) to the messages `answers`, which
        count as answered from now on (a restart resends the reply, it does not write another),
        and how many seconds it took to write; its id."""

        def insert(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "INSERT INTO turns (user_id, channel_id, kind, content, at, follows, backend,"
                " delivered, seconds) VALUES (?, ?, 'reply', '', ?, ?, ?, 0, ?)",
                (*pair, time.time(), max(answers, default=None), backend, seconds),
            )
            reply_id = int(cursor.lastrowid or 0)
            db.executemany(
                "INSERT INTO reply_parts (reply_id, part, nonce, content) VALUES (?, ?, ?, ?)",
                [(reply_id, index, part.nonce, part.content) for index, part in enumerate(parts)],
            )
            db.executemany(
                "UPDATE turns SET status = 'answered' WHERE id = ?",
                [(turn_id,) for turn_id in answers],
            )
            return reply_id

        return await self.database.run_quick(insert)

    async def record_delivery(self, reply_id: int, delivered_parts: int) -> None:
        """Mark the first `delivered_parts` parts delivered; only they join the conversation."""

        def update(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE reply_parts SET delivered = 1 WHERE reply_id = ? AND part < ?",
                (reply_id, delivered_parts),
            )
            rows = db.execute(
                "SELECT content, delivered FROM reply_parts WHERE reply_id = ? ORDER BY part",
                (reply_id,),
            ).fetchall()
            text = "\n".join(content for content, delivered in rows if delivered)
            complete = all(delivered for _, delivered in rows)
            db.execute(
                "UPDATE turns SET content = ?, delivered = ? WHERE id = ?",
                (text, int(complete), reply_id),
            )

        await self.database.run_quick(update)

    async def give_up_reply(self, reply_id: int) -> None:
        """Stop trying to deliver the rest of a reply (too old, or no longer deliverable)."""

        def update(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE turns SET delivered = -1 WHERE id = ? AND delivered = 0", (reply_id,)
            )

        await self.database.run(update)

    async def pending_messages(self) -> list[PendingMessage]:
        """Every message still waiting for a reply, oldest first."""

        def read(db: sqlite3.Connection) -> list[PendingMessage]:
            rows = db.execute(
                "SELECT id, user_id, channel_id, discord_id, guild_id, content, at FROM turns"
                " WHERE status = 'pending' ORDER BY id"
            ).fetchall()
            return [
                PendingMessage(id, (user, channel), discord_id, guild, content, at)
                for id, user, channel, discord_id, guild, content, at in rows
            ]

        return await self.database.run(read)

    async def undelivered_replies(self) -> list[UndeliveredReply]:
        """Recorded replies not wholly delivered and not given up, oldest first."""

        def read(db: sqlite3.Connection) -> list[UndeliveredReply]:
            replies = db.execute(
                "SELECT r.id, r.user_id, r.channel_id, r.at, m.discord_id, m.guild_id"
                " FROM turns r LEFT JOIN turns m ON m.id = r.follows"
                " WHERE r.kind = 'reply' AND r.delivered = 0 ORDER BY r.id"
            ).fetchall()
            found = []
            for reply_id, user, channel, at, answered, guild in replies:
                rows = db.execute(
                    "SELECT nonce, content, delivered FROM reply_parts WHERE reply_id = ?"
                    " ORDER BY part",
                    (reply_id,),
                ).fetchall()
                delivered = [bool(done) for _, _, done in rows]
                first = delivered.index(False) if False in delivered else len(rows)
                found.append(
                    UndeliveredReply(
                        reply_id,
                        (user, channel),
                        at,
                        first,
                        [ReplyPart(nonce, content) for nonce, content, _ in rows],
                        answered if guild else None,
                    )
                )
            return found

        return await self.database.run(read)

    async def save_summary(self, pair: PairKey, text: str, covers_through: int) -> None:
        """Store a summary of every turn of `pair` up to position `covers_through`."""

        def insert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO turns (user_id, channel_id, kind, content, at, follows)"
                " VALUES (?, ?, 'summary', ?, ?, ?)",
                (*pair, text, time.time(), covers_through),
            )

        await self.database.run_quick(insert)

    async def window(self, pair: PairKey, *, limit: int, upto: int | None = None) -> Window:
        """The last `limit` remembered turns of `pair` at positions up to `upto` (all if None),
        after its last reset and after what its newest summary covers."""

        def read(db: sqlite3.Connection) -> Window:
            floor = _reset_after(db, pair)
            summary = db.execute(
                "SELECT content, follows FROM turns WHERE user_id = ? AND channel_id = ?"
                " AND kind = 'summary' AND id > ? ORDER BY id DESC LIMIT 1",
                (*pair, floor),
            ).fetchone()
            if summary is not None:
                floor = max(floor, int(summary[1]))
            rows = db.execute(
                f"SELECT id, {_POSITION}, kind, content FROM turns"
                " WHERE user_id = ? AND channel_id = ? AND kind IN ('message', 'owner', 'reply')"
                f" AND {_POSITION} > ? AND {_POSITION} <= ? AND {_IN_MEMORY}"
                f" ORDER BY {_POSITION} DESC, id DESC LIMIT ?",
                (*pair, floor, upto if upto is not None else 2**62, max(limit, 0)),
            ).fetchall()
            turns = [Turn(id, position, kind, content) for id, position, kind, content in rows]
            return Window(summary[0] if summary else None, turns[::-1])

        return await self.database.run_quick(read)

    async def last_pair_in_channel(self, channel_id: str) -> PairKey | None:
        """The pair whose message in `channel_id` is the newest, if any."""

        def read(db: sqlite3.Connection) -> PairKey | None:
            row = db.execute(
                "SELECT user_id FROM turns WHERE channel_id = ? AND kind = 'message'"
                " ORDER BY id DESC LIMIT 1",
                (channel_id,),
            ).fetchone()
            return (str(row[0]), channel_id) if row else None

        return await self.database.run(read)

    # Owner takeovers.

    async def set_takeover(self, channel_id: str, until: float) -> None:
        """The relay stays silent in `channel_id` until `until` (Unix time)."""

        def upsert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO takeovers (channel_id, until) VALUES (?, ?)"
                " ON CONFLICT (channel_id) DO UPDATE SET until = MAX(until, excluded.until)",
                (channel_id, until),
            )

        await self.database.run_quick(upsert)

    async def takeovers(self) -> dict[str, float]:
        """Every channel's takeover end time that is still in the future."""

        def read(db: sqlite3.Connection) -> dict[str, float]:
            rows = db.execute(
                "SELECT channel_id, until FROM takeovers WHERE until > ?", (time.time(),)
            )
            return {str(channel): float(until) for channel, until in rows}

        return await self.database.run(read)

    async def replies_since(self, since: float) -> list[tuple[PairKey, str, float]]:
        """Every reply recorded after `since` (Unix time), oldest first: (pair, text, when)."""

        def read(db: sqlite3.Connection) -> list[tuple[PairKey, str, float]]:
            rows = db.execute(
                "SELECT user_id, channel_id, content, at FROM turns"
                " WHERE kind = 'reply' AND at > ? ORDER BY at",
                (since,),
            )
            return [
                ((str(user), str(channel)), str(text), float(at))
                for user, channel, text, at in rows
            ]

        return await self.database.run(read)

    # Upkeep and the memory commands.

    async def prune(self, older_than: float) -> int:
        """Delete turns from before `older_than` (Unix time) and ended takeovers; how many turns."""

        def delete(db: sqlite3.Connection) -> int:
            deleted = db.execute("DELETE FROM turns WHERE at < ?", (older_than,)).rowcount
            db.execute("DELETE FROM takeovers WHERE until < ?", (time.time(),))
            return int(deleted)

        return await self.database.run(delete)

    async def pairs(self) -> list[PairSummary]:
        """Every pair with turns since its reset, newest activity first."""

        def read(db: sqlite3.Connection) -> list[PairSummary]:
            rows = db.execute(
                "SELECT t.user_id, t.channel_id, COUNT(*), MAX(t.at), k.until FROM turns t"
                " LEFT JOIN pairs p ON p.user_id = t.user_id AND p.channel_id = t.channel_id"
                " LEFT JOIN takeovers k ON k.channel_id = t.channel_id AND k.until > ?"
                " WHERE t.id > COALESCE(p.reset_after, 0) AND t.kind != 'summary'"
                " GROUP BY t.user_id, t.channel_id ORDER BY MAX(t.at) DESC",
                (time.time(),),
            ).fetchall()
            return [
                PairSummary((str(user), str(channel)), int(count), float(last), until)
                for user, channel, count, last, until in rows
            ]

        return await self.database.run(read)

    async def conversation(self, pair: PairKey) -> list[StoredTurn]:
        """Every turn of `pair` since its last reset, oldest first."""

        def read(db: sqlite3.Connection) -> list[StoredTurn]:
            return _stored_turns(db, pair, since=_reset_after(db, pair))

        return await self.database.run(read)

    async def reset_all(self) -> int:
        """Start every pair afresh; how many pairs there were."""

        def reset(db: sqlite3.Connection) -> int:
            pairs = db.execute("SELECT DISTINCT user_id, channel_id FROM turns").fetchall()
            _reset(db, [(str(user), str(channel)) for user, channel in pairs])
            return len(pairs)

        return await self.database.run(reset)

    async def export(self, pair: PairKey | None = None) -> list[dict[str, object]]:
        """Every stored turn (of `pair`, or of all pairs) as JSON-ready dicts, by pair."""

        def read(db: sqlite3.Connection) -> list[dict[str, object]]:
            pairs = (
                [pair]
                if pair is not None
                else [
                    (str(user), str(channel))
                    for user, channel in db.execute(
                        "SELECT DISTINCT user_id, channel_id FROM turns ORDER BY 1, 2"
                    )
                ]
            )
            return [
                {
                    "user": user,
                    "channel": channel,
                    "reset_after_turn": _reset_after(db, (user, channel)),
                    "turns": [vars(turn) for turn in _stored_turns(db, (user, channel), since=0)],
                }
                for user, channel in pairs
            ]

        return await self.database.run(read)


def _reset_after(db: sqlite3.Connection, pair: PairKey) -> int:
    row = db.execute(
        "SELECT reset_after FROM pairs WHERE user_id = ? AND channel_id = ?", pair
    ).fetchone()
    return int(row[0]) if row else 0


def _reset(db: sqlite3.Connection, pairs: list[PairKey]) -> None:
    newest = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM turns").fetchone()[0])
    db.executemany(
        "INSERT INTO pairs (user_id, channel_id, reset_after) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id, channel_id) DO UPDATE SET reset_after = excluded.reset_after",
        [(*pair, newest) for pair in pairs],
    )


def _optional_bool(value: int | None) -> bool | None:
    return None if value is None else value == 1


def _stored_turns(db: sqlite3.Connection, pair: PairKey, *, since: int) -> list[StoredTurn]:
    rows = db.execute(
        "SELECT at, kind, author_id, content, backend, delivered FROM turns"
        f" WHERE user_id = ? AND channel_id = ? AND id > ? ORDER BY {_POSITION}, id",
        (*pair, since),
    ).fetchall()
    return [
        StoredTurn(float(at), kind, author, content, backend, _optional_bool(delivered))
        for at, kind, author, content, backend, delivered in rows
    ]
