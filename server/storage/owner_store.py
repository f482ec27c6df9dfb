"""What the owner decides and reads, kept next to the conversations: the away switch, drafts,
and the history and return summary built from them and the turns (which also say which messages
the relay let pass, and why).

Every statement on the owner's tables is here; they live in the conversation store's SQLite file.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from server.conversation.memory import PairKey
from server.storage.conversations import ConversationStore

T = TypeVar("T")
DraftStatus = Literal["pending", "sending", "sent", "discarded", "expired"]
HistoryKind = Literal["message", "owner", "reply", "skipped", "draft"]
NO_REPLY = ("skipped", "failed", "expired")
"""The fates of a message that got no reply: `history` shows each as skipped, with its reason."""
_DRAFT_COLUMNS = (
    "id, user_id, channel_id, guild_id, message_id, author_name, follows, question, content,"
    " backend, seconds, created, expires, status, edited"
)


@dataclass(frozen=True)
class Draft:
    """A reply kept for the owner to send, edit or discard."""

    id: int
    pair: PairKey
    guild: str | None
    message_id: str
    """The newest message it answers (replied to in guild channels)."""
    author_name: str
    follows: int | None
    """That message's turn, so a sent draft takes its place in the conversation."""
    question: str
    content: str
    backend: str
    seconds: float | None
    created: float
    expires: float
    status: DraftStatus
    edited: bool


@dataclass(frozen=True)
class HistoryEntry:
    """One line of `history`: who said what in which chat, or what was let pass and why."""

    at: float
    user: str
    channel: str
    kind: HistoryKind
    text: str
    backend: str | None = None
    seconds: float | None = None
    note: str = ""


@dataclass(frozen=True)
class ChatSummary:
    """What the relay said in one chat while the owner was away."""

    pair: PairKey
    answered: int
    """Messages from the other person that got a reply."""
    replies: list[str]
    """The first line of each reply, oldest first."""


