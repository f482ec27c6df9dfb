"""The conversation store on a real SQLite file: turns, order, resets, retention, schema."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from server.llm.base import ChatMessage
from server.storage import database
from server.storage.conversations import ConversationStore, ReplyPart
from server.storage.database import Database, DatabaseError, SchemaTooNewError
from server.storage.owner_store import OwnerStore

PAIR = ("111", "222")


async def open_store(path: Path) -> ConversationStore:
    store = ConversationStore(path)
    await store.open()
    return store


async def test_messages_are_stored_once_by_discord_id_even_across_a_reopen(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path / "db")
    first = await store.record_message(PAIR, "1001", "111", "hello")
    assert first is not None
    assert await store.record_message(PAIR, "1001", "111", "hello") is None
    await store.close()
    store = await open_store(tmp_path / "db")
    assert await store.record_message(PAIR, "1001", "111", "hello") is None
    assert [t.content for t in (await store.window(PAIR, limit=10)).turns] == ["hello"]
    await store.close()


async def test_a_reply_sits_after_the_message_it_answers(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "db")
    m1 = await store.record_message(PAIR, "1", "111", "first")
    await store.record_message(PAIR, "2", "111", "arrived while the reply was written")
    reply = await store.record_reply(PAIR, [m1], "openai", [ReplyPart("n1", "answer to first")])
    await store.record_delivery(reply, 1)
    window = await store.window(PAIR, limit=10)
    assert [(t.kind, t.content) for t in window.turns] == [
        ("message", "first"),
        ("reply", "answer to first"),
        ("message", "arrived while the reply was written"),
    ]
    assert [(t.kind, t.content) for t in (await store.window(PAIR, limit=10, upto=m1)).turns] == [
        ("message", "first"),
        ("reply", "answer to first"),
    ]
    await store.close()


async def test_only_delivered_parts_join_the_conversation(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "db")
    m1 = await store.record_message(PAIR, "1", "111", "tell me a long story")
    parts = [ReplyPart("n1", "part one"), ReplyPart("n2", "part two"), ReplyPart("n3", "three")]
    reply = await store.record_reply(PAIR, [m1], "openai", parts)
    assert [t.kind for t in (await store.window(PAIR, limit=10)).turns] == ["message"]
    await store.record_delivery(reply, 2)
    assert (await store.window(PAIR, limit=10)).turns[-1].content == "part one\npart two"
    [_, stored] = await store.conversation(PAIR)
    assert stored.delivered is False and stored.backend == "openai"
    await store.close()


async def test_the_fallback_message_is_kept_as_history_but_not_as_memory(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "db")
    m1 = await store.record_message(PAIR, "1", "111", "hi")
    reply = await store.record_reply(PAIR, [m1], "fallback", [ReplyPart("n", "Away, back soon.")])
    await store.record_delivery(reply, 1)
    assert [t.kind for t in (await store.window(PAIR, limit=10)).turns] == ["message"]
    assert [t.backend for t in await store.conversation(PAIR)] == [None, "fallback"]
    await store.close()


async def test_reset_starts_afresh_and_keeps_the_history_for_export(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "db")
    await store.add(PAIR, ChatMessage("user", "old"))
    await store.add(PAIR, ChatMessage("assistant", "old reply"))
    await store.add(("333", "444"), ChatMessage("user", "someone else"))
    assert await store.recent(PAIR, 10) == [  # a reply added as a plain turn is remembered
        ChatMessage("user", "old"),
        ChatMessage("assistant", "old reply"),
    ]
    await store.reset(PAIR)
    assert await store.recent(PAIR, 10) == []
    assert await store.conversation(PAIR) == []
    await store.add(PAIR, ChatMessage("user", "new"))
    assert await store.recent(PAIR, 10) == [ChatMessage("user", "new")]
    assert await store.recent(("333", "444"), 10) == [ChatMessage("user", "someone else")]
    [exported] = await store.export(PAIR)
    assert [turn["content"] for turn in exported["turns"]] == ["old", "old reply", "new"]
    assert await store.reset_all() == 2
    assert await store.recent(("333", "444"), 10) == []
    await store.close()


async def test_a_summary_replaces_the_turns_it_covers(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "db")
    for text in ("a", "b", "c"):
        await store.add(PAIR, ChatMessage("user", text))
    covered = (await store.window(PAIR, limit=10)).turns[1].position
    await store.save_summary(PAIR, "they said a and b", covered)
    window = await store.window(PAIR, limit=10)
    assert window.summary == "they said a and b"
    assert [t.content for t in window.turns] == ["c"]
    await store.close()


async def test_takeovers_are_stored_extended_and_forgotten_when_over(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "db")
    now = time.time()
    await store.set_takeover("222", now + 60)
    await store.set_takeover("222", now + 30)  # never shortened
    await store.set_takeover("999", now - 1)
    assert await store.takeovers() == {"222": now + 60}
    [listed] = [p for p in await store.pairs() if p.pair == PAIR] or [None]
    assert listed is None  # a takeover alone is no conversation
    await store.add(PAIR, ChatMessage("user", "hi"))
    [listed] = await store.pairs()
    assert listed.paused_until == now + 60 and listed.turns == 1
    await store.close()


async def test_prune_deletes_what_is_older_than_the_horizon(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "db")
    await store.add(PAIR, ChatMessage("user", "old"))
    horizon = time.time()
    await store.add(PAIR, ChatMessage("user", "new"))
    assert await store.prune(horizon) == 1
    assert [t.content for t in await store.recent(PAIR, 10)] == ["new"]
    await store.close()


async def test_a_new_file_gets_wal_mode_and_the_current_schema_version(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "sub" / "db")
    await store.close()
    with sqlite3.connect(tmp_path / "sub" / "db") as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == database.SCHEMA_VERSION
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_an_older_database_is_migrated_forward_keeping_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_store(tmp_path / "db")
    await store.add(PAIR, ChatMessage("user", "kept"))
    await store.close()
    newer = (*database.MIGRATIONS, "ALTER TABLE turns ADD COLUMN mood TEXT")
    monkeypatch.setattr(database, "MIGRATIONS", newer)
    monkeypatch.setattr(database, "SCHEMA_VERSION", len(newer))
    store = await open_store(tmp_path / "db")
    assert await store.recent(PAIR, 10) == [ChatMessage("user", "kept")]
    await store.close()
    with sqlite3.connect(tmp_path / "db") as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == len(newer)
        assert "mood" in [row[1] for row in raw.execute("PRAGMA table_info(turns)")]


async def test_a_database_from_a_newer_release_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {database.SCHEMA_VERSION + 1}")
    store = ConversationStore(path)
    with pytest.raises(SchemaTooNewError, match=f"{path}.*newer than this release"):
        await store.open()
    await store.close()


async def test_an_unusable_file_is_reported_with_its_path(tmp_path: Path) -> None:
    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("this is not SQLite " * 100, encoding="utf-8")
    db = Database(not_a_database)
    with pytest.raises(DatabaseError, match=f"database {not_a_database}: file is not a database"):
        await db.open()
    await db.close()


async def test_reading_a_window_uses_indexes_not_the_pairs_whole_history(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "db")
    message = await store.record_message(PAIR, "d1", PAIR[0], "hello")
    assert message is not None
    await store.record_reply(PAIR, [message], "openai", [ReplyPart("n1", "hi")])
    statements: list[str] = []

    def trace(work: sqlite3.Connection) -> None:
        work.set_trace_callback(statements.append)

    await store.database.run(trace)
    window = await store.window(PAIR, limit=5, upto=message)
    await store.database.run(lambda db: db.set_trace_callback(None))
    assert [turn.content for turn in window.turns] == ["hello"]  # the reply is not delivered
    reads = [sql for sql in statements if sql.startswith("SELECT")]
    assert len(reads) == 3  # the reset, the newest summary, the turns

    def plans(db: sqlite3.Connection) -> list[str]:
        return [
            " ".join(str(row[-1]) for row in db.execute(f"EXPLAIN QUERY PLAN {sql}"))
            for sql in reads
        ]

    for plan in await store.database.run(plans):
        assert plan.startswith("SEARCH"), plan  # through an index, never a SCAN
        assert "TEMP B-TREE" not in plan, plan  # in index order, not sorted afterwards
    await store.close()


async def test_why_a_message_got_no_reply_is_kept_once_on_its_turn_and_pruned_with_it(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path / "db")
    records = OwnerStore(store)
    skipped = "the owner is present (Discord status online)"
    await store.record_message(PAIR, "1001", "111", "you there?", status="skipped", reason=skipped)
    failed = await store.record_message(PAIR, "1002", "111", "hello?")
    answered = await store.record_message(PAIR, "1003", "111", "hi")
    assert failed is not None and answered is not None
    await asyncio.sleep(0.01)  # the decision comes after the message, and history says when
    before = time.time()
    await store.settle([failed], "failed", "no LLM backend answered")
    await store.record_reply(PAIR, [answered], "openai", [ReplyPart("n1", "hey")])
    await store.settle([answered], "skipped", "too late")  # answered: its fate stands

    entries = await records.history(0)
    assert [(e.kind, e.text) for e in entries] == [
        ("message", "you there?"),
        ("skipped", skipped),
        ("message", "hello?"),
        ("message", "hi"),
        ("skipped", "no LLM backend answered"),
        ("reply", "hey"),
    ]
    assert entries[4].at >= before > entries[3].at  # shown when it was decided
    names = await store.database.run(
        lambda db: [row[0] for row in db.execute("SELECT name FROM sqlite_master")]
    )
    assert "skips" not in names  # the turn is the one record

    await store.prune(time.time() + 1)  # retention takes the reasons with their turns
    assert await records.history(0) == []
    await store.close()


def write_schema(path: Path, version: int) -> sqlite3.Connection:
    """A database file at an earlier schema `version`, as that release left it."""
    raw = sqlite3.connect(path, isolation_level=None)
    for migration in database.MIGRATIONS[:version]:
        raw.executescript(migration)
    raw.execute(f"PRAGMA user_version = {version}")
    return raw


async def test_skips_of_schema_4_move_onto_their_turns_and_the_table_goes(tmp_path: Path) -> None:
    raw = write_schema(tmp_path / "db", 4)
    t0 = time.time() - 60
    turns = [  # discord id, status, reason
        ("1001", "skipped", "the owner is present"),  # both records say it
        ("1002", "pending", None),  # only the skip says it: settling the turn failed
        ("1003", "answered", None),  # a stray skip does not undo an answer
        ("1004", "expired", "too old after a restart"),  # never had a skip row
        ("1005", "pending", None),  # still waiting: stays so
    ]
    raw.executemany(
        "INSERT INTO turns (user_id, channel_id, kind, discord_id, author_id, content, at,"
        " status, reason) VALUES (?, ?, 'message', ?, ?, ?, ?, ?, ?)",
        [(*PAIR, d, PAIR[0], f"text {d}", t0 + n, s, r) for n, (d, s, r) in enumerate(turns)],
    )
    raw.executemany(
        "INSERT INTO skips (user_id, channel_id, message_id, at, reason) VALUES (?, ?, ?, ?, ?)",
        [
            (*PAIR, "1001", t0 + 10, "the owner is present"),
            (*PAIR, "1002", t0 + 20, "no LLM backend answered"),
            (*PAIR, "1003", t0 + 30, "over 4 replies per minute to this person"),
            (*PAIR, "9999", t0 + 40, "its turn was pruned"),
            (*PAIR, None, t0 + 50, "its turn was never stored"),
        ],
    )
    raw.close()

    store = await open_store(tmp_path / "db")
    with sqlite3.connect(tmp_path / "db") as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == database.SCHEMA_VERSION
        tables = [row[0] for row in check.execute("SELECT name FROM sqlite_master")]
        assert "skips" not in tables and "skips_by_time" not in tables
        fates = check.execute(
            "SELECT discord_id, status, reason, decided FROM turns ORDER BY id"
        ).fetchall()
    assert fates == [
        ("1001", "skipped", "the owner is present", t0 + 10),
        ("1002", "skipped", "no LLM backend answered", t0 + 20),
        ("1003", "answered", None, None),
        ("1004", "expired", "too old after a restart", None),
        ("1005", "pending", None, None),
    ]
    assert [p.discord_id for p in await store.pending_messages()] == ["1005"]
    skips = [(e.at, e.text) for e in await OwnerStore(store).history(0) if e.kind == "skipped"]
    assert skips == [
        (t0 + 3, "too old after a restart"),  # when its message came: no decision time kept
        (t0 + 10, "the owner is present"),
        (t0 + 20, "no LLM backend answered"),
    ]
    await store.close()
