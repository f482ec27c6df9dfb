"""Database: quick work on the event loop when the file is free, in order with the thread's."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from server.storage import database
from server.storage.database import Database, DatabaseError


async def open_database(path: Path) -> Database:
    db = Database(path)
    await db.open()
    await db.run(lambda c: c.execute("CREATE TABLE notes (n INTEGER)"))
    return db


def add(n: int) -> object:
    def insert(connection: sqlite3.Connection) -> str:
        connection.execute("INSERT INTO notes VALUES (?)", (n,))
        return threading.current_thread().name

    return insert


def notes(connection: sqlite3.Connection) -> list[int]:
    return [n for (n,) in connection.execute("SELECT n FROM notes ORDER BY rowid")]


async def test_quick_work_runs_on_the_loop_when_the_thread_is_free(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "db")
    try:
        assert await db.run_quick(add(1)) == threading.current_thread().name
        assert (await db.run(add(2))).startswith("sqlite")
        assert await db.run_quick(notes) == [1, 2]
    finally:
        await db.close()


async def test_quick_work_waits_behind_work_queued_for_the_thread(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "db")

    def slow(connection: sqlite3.Connection) -> str:
        time.sleep(0.2)
        return str(add(1)(connection))

    try:
        first = asyncio.ensure_future(db.run(slow))
        await asyncio.sleep(0)  # the slow work is on the thread now
        where = await db.run_quick(add(2))
        assert where.startswith("sqlite")  # queued behind it, not run beside it
        assert (await first).startswith("sqlite")
        assert await db.run_quick(notes) == [1, 2]
    finally:
        await db.close()


async def test_quick_work_waits_for_another_process_lock_on_the_thread(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "db")
    other = sqlite3.connect(tmp_path / "db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # holds the write lock, as another process would
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, other.execute, "COMMIT")
    try:
        started = time.monotonic()
        assert (await db.run_quick(add(1))).startswith("sqlite")  # waited on the thread
        assert time.monotonic() - started >= 0.25
        assert await db.run_quick(notes) == [1]
        assert await db.run_quick(add(2)) == threading.current_thread().name  # free again
    finally:
        other.close()
        await db.close()


async def test_quick_work_reports_other_errors_by_file(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "db")
    try:
        with pytest.raises(DatabaseError, match=r"db: no such table: missing"):
            await db.run_quick(lambda c: c.execute("SELECT * FROM missing"))
    finally:
        await db.close()


async def test_the_write_ahead_log_is_checkpointed_on_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "CHECKPOINT_EVERY", 10)
    db = await open_database(tmp_path / "db")
    checkpoints: list[str] = []

    def trace(connection: sqlite3.Connection) -> None:
        def seen(sql: str) -> None:
            if "wal_checkpoint" in sql:
                checkpoints.append(threading.current_thread().name)

        connection.set_trace_callback(seen)

    try:
        await db.run(trace)
        for n in range(35):
            await db.run_quick(add(n))
        assert len(checkpoints) == 3
        assert all(name.startswith("sqlite") for name in checkpoints)
        assert await db.run_quick(notes) == list(range(35))
    finally:
        await db.close()