class OwnerStore:
    """The owner's side of the database: away state, drafts, history."""

    def __init__(self, conversations: ConversationStore) -> None:
        self._conversations = conversations

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        # The conversation store may swap its database (a file that cannot be opened): follow it.
        return await self._conversations.database.run(work)

    # The away switch and when the owner went away.

    async def owner_state(self) -> dict[str, str]:
        """Every stored owner setting (`away_switch`, `away_since`)."""

        def read(db: sqlite3.Connection) -> dict[str, str]:
            return {str(k): str(v) for k, v in db.execute("SELECT key, value FROM owner_state")}

        return await self._run(read)

    async def set_owner_state(self, values: dict[str, str | None]) -> None:
        """Store owner settings; None deletes one."""

        def write(db: sqlite3.Connection) -> None:
            for key, value in values.items():
                if value is None:
                    db.execute("DELETE FROM owner_state WHERE key = ?", (key,))
                else:
                    db.execute(
                        "INSERT INTO owner_state (key, value) VALUES (?, ?)"
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (key, value),
                    )

        await self._run(write)

    async def owner_lines(self, limit: int) -> list[str]:
        """The newest `limit` messages the owner wrote in watched chats (for `style learn`)."""

        def read(db: sqlite3.Connection) -> list[str]:
            rows = db.execute(
                "SELECT content FROM turns WHERE kind = 'owner' ORDER BY id DESC LIMIT ?", (limit,)
            )
            return [str(content) for (content,) in rows]

        return await self._run(read)

    # Drafts.

    async def add_draft(
        self,
        pair: PairKey,
        *,
        guild: str | None,
        message_id: str,
        author_name: str,
        follows: int | None,
        question: str,
        content: str,
        backend: str,
        seconds: float | None,
        expires: float,
    ) -> Draft:
        """Store a new pending draft; it, with its id."""

        def insert(db: sqlite3.Connection) -> Draft:
            cursor = db.execute(
                "INSERT INTO drafts (user_id, channel_id, guild_id, message_id, author_name,"
                " follows, question, content, backend, seconds, created, expires)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    *pair,
                    guild,
                    message_id,
                    author_name,
                    follows,
                    question,
                    content,
                    backend,
                    seconds,
                    time.time(),
                    expires,
                ),
            )
            row = db.execute(
                f"SELECT {_DRAFT_COLUMNS} FROM drafts WHERE id = ?", (cursor.lastrowid,)
            ).fetchone()
            return _draft(row)

        return await self._run(insert)

    async def draft(self, draft_id: int) -> Draft | None:
        """The draft with this id, whatever its status."""
        return await self._run(lambda db: _draft_by_id(db, draft_id))

    async def drafts(self, *, pending_only: bool = True) -> list[Draft]:
        """Pending drafts (or all of them), oldest first."""

        def read(db: sqlite3.Connection) -> list[Draft]:
            where = "WHERE status IN ('pending', 'sending')" if pending_only else ""
            rows = db.execute(f"SELECT {_DRAFT_COLUMNS} FROM drafts {where} ORDER BY id")
            return [_draft(row) for row in rows]

        return await self._run(read)

    async def claim_draft(self, draft_id: int) -> Draft | None:
        """Mark a pending draft as being sent, so no one sends it twice; None if not pending."""

        def claim(db: sqlite3.Connection) -> Draft | None:
            cursor = db.execute(
                "UPDATE drafts SET status = 'sending' WHERE id = ? AND status = 'pending'",
                (draft_id,),
            )
            return _draft_by_id(db, draft_id) if cursor.rowcount else None

        return await self._run(claim)

    async def settle_draft(
        self, draft_id: int, status: DraftStatus, content: str | None = None
    ) -> None:
        """Give a draft its new status: sent (with the text sent), discarded, or pending again."""

        def update(db: sqlite3.Connection) -> None:
            decided = None if status == "pending" else time.time()
            if content is None:
                db.execute(
                    "UPDATE drafts SET status = ?, decided = ? WHERE id = ?",
                    (status, decided, draft_id),
                )
            else:
                db.execute(
                    "UPDATE drafts SET status = ?, decided = ?, content = ?,"
                    " edited = edited OR content != ? WHERE id = ?",
                    (status, decided, content, content, draft_id),
                )

        await self._run(update)

    async def discard_draft(self, draft_id: int) -> bool:
        """Discard a pending draft; False if it was not pending."""

        def update(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE drafts SET status = 'discarded', decided = ?"
                " WHERE id = ? AND status = 'pending'",
                (time.time(), draft_id),
            )
            return bool(cursor.rowcount)

        return await self._run(update)

    async def expire_drafts(self, now: float) -> list[Draft]:
        """Expire the pending drafts whose time is up; those drafts."""

        def expire(db: sqlite3.Connection) -> list[Draft]:
            rows = db.execute(
                f"SELECT {_DRAFT_COLUMNS} FROM drafts WHERE status = 'pending' AND expires <= ?"
                " ORDER BY id",
                (now,),
            ).fetchall()
            db.executemany(
                "UPDATE drafts SET status = 'expired', decided = ? WHERE id = ?",
                [(now, row[0]) for row in rows],
            )
            return [_draft(row) for row in rows]

        return await self._run(expire)

    async def next_expiry(self) -> float | None:
        """When the next pending draft expires (Unix time), if there is one."""

        def read(db: sqlite3.Connection) -> float | None:
            row = db.execute("SELECT MIN(expires) FROM drafts WHERE status = 'pending'").fetchone()
            return None if row[0] is None else float(row[0])

        return await self._run(read)

    async def release_interrupted_drafts(self) -> int:
        """At start: drafts left "sending" by a stopped server are pending again; how many."""

        def update(db: sqlite3.Connection) -> int:
            cursor = db.execute("UPDATE drafts SET status = 'pending' WHERE status = 'sending'")
            return int(cursor.rowcount)

        return await self._run(update)

    # What the relay did: the history and the return summary.

    async def history(self, since: float, pair: PairKey | None = None) -> list[HistoryEntry]:
        """Everything said, skipped or drafted since `since` (in one pair, or all), oldest first."""

        def read(db: sqlite3.Connection) -> list[HistoryEntry]:
            where, args = _pair_filter(pair)
            entries = [
                *_turn_entries(db, since, where, args),
                *_draft_entries(db, since, where, args),
            ]
            return sorted(entries, key=lambda entry: entry.at)

        return await self._run(read)

    async def away_summary(self, since: float) -> list[ChatSummary]:
        """Per chat, what the relay said since `since`: messages answered and each reply."""

        def read(db: sqlite3.Connection) -> list[ChatSummary]:
            rows = db.execute(
                "SELECT user_id, channel_id, follows, content FROM turns"
                " WHERE kind = 'reply' AND at >= ? AND content != '' ORDER BY id",
                (since,),
            ).fetchall()
            replies: dict[PairKey, list[str]] = {}
            newest: dict[PairKey, int] = {}
            for user, channel, follows, content in rows:
                pair = (str(user), str(channel))
                replies.setdefault(pair, []).append(first_line(content))
                newest[pair] = max(newest.get(pair, 0), int(follows or 0))
            summaries = []
            for pair, texts in replies.items():
                (answered,) = db.execute(
                    "SELECT COUNT(*) FROM turns WHERE user_id = ? AND channel_id = ?"
                    " AND kind = 'message' AND at >= ? AND id <= ?",
                    (*pair, since, newest[pair]),
                ).fetchone()
                summaries.append(ChatSummary(pair, int(answered), texts))
            return summaries

        return await self._run(read)

    async def prune(self, older_than: float) -> None:
        """Delete settled drafts from before `older_than` (Unix time); the turns, and with them
        why a message got no reply, are pruned by the conversation store."""

        def delete(db: sqlite3.Connection) -> None:
            db.execute(
                "DELETE FROM drafts WHERE created < ? AND status NOT IN ('pending', 'sending')",
                (older_than,),
            )

        await self._run(delete)


