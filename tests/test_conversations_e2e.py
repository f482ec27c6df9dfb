"""Conversations over real sockets and a real SQLite file: restarts, bursts, budget, takeover."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from server.conversation.recovery import RESEND_WINDOW_SECONDS
from server.storage.conversations import ConversationStore, ReplyPart
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI, reply
from tests.relay_harness import PluginClient, running_app
from tests.test_relay import RULES, rest_settings, user_texts

ROOT = Path(__file__).resolve().parent.parent


def chat(request: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in request["messages"]]


async def test_a_restart_keeps_every_pairs_conversation(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    settings = rest_settings(fake_discord, fake_openai)
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("1001", "111", "222", "my name is Ann")
        await fake_discord.wait_for_messages(1)
        await client.close()
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("1002", "111", "222", "who am I?")
        await fake_discord.wait_for_messages(2)
        assert chat(fake_openai.requests[-1])[1:] == [
            ("user", "my name is Ann"),
            ("assistant", "echo: my name is Ann [turns=1]"),
            ("user", "who am I?"),
        ]
        await client.close()


async def test_a_message_resent_after_a_restart_is_acked_and_not_answered_again(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    settings = rest_settings(fake_discord, fake_openai)
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("2001", "111", "222", "hello")
        await fake_discord.wait_for_messages(1)
        await client.close()
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("2001", "111", "222", "hello")  # the plugin's buffer, re-sent
        await client.message("2002", "111", "222", "and again")
        await fake_discord.wait_for_messages(2)
        await running.app.relay.drain()
        assert [p["content"] for p in fake_discord.messages] == [
            "[auto-reply] echo: hello [turns=1]",
            "[auto-reply] echo: and again [turns=3]",
        ]
        assert len(fake_openai.requests) == 2
        await client.close()


async def test_a_burst_gets_one_reply_that_carries_every_message(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    settings = rest_settings(fake_discord, fake_openai, COALESCE_SECONDS=0.4)
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        for index, text in enumerate(["hey", "are you free", "on saturday?"]):
            await client.message(f"300{index}", "111", "222", text)
        last_sent = time.monotonic()
        await asyncio.sleep(0.2)
        assert fake_discord.messages == []  # still waiting for the burst to end
        assert "222" in fake_discord.typing  # ...but already typing
        [posted] = await fake_discord.wait_for_messages(1)
        assert time.monotonic() - last_sent >= 0.4
        await running.app.relay.drain()
        [request] = fake_openai.requests
        assert user_texts(request) == ["hey", "are you free", "on saturday?"]
        assert posted["content"] == "[auto-reply] echo: on saturday? [turns=3]"
        assert posted.get("message_reference") is None
        await client.close()


async def test_the_token_budget_drops_the_oldest_turns_and_keeps_the_newest_message(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    settings = rest_settings(
        fake_discord, fake_openai, CONTEXT_TOKENS=120, MEMORY_LENGTH=20, MAX_REPLIES_PER_MINUTE=0
    )
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        for index in range(5):
            text = f"message number {index}: " + "lorem ipsum dolor sit amet " * 3
            await client.message(f"400{index}", "111", "222", text)
            await fake_discord.wait_for_messages(index + 1)
        huge = "the newest one " + "word " * 400
        await client.message("4100", "111", "222", huge)
        await fake_discord.wait_for_messages(6)
        budgeted = fake_openai.requests[4]
        texts = user_texts(budgeted)
        assert texts[-1].startswith("message number 4")
        assert len(texts) < 5 and not any(t.startswith("message number 0") for t in texts)
        counter = running.app.relay._tokens  # the relay's own counter, same encoding
        used = sum(counter.count(m["content"], "gpt-4o-mini") + 4 for m in budgeted["messages"])
        assert used + 3 <= 120
        # A single message over the budget is truncated, never dropped.
        [system, newest] = fake_openai.requests[5]["messages"]
        assert system["role"] == "system"
        assert newest["content"].startswith("the newest one word")
        assert len(newest["content"]) < len(huge)
        await client.close()


async def test_summarize_condenses_old_turns_stores_and_reuses_the_summary(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    def answer(messages: list[dict[str, Any]]) -> str:
        if messages[0]["content"].startswith("Summarise"):
            return f"SUMMARY of {messages[1]['content'].count(chr(10)) + 1} lines"
        return reply(messages)

    fake_openai.reply_fn = answer
    settings = rest_settings(
        fake_discord, fake_openai, SUMMARIZE=True, MEMORY_LENGTH=1, MAX_REPLIES_PER_MINUTE=0
    )
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        for index, text in enumerate(["I am Ann", "I like tea", "what do you know?"]):
            await client.message(f"500{index}", "111", "222", text)
            await fake_discord.wait_for_messages(index + 1)
        summary_request, main = fake_openai.requests[-2:]
        assert summary_request["messages"][1]["content"] == (
            "THEM: I am Ann\nME: echo: I am Ann [turns=1]"
        )
        assert main["messages"][0]["content"].endswith(
            "Earlier in this conversation: SUMMARY of 2 lines"
        )
        assert user_texts(main) == ["I like tea", "what do you know?"]

        # The next request reuses the summary and folds the newly dropped turns into it.
        await client.message("5003", "111", "222", "anything else?")
        await fake_discord.wait_for_messages(4)
        refold = fake_openai.requests[-2]["messages"][1]["content"]
        assert refold.startswith("Earlier summary: SUMMARY of 2 lines\nTHEM: I like tea")

        # A failed summary falls back to dropping the turns.
        fake_openai.fail_next(500, 1)
        await client.message("5004", "111", "222", "still there?")
        [*_, posted] = await fake_discord.wait_for_messages(5)
        assert posted["content"].startswith("[auto-reply] echo: still there?")
        assert (
            "Earlier in this conversation: SUMMARY of 3 lines"
            in (fake_openai.requests[-1]["messages"][0]["content"])
        )
        await client.close()


async def test_owner_takeover_cancels_pauses_is_remembered_and_survives_a_restart(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    fake_openai.delay = 0.6
    minutes = 0.04  # 2.4 s
    settings = rest_settings(fake_discord, fake_openai, TAKEOVER_MINUTES=minutes)
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("6001", "111", "222", "are you there?")
        await asyncio.sleep(0.2)  # the reply is being written
        took_over = time.monotonic()
        await client.message("6002", "9", "222", "yes, it's really me", is_self=True)
        await client.message("6003", "111", "222", "oh hi!")
        await running.app.relay.drain()
        await asyncio.sleep(0.6)  # the cancelled LLM call would have finished by now
        assert fake_discord.messages == []
        await client.close()
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("6004", "111", "222", "after the restart")
        await running.app.relay.drain()
        assert fake_discord.messages == []
        await asyncio.sleep(max(0.0, took_over + minutes * 60 - time.monotonic()) + 0.1)
        await client.message("6005", "111", "222", "and now?")
        [posted] = await fake_discord.wait_for_messages(1, timeout=10)
        assert posted["content"].startswith("[auto-reply] echo: and now?")
        assert chat(fake_openai.requests[-1])[1:] == [
            ("user", "are you there?"),
            ("assistant", "yes, it's really me"),
            ("user", "oh hi!"),
            ("user", "after the restart"),
            ("user", "and now?"),
        ]
        await client.close()


async def test_the_reply_limits_and_the_repeat_check_survive_a_restart(
    tmp_path: Path,
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = rest_settings(fake_discord, fake_openai, MAX_REPLIES_PER_MINUTE=1)
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("7001", "111", "222", "first")
        await client.message("7002", "501", "333", "hi all")
        await fake_discord.wait_for_messages(2)
        await client.close()
    ours = next(m["content"] for m in fake_discord.messages if m["channel_id"] == "333")
    caplog.set_level(logging.DEBUG, logger="server")
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("7003", "111", "222", "second")  # this minute's reply was made
        await client.message("7004", "502", "333", ours.removeprefix("[auto-reply] "))
        await client.message("7005", "112", "223", "a pair not yet answered")
        await fake_discord.wait_for_messages(3)
        await running.app.relay.drain()
        assert [m["channel_id"] for m in fake_discord.messages] == ["222", "333", "223"]
        assert len(fake_openai.requests) == 3
        logged = "\n".join(record.getMessage() for record in caplog.records)
        assert "over 1 replies per minute to this person" in logged
        assert "it repeats one of our recent replies" in logged
        await client.close()


async def test_a_database_locked_by_another_process_loses_nothing(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    settings = rest_settings(fake_discord, fake_openai)
    database = tmp_path / "auto_reply.db"
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("7001", "111", "222", "before the lock")
        await fake_discord.wait_for_messages(1)
        holder = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"db = sqlite3.connect({str(database)!r}, isolation_level=None)\n"
            "db.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(2.0)\n"
            "db.execute('COMMIT')\n",
            stdout=asyncio.subprocess.PIPE,
        )
        assert holder.stdout is not None
        assert (await holder.stdout.readline()).strip() == b"locked"
        locked_at = time.monotonic()
        await client.message("7002", "111", "222", "during the lock")
        await client.message("7003", "111", "222", "during the lock, again")
        await fake_discord.wait_for_messages(2, timeout=15)
        assert time.monotonic() - locked_at >= 1.5  # it waited for the lock, not around it
        await running.app.relay.drain()
        assert await asyncio.wait_for(holder.wait(), 10) == 0
        turns = await running.app.store.conversation(("111", "222"))
        assert [t.content for t in turns if t.kind == "message"] == [
            "before the lock",
            "during the lock",
            "during the lock, again",
        ]
        await client.close()


def memory_cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", "memory", *args, "--config", str(config)],
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_memory_commands_work_against_a_running_server(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"DATABASE": "chats.db"}), encoding="utf-8")
    settings = rest_settings(fake_discord, fake_openai, DATABASE=str(tmp_path / "chats.db"))
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("8001", "111", "222", "remember the cake")
        await client.message("8002", "112", "223", "hello from Bob")
        await fake_discord.wait_for_messages(2)
        await running.app.relay.drain()

        listed = await asyncio.to_thread(memory_cli, "list", config=config)
        assert listed.returncode == 0, listed.stderr
        rows = [line.split() for line in listed.stdout.splitlines()[1:]]
        assert sorted((row[0], row[1], row[2], row[-1]) for row in rows) == [
            ("111", "222", "2", "no"),
            ("112", "223", "2", "no"),
        ]
        shown = await asyncio.to_thread(memory_cli, "show", "111", "222", config=config)
        lines = shown.stdout.splitlines()
        assert lines[0].endswith("them (111): remember the cake")
        assert lines[1].endswith("relay (openai): echo: remember the cake [turns=1]")

        reset = await asyncio.to_thread(memory_cli, "reset", "111", "222", config=config)
        assert reset.returncode == 0 and "afresh" in reset.stdout
        await client.message("8003", "111", "222", "what was it?")
        await fake_discord.wait_for_messages(3)
        assert chat(fake_openai.requests[-1])[1:] == [("user", "what was it?")]

        exported = await asyncio.to_thread(
            memory_cli, "export", "--pair", "111", "222", config=config
        )
        [conversation] = json.loads(exported.stdout)["conversations"]
        assert [t["content"] for t in conversation["turns"]][:1] == ["remember the cake"]
        assert len(conversation["turns"]) == 4  # the history outlives the reset

        bad = await asyncio.to_thread(memory_cli, "reset", config=config)
        assert bad.returncode == 2 and "USER CHANNEL, or --all" in bad.stderr
        everything = await asyncio.to_thread(memory_cli, "reset", "--all", config=config)
        assert "reset 2 conversation(s)" in everything.stdout
        await client.close()


async def test_a_half_sent_reply_is_resent_only_while_its_nonce_still_protects_it(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI, caplog: Any
) -> None:
    store = ConversationStore(tmp_path / "auto_reply.db")
    await store.open()
    for age, message_id in ((30.0, "9001"), (RESEND_WINDOW_SECONDS + 30.0, "9002")):
        turn = await store.record_message(("111", "222"), message_id, "111", "hi")
        assert turn is not None
        parts = [ReplyPart(f"nonce-{message_id}", f"answer to {message_id}")]
        reply = await store.record_reply(("111", "222"), [turn], "openai", parts)
        await store.database.run(
            lambda db, reply=reply, age=age: db.execute(
                "UPDATE turns SET at = at - ? WHERE id = ?", (age, reply)
            )
        )
    await store.close()
    async with running_app(tmp_path, RULES, **rest_settings(fake_discord, fake_openai)) as running:
        await fake_discord.wait_for_messages(1)
        await running.app.relay.drain()
        assert [m["content"] for m in fake_discord.messages] == ["[auto-reply] answer to 9001"]
        assert fake_discord.messages[0]["nonce"] == "nonce-9001"
    assert "gave up part 1 and later of a reply in channel 222" in caplog.text
    assert fake_openai.requests == []  # neither message was written again


async def test_the_token_encoding_is_loaded_only_when_a_window_may_not_fit(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    settings = rest_settings(fake_discord, fake_openai, CONTEXT_TOKENS=400, MEMORY_LENGTH=20)
    async with running_app(tmp_path, RULES, **settings) as running:
        counter = running.app.relay._tokens  # the relay's own counter
        client = await PluginClient.connect(running.url)
        await client.message("4200", "111", "222", "short and sweet")
        await fake_discord.wait_for_messages(1)
        assert not counter.loaded("gpt-4o-mini")  # 400 bytes cannot be over 400 tokens
        long = "tea " * 120  # 480 bytes, about 120 tokens: may not fit by bytes, does by tokens
        await client.message("4201", "111", "222", long)
        await fake_discord.wait_for_messages(2)
        assert counter.loaded("gpt-4o-mini")
        assert user_texts(fake_openai.requests[1]) == ["short and sweet", long]
        await client.close()


async def test_a_broken_database_costs_memory_not_replies(
    tmp_path: Path,
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = rest_settings(fake_discord, fake_openai)
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("3001", "111", "222", "first")
        await fake_discord.wait_for_messages(1)
        await running.app.relay.drain()
        database = running.app.store.path
        # Every write now fails as on a read-only file system: SQLITE_READONLY.
        await running.app.store.database.run(lambda db: db.execute("PRAGMA query_only = ON"))

        with caplog.at_level(logging.INFO, logger="server"):
            await client.message("3002", "111", "222", "second")  # acked all the same
            await client.message("3003", "112", "223", "third")
            posted = await fake_discord.wait_for_messages(3)
        assert ["echo: second" in posted[1]["content"], "echo: third" in posted[2]["content"]] == [
            True,
            True,
        ]
        errors = [
            f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno == logging.ERROR
        ]
        assert len(errors) == 1, "\n".join(errors)  # said once, not per statement
        assert str(database) in errors[0] and "replies go on" in errors[0]
        assert not any("works again" in r.getMessage() for r in caplog.records)  # reads work

        await running.app.store.database.run(lambda db: db.execute("PRAGMA query_only = OFF"))
        with caplog.at_level(logging.INFO, logger="server"):
            await client.message("3004", "111", "222", "fourth")
            await fake_discord.wait_for_messages(4)
        recovered = [r.getMessage() for r in caplog.records if "works again" in r.getMessage()]
        assert recovered == [f"the database {database} works again"]
        await client.close()
