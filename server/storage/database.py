"""The SQLite file behind the relay: opening it, its schema and migrations, and a thread to use it.

Statements run on one worker thread, off the event loop, except quick ones (`run_quick`: a few
rows, on the relay's path for each message), which run at once on the loop while nothing waits for
the thread and no other process holds the lock. Errors come out as `DatabaseError` naming the file
and SQLite's own message.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

BUSY_TIMEOUT_SECONDS = 15.0
"""How long a statement waits for another process's lock before failing."""
CHECKPOINT_EVERY = 200
"""Transactions between checkpoints of the write-ahead log. They run on the database thread: a
checkpoint writes and syncs the file, which SQLite's own (at a commit) would do on the event loop
when the commit was a quick one."""

# Each entry upgrades the schema by one version; index 0 creates version 1.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE turns (
        id          INTEGER PRIMARY KEY,
        user_id     TEXT NOT NULL,
        channel_id  TEXT NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('message', 'owner', 'reply', 'summary')),
        discord_id  TEXT UNIQUE,
        author_id   TEXT,
        content     TEXT NOT NULL,
        at          REAL NOT NULL,
        follows     INTEGER,
        backend     TEXT,
        delivered   INTEGER,
        guild_id    TEXT,
        status      TEXT,
        reason      TEXT
    );
    CREATE INDEX turns_by_pair ON turns (user_id, channel_id, id);
    CREATE INDEX turns_by_time ON turns (at);
    CREATE INDEX turns_pending ON turns (status) WHERE status = 'pending';
    CREATE INDEX undelivered_replies ON turns (kind, delivered) WHERE delivered = 0;
    CREATE TABLE reply_parts (
        reply_id    INTEGER NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
        part        INTEGER NOT NULL,
        nonce       TEXT NOT NULL,
        content     TEXT NOT NULL,
        delivered   INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (reply_id, part)
    );
    CREATE TABLE pairs (
        user_id     TEXT NOT NULL,
        channel_id  TEXT NOT NULL,
        reset_after INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (user_id, channel_id)
    );
    CREATE TABLE takeovers (
        channel_id  TEXT PRIMARY KEY,
        until       REAL NOT NULL
    );
    """,
    # Away mode and drafts: how long a reply took, drafts, skipped messages, the away switch.
    """
    ALTER TABLE turns ADD COLUMN seconds REAL;
    CREATE TABLE drafts (
        id          INTEGER PRIMARY KEY,
        user_id     TEXT NOT NULL,
        channel_id  TEXT NOT NULL,
        guild_id    TEXT,
        message_id  TEXT NOT NULL,
        author_name TEXT NOT NULL DEFAULT '',
        follows     INTEGER,
        question    TEXT NOT NULL,
        content     TEXT NOT NULL,
        backend     TEXT NOT NULL,
        seconds     REAL,
        created     REAL NOT NULL,
        expires     REAL NOT NULL,
        status      TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'discarded', 'expired')),
        edited      INTEGER NOT NULL DEFAULT 0,
        decided     REAL
    );
    CREATE INDEX drafts_by_status ON drafts (status, expires);
    CREATE TABLE skips (
        id          INTEGER PRIMARY KEY,
        user_id     TEXT NOT NULL,
        channel_id  TEXT NOT NULL,
        message_id  TEXT,
        at          REAL NOT NULL,
        reason      TEXT NOT NULL
    );
    CREATE INDEX skips_by_time ON skips (at);
    CREATE TABLE owner_state (
        key         TEXT PRIMARY KEY,
        value       TEXT NOT NULL
    );
    """,
    # Bot-account mode: the persona and the sessions each person chose in a channel.
    """
    CREATE TABLE bot_pairs (
        user_id     TEXT NOT NULL,
        channel_id  TEXT NOT NULL,
        persona     TEXT,
        current     TEXT NOT NULL DEFAULT 'main',
        PRIMARY KEY (user_id, channel_id)
    );
    CREATE TABLE bot_sessions (
        id          INTEGER PRIMARY KEY,
        user_id     TEXT NOT NULL,
        channel_id  TEXT NOT NULL,
        title       TEXT NOT NULL,
        UNIQUE (user_id, channel_id, title)
    );
    """,
    # A pair's newest turns, read for every reply, without walking its whole history: by position
    # (conversations._POSITION), and its summaries on their own.
    """
    CREATE INDEX turns_by_position ON turns (user_id, channel_id, COALESCE(follows, id));
    CREATE INDEX turns_summaries ON turns (user_id, channel_id, id) WHERE kind = 'summary';
    """,
    # One record of why a message got no reply: its turn (status, reason, and now when that was
    # decided). The skips table said it a second time: what it holds that its turn lacks is
    # copied over (a turn left pending, the time of the decision), then it goes. A skip whose
    # turn is gone (pruned first, as it is older) goes with it; an answered turn keeps its fate.
    """
    ALTER TABLE turns ADD COLUMN decided REAL;
    CREATE INDEX skips_by_message ON skips (message_id);
    UPDATE turns SET
        status = CASE WHEN COALESCE(status, 'pending') = 'pending' THEN 'skipped' ELSE status END,
        reason = COALESCE(reason, (
            SELECT s.reason FROM skips s WHERE s.message_id = turns.discord_id
            ORDER BY s.id DESC LIMIT 1
        )),
        decided = (SELECT MAX(s.at) FROM skips s WHERE s.message_id = turns.discord_id)
    WHERE kind = 'message' AND COALESCE(status, '') != 'answered'
        AND discord_id IN (SELECT message_id FROM skips);
    DROP TABLE skips;
    """,
    # Chats chosen from Discord (the plugin's menus, `rules add`): rules beside reply_config.py's.
    """
    CREATE TABLE discord_rules (
        user_id     TEXT NOT NULL,
        channel_id  TEXT NOT NULL,
        persona     TEXT,
        mode        TEXT CHECK (mode IN ('send', 'draft')),
        reply_when  TEXT CHECK (reply_when IN ('away', 'always')),
        label       TEXT,
        created_at  REAL NOT NULL,
        PRIMARY KEY (user_id, channel_id)
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


LOCK_ERRORS = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class DatabaseError(Exception):
    """The database could not be opened, read or written; the text names the file."""


class SchemaTooNewError(DatabaseError):
    """The file was written by a newer release; this one must not touch it."""


class _Busy(Exception):
    """Another process holds the lock: quick work goes to the thread, which waits for it."""


class Database:
    """One SQLite connection in WAL mode, used by one worker thread and, for quick work, by the
    event loop; never by both at once."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._connection: sqlite3.Connection | None = None
        self._last_job: Future[Any] | None = None
        """The newest work handed to the thread: the thread is free once it is done."""
        self._busy_timeout: float | None = None
        self._since_checkpoint = 0

    async def open(self) -> None:
        """Open (creating if needed) and migrate the file; `DatabaseError` if it cannot be used."""
        await self.run(lambda connection: None)

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(connection)` in one transaction on the database thread; its result."""
        job = self._executor.submit(self._transaction, work)
        self._last_job = job
        return await asyncio.wrap_future(job)

    async def run_quick(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Like `run`, for work on a few rows: done at once on the event loop when the thread has
        nothing to do and no other process holds the lock, which saves the hop to the thread and
        back; otherwise queued behind the thread's work, as `run` does. It blocks the loop while
        it runs, so scans and big writes belong in `run`."""
        connection = self._connection
        thread_free = self._last_job is None or self._last_job.done()
        if connection is not None and thread_free and self._since_checkpoint < CHECKPOINT_EVERY:
            with contextlib.suppress(_Busy):
                return self._execute(connection, work, busy_timeout=0.0)
        return await self.run(work)

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """On the thread: run `work`, waiting for another process's lock, then checkpoint the
        write-ahead log when one is due."""
        try:
            connection = self._connection or self._connect()
        except sqlite3.Error as exc:
            raise DatabaseError(f"database {self.path}: {exc}") from None
        result = self._execute(connection, work, busy_timeout=BUSY_TIMEOUT_SECONDS)
        if self._since_checkpoint >= CHECKPOINT_EVERY:
            self._since_checkpoint = 0
            with contextlib.suppress(sqlite3.Error):  # a checkpoint left for later is harmless
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        return result

    def _execute(
        self,
        connection: sqlite3.Connection,
        work: Callable[[sqlite3.Connection], T],
        *,
        busy_timeout: float,
    ) -> T:
        """`work` in one transaction; with no `busy_timeout`, `_Busy` if the file is locked."""
        try:
            if busy_timeout != self._busy_timeout:
                connection.execute(f"PRAGMA busy_timeout = {round(busy_timeout * 1000)}")
                self._busy_timeout = busy_timeout
            with connection:
                result = work(connection)
        except sqlite3.OperationalError as exc:
            if not busy_timeout and exc.sqlite_errorcode & 0xFF in LOCK_ERRORS:
                raise _Busy from None
            raise DatabaseError(f"database {self.path}: {exc}") from None
        except sqlite3.Error as exc:
            raise DatabaseError(f"database {self.path}: {exc}") from None
        self._since_checkpoint += 1
        return result

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # Made on the thread and used by the loop too, never at the same time.
        connection = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        self._busy_timeout = BUSY_TIMEOUT_SECONDS
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
            # Checkpoints run on the thread, every CHECKPOINT_EVERY transactions.
            connection.execute("PRAGMA wal_autocheckpoint = 0")
            migrate(connection, self.path)
        except BaseException:
            connection.close()
            raise
        # Statements after this run inside `with connection:` transactions.
        connection.isolation_level = "DEFERRED"
        self._connection = connection
        return connection

    async def close(self) -> None:
        """Close the connection and stop the thread."""
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(sqlite3.Error):
                await asyncio.get_running_loop().run_in_executor(self._executor, connection.close)
        self._executor.shutdown(wait=True)


def migrate(connection: sqlite3.Connection, path: str) -> None:
    """Bring the schema up to `SCHEMA_VERSION`; refuse a file written by a newer release."""
    version = int(connection.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"database {path} has schema version {version}, newer than this release's "
            f"{SCHEMA_VERSION}: upgrade discord-auto-reply, or point DATABASE at another file"
        )
    for number in range(version, SCHEMA_VERSION):
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {number + 1}")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