def first_line(text: str, limit: int = 120) -> str:
    """The first non-empty line of `text`, cut to `limit` characters."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _pair_filter(pair: PairKey | None) -> tuple[str, tuple[str, ...]]:
    if pair is None:
        return "", ()
    return " AND user_id = ? AND channel_id = ?", pair


def _turn_entries(
    db: sqlite3.Connection, since: float, where: str, args: tuple[str, ...]
) -> list[HistoryEntry]:
    """What was said since `since`, and after each message that got no reply, why (when that
    was decided)."""
    rows = db.execute(
        "SELECT id, at, user_id, channel_id, kind, content, backend, seconds, delivered, status,"
        " reason, decided FROM turns"
        f" WHERE at >= ? AND kind IN ('message', 'owner', 'reply'){where} ORDER BY id",
        (since, *args),
    ).fetchall()
    parts: dict[int, list[tuple[str, bool]]] = {}
    reply_ids = [row[0] for row in rows if row[4] == "reply"]
    for start in range(0, len(reply_ids), 500):
        chunk = reply_ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        for reply_id, content, delivered in db.execute(
            f"SELECT reply_id, content, delivered FROM reply_parts WHERE reply_id IN ({marks})"
            " ORDER BY reply_id, part",
            chunk,
        ):
            parts.setdefault(int(reply_id), []).append((str(content), bool(delivered)))
    entries = []
    for row in rows:
        turn_id, at, user, channel, kind, stored, backend, seconds, delivered = row[:9]
        status, reason, decided = row[9:]
        note, content = "", stored
        if kind == "reply":
            reply_parts = parts.get(int(turn_id), [])
            content = "\n".join(text for text, _ in reply_parts) or stored
            sent = sum(1 for _, done in reply_parts if done)
            if not sent:
                note = "not delivered"
            elif not delivered:
                note = f"{sent} of {len(reply_parts)} parts delivered"
        entries.append(
            HistoryEntry(
                float(at), str(user), str(channel), kind, str(content), backend, seconds, note
            )
        )
        if kind == "message" and status in NO_REPLY and reason:
            when = float(at if decided is None else decided)
            entries.append(HistoryEntry(when, str(user), str(channel), "skipped", str(reason)))
    return entries


def _draft_entries(
    db: sqlite3.Connection, since: float, where: str, args: tuple[str, ...]
) -> list[HistoryEntry]:
    # A sent draft is in the history as the reply it became.
    rows = db.execute(
        "SELECT created, user_id, channel_id, content, backend, seconds, status FROM drafts"
        f" WHERE created >= ? AND status != 'sent'{where} ORDER BY id",
        (since, *args),
    )
    return [
        HistoryEntry(
            float(at), str(user), str(channel), "draft", str(content), backend, seconds, status
        )
        for at, user, channel, content, backend, seconds, status in rows
    ]


def _draft(row: Any) -> Draft:
    (
        draft_id,
        user,
        channel,
        guild,
        message_id,
        author_name,
        follows,
        question,
        content,
        backend,
        seconds,
        created,
        expires,
        status,
        edited,
    ) = row
    return Draft(
        id=int(draft_id),
        pair=(str(user), str(channel)),
        guild=None if guild is None else str(guild),
        message_id=str(message_id),
        author_name=str(author_name),
        follows=None if follows is None else int(follows),
        question=str(question),
        content=str(content),
        backend=str(backend),
        seconds=None if seconds is None else float(seconds),
        created=float(created),
        expires=float(expires),
        status=status,
        edited=bool(edited),
    )


def _draft_by_id(db: sqlite3.Connection, draft_id: int) -> Draft | None:
    row = db.execute(f"SELECT {_DRAFT_COLUMNS} FROM drafts WHERE id = ?", (draft_id,)).fetchone()
    return None if row is None else _draft(row)
