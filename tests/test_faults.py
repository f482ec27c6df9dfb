"""Exactly one reply per message under faults: the LLM, Discord's REST API, the plugin's
connection, kill -9 of the server and a locked database. Each test checks what reached the
(fake) Discord channel and what the SQLite file says about every message and reply."""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from server import app as app_module
from server.messengers.rest import RestMessenger
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI
from tests.fault_rig import (
    HeldDiscord,
    HeldOpenAI,
    PluginStandIn,
    ServerProcess,
    StoredReply,
    closed_port,
    eventually,
    stored_messages,
    stored_replies,
)
from tests.relay_harness import PluginClient, running_app

RULES = 'REPLY_TO = [("111", "222"), ("112", "223"), ("113", "224")]\n'
FALLBACK = "Back soon."
LLM_TIMEOUT = 1.0
"""LLM_TIMEOUT_SECONDS where the fault is a timeout (the default elsewhere)."""
REST_TIMEOUT = 1.0
"""The REST messenger's bound on each phase of one request (httpx2's connect, read, write)."""


def answer(text: str) -> str:
    """The reply the fake LLM writes to a first message `text`, as posted."""
    return f"[auto-reply] echo: {text} [turns=1]"


Held = TypeVar("Held", HeldOpenAI, HeldDiscord)


@asynccontextmanager
async def held(fake: Held) -> AsyncIterator[Held]:
    """`fake` started; at the end, whatever it still holds back is let go before it stops."""
    await fake.start()
    try:
        yield fake
    finally:
        fake.answering.set()
        await fake.stop()


@pytest_asyncio.fixture
async def llm() -> AsyncIterator[HeldOpenAI]:
    """The first backend's server (the `openai` backend)."""
    async with held(HeldOpenAI()) as fake:
        yield fake


def custom_provider() -> Any:
    """g4f's provider for any OpenAI-style server, the one G4F_PROVIDER="Custom" names."""
    from g4f.client.service import convert_to_provider  # noqa: PLC0415

    return convert_to_provider("Custom")


@pytest_asyncio.fixture
async def g4f_llm(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[HeldOpenAI]:
    """The second backend's server: g4f's `Custom` provider (an OpenAI-style server, keyless)
    pointed at a fake; its model list is given, since g4f fetches it with a blocking call."""
    async with held(HeldOpenAI(require_key=False)) as fake:
        monkeypatch.setattr(custom_provider(), "base_url", fake.base_url)
        monkeypatch.setattr(custom_provider(), "models", [FakeOpenAI.MODEL])
        yield fake


@pytest_asyncio.fixture
async def discord() -> AsyncIterator[HeldDiscord]:
    async with held(HeldDiscord()) as fake:
        yield fake


def rest_settings(discord: FakeDiscord, llm: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {
        "MESSENGER": "rest",
        "DISCORD_AUTHORIZATION": FakeDiscord.TOKEN,
        "DISCORD_API_BASE": discord.base_url,
        "OPENAI_BASE_URL": llm.base_url,
        "OPENAI_API_KEY": FakeOpenAI.API_KEY,
        **extra,
    }


def contents(discord: FakeDiscord, channel: str) -> list[str]:
    return [m["content"] for m in discord.messages if m["channel_id"] == channel]


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


# --- The LLM ---------------------------------------------------------------------------------

LLM_FAULTS = {
    "timeout": f"timed out after {LLM_TIMEOUT} s",
    "5xx": "HTTP 500",
    "connection refused": "connection failed",
    "empty completion": "empty completion",
}


def break_llm(fake: HeldOpenAI, fault: str) -> str:
    """Make `fake` fail every request with `fault`; the base URL to give the backend."""
    if fault == "timeout":
        fake.answering.clear()  # the fake holds its answer past LLM_TIMEOUT_SECONDS
    elif fault == "5xx":
        fake.fail_next(500, 10)
    elif fault == "empty completion":
        fake.reply_fn = lambda messages: ""
    elif fault == "connection refused":
        return f"http://127.0.0.1:{closed_port()}/v1"
    return fake.base_url


@pytest.mark.parametrize("fault", list(LLM_FAULTS))
@pytest.mark.parametrize(
    ("second_answers", "fallback"),
    [(True, ""), (True, FALLBACK), (False, FALLBACK), (False, "")],
    ids=["g4f answers", "g4f answers, fallback set", "both fail, fallback", "both fail"],
)
async def test_an_llm_fault_gives_each_message_exactly_one_reply_or_a_visible_failure(
    *,
    tmp_path: Path,
    discord: HeldDiscord,
    llm: HeldOpenAI,
    g4f_llm: HeldOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fault: str,
    second_answers: bool,
    fallback: str,
) -> None:
    openai_url = break_llm(llm, fault)
    if not second_answers:
        monkeypatch.setattr(custom_provider(), "base_url", break_llm(g4f_llm, fault))
    settings = rest_settings(
        discord,
        llm,
        OPENAI_BASE_URL=openai_url,
        LLM_BACKENDS=["openai", "g4f"],  # the default chain
        G4F_PROVIDER="Custom",
        G4F_MODEL=FakeOpenAI.MODEL,
        LLM_TIMEOUT_SECONDS=LLM_TIMEOUT if fault == "timeout" else 60.0,
        FALLBACK_MESSAGE=fallback,
    )
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("1001", "111", "222", "are you there?")
        await client.message("1002", "112", "223", "hello?")
        await running.app.relay.drain()
        await client.close()

    database = tmp_path / "auto_reply.db"
    replies = stored_replies(database)
    if second_answers:
        expected = {"222": [answer("are you there?")], "223": [answer("hello?")]}
        backend = "g4f"
    elif fallback:
        expected = {"222": [f"[auto-reply] {FALLBACK}"], "223": [f"[auto-reply] {FALLBACK}"]}
        backend = "fallback"
    else:
        expected = {"222": [], "223": []}
    assert {channel: contents(discord, channel) for channel in expected} == expected
    if expected["222"]:
        assert stored_messages(database) == {"1001": "answered", "1002": "answered"}
        assert sorted((r.channel, r.backend, r.delivered) for r in replies) == [
            ("222", backend, 1),
            ("223", backend, 1),
        ]
        assert sorted(m["nonce"] for m in discord.messages) == sorted(
            nonce for r in replies for nonce in r.nonces
        )
    else:
        assert stored_messages(database) == {"1001": "failed", "1002": "failed"}
        assert replies == []
    # The fault was met, once per message and backend, and said so.
    assert llm.arrived == (0 if fault == "connection refused" else 2)
    expected_g4f = 0 if fault == "connection refused" and not second_answers else 2
    assert g4f_llm.arrived == expected_g4f
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    openai_failures = [w for w in warnings if w.startswith("LLM backend openai failed")]
    assert len(openai_failures) == 2 and all(LLM_FAULTS[fault] in w for w in openai_failures)
    failed = [e for e in errors(caplog) if "from the LLM" in e]
    if second_answers:
        assert failed == []
    else:
        assert sorted(e.split(":")[0] for e in failed) == [
            "no reply to message 1001 from the LLM",
            "no reply to message 1002 from the LLM",
        ]


# --- Discord's REST API ----------------------------------------------------------------------


@pytest.fixture
def quick_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's REST messenger, with a short bound on each request and short 5xx backoffs
    (the app builds it with 15 s and 1 s)."""
    quick = functools.partial(RestMessenger, retry_backoff=0.01, timeout=REST_TIMEOUT)
    monkeypatch.setattr(app_module, "RestMessenger", quick)


DISCORD_FAULTS = {
    "429 bucket": "Rate limited by Discord (user)",
    "429 global": "Rate limited by Discord (global)",
    "5xx": "HTTP 503 from Discord",
    "timeout": "ReadTimeout reaching Discord",
}


@pytest.mark.usefixtures("quick_rest")
@pytest.mark.parametrize("fault", list(DISCORD_FAULTS))
async def test_a_discord_fault_is_retried_and_each_reply_lands_once(
    tmp_path: Path,
    discord: HeldDiscord,
    llm: HeldOpenAI,
    caplog: pytest.LogCaptureFixture,
    fault: str,
) -> None:
    if fault == "429 bucket":
        discord.fail_next(429, retry_after=0.05)
    elif fault == "429 global":
        discord.fail_next(429, retry_after=0.05, is_global=True)
    elif fault == "5xx":
        discord.fail_next(503, 2)
    else:  # Discord creates the message, but its answer comes after the client gave up
        discord.answering.clear()
    async with running_app(tmp_path, RULES, **rest_settings(discord, llm)) as running:
        client = await PluginClient.connect(running.url)
        await client.message("1001", "111", "222", "are you there?")
        if fault == "timeout":
            await eventually(lambda: len(discord.posts) >= 2, "the retried POST")
            discord.answering.set()
        await running.app.relay.drain()
        await client.close()

    [reply] = stored_replies(tmp_path / "auto_reply.db")
    assert reply == StoredReply("222", "openai", 1, reply.nonces)
    assert contents(discord, "222") == [answer("are you there?")]
    posts = [post.nonce for post in discord.posts]
    assert len(posts) >= 2 and set(posts) == set(reply.nonces)  # retried with the same nonce
    assert stored_messages(tmp_path / "auto_reply.db") == {"1001": "answered"}
    assert llm.arrived == 1
    assert any(DISCORD_FAULTS[fault] in m for m in caplog.messages)


@pytest.mark.usefixtures("quick_rest")
async def test_after_a_401_no_llm_is_asked_and_the_refused_reply_waits_for_a_restart(
    tmp_path: Path, discord: HeldDiscord, llm: HeldOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "auto_reply.db"
    discord.fail_next(401)
    async with running_app(tmp_path, RULES, **rest_settings(discord, llm)) as running:
        client = await PluginClient.connect(running.url)
        await client.message("1001", "111", "222", "are you there?")
        await running.app.relay.drain()
        said = errors(caplog)
        await client.message("1002", "111", "222", "hello?")
        await client.message("1003", "112", "223", "anyone?")
        await running.app.relay.drain()
        await client.close()
    assert llm.arrived == 1  # the messages after the 401 spent no tokens
    assert errors(caplog) == said  # and it was said once, at the 401
    assert sum("Discord rejected DISCORD_AUTHORIZATION" in e for e in said) == 2  # stop, reply
    assert len(discord.posts) == 1 and discord.messages == []
    assert stored_messages(database) == {"1001": "answered", "1002": "failed", "1003": "failed"}
    [refused] = stored_replies(database)
    assert refused.delivered == 0  # kept in the outbox, not forgotten

    # Restarted with a token Discord accepts: the reply goes out once, with its recorded nonce.
    async with running_app(tmp_path, RULES, **rest_settings(discord, llm)) as running:
        await eventually(lambda: stored_replies(database)[0].delivered == 1, "the resend")
        await running.app.relay.drain()
    assert contents(discord, "222") == [answer("are you there?")]
    assert [m["nonce"] for m in discord.messages] == refused.nonces
    assert llm.arrived == 1


# --- The plugin's connection -----------------------------------------------------------------


@pytest.mark.parametrize("dropping", ["before_posting", "after_posting"])
async def test_the_plugin_disconnecting_mid_reply_posts_it_once(
    tmp_path: Path, llm: HeldOpenAI, dropping: Any
) -> None:
    settings = {
        "MESSENGER": "plugin",
        "OPENAI_BASE_URL": llm.base_url,
        "OPENAI_API_KEY": FakeOpenAI.API_KEY,
    }
    async with running_app(tmp_path, RULES, **settings) as running:
        plugin = PluginStandIn()
        plugin.drop_next_send = dropping
        await plugin.connect(running.url)
        await plugin.forward("1001", "111", "222", "are you there?")
        await plugin.wait_acked()
        await plugin.wait_disconnected()  # on the send frame, without answering it
        await plugin.connect(running.url)
        await running.app.relay.drain()
        await plugin.close()

    [reply] = stored_replies(tmp_path / "auto_reply.db")
    assert reply == StoredReply("222", "openai", 1, reply.nonces)
    assert [(f["channel"], f["content"]) for f in plugin.posted] == [
        ("222", answer("are you there?"))
    ]
    assert [f["nonce"] for f in plugin.send_frames] == reply.nonces * 2  # the same frame again
    assert plugin.answered == reply.nonces
    assert stored_messages(tmp_path / "auto_reply.db") == {"1001": "answered"}
    assert llm.arrived == 1


# --- kill -9 ---------------------------------------------------------------------------------


def process_settings(tmp_path: Path, discord: FakeDiscord, llm: FakeOpenAI) -> dict[str, Any]:
    """config.json for a server run as a process, against the in-process fakes."""
    return rest_settings(
        discord,
        llm,
        DATABASE=str(tmp_path / "auto_reply.db"),
        LLM_BACKENDS=["openai"],
        LLM_MAX_RETRIES=0,
        COALESCE_SECONDS=0.0,
        REPLY_WHEN="always",
        TYPING_INTERVAL_SECONDS=0.2,
    )


def settled(database: Path, count: int) -> bool:
    """`count` messages answered, and every reply delivered."""
    messages = stored_messages(database)
    replies = stored_replies(database)
    return (
        len(messages) == count
        and all(status == "answered" for status in messages.values())
        and len(replies) == count
        and all(reply.delivered == 1 for reply in replies)
    )


@pytest.mark.posix  # stops the restarted server with SIGTERM and expects a clean exit
async def test_kill_9_while_waiting_for_the_llm_then_every_message_is_answered_once(
    tmp_path: Path, discord: HeldDiscord, llm: HeldOpenAI
) -> None:
    database = tmp_path / "auto_reply.db"
    settings = process_settings(tmp_path, discord, llm)
    llm.answering.clear()
    server = await ServerProcess.start(tmp_path, settings, RULES)
    plugin = PluginStandIn()
    try:
        await plugin.connect(server.url)
        await plugin.forward("1001", "111", "222", "are you there?")
        await plugin.wait_acked()
        await eventually(lambda: llm.arrived >= 1, "the LLM request")
        await plugin.forward("1002", "112", "223", "hello?")  # its ack may not come back
        await server.kill()
        await plugin.wait_disconnected()
        await plugin.forward("1003", "113", "224", "anyone?")  # while the server is down
        assert stored_messages(database)["1001"] == "pending"
        assert stored_replies(database) == []

        llm.answering.set()
        server = await ServerProcess.start(tmp_path, settings, RULES)
        await plugin.connect(server.url)  # re-sends what was not acknowledged
        await plugin.wait_acked()
        await eventually(lambda: settled(database, 3), "three delivered replies")
        await plugin.close()
        assert await server.stop() == 0
    finally:
        await plugin.close()
        if server.process.returncode is None:
            await server.kill()

    assert contents(discord, "222") == [answer("are you there?")]
    assert contents(discord, "223") == [answer("hello?")]
    assert contents(discord, "224") == [answer("anyone?")]
    assert len(discord.messages) == 3
    assert "Traceback" not in server.log


@pytest.mark.posix
@pytest.mark.parametrize("messenger", ["rest", "plugin"])
async def test_kill_9_while_a_post_is_in_flight_then_the_resend_finds_the_message(
    tmp_path: Path, discord: HeldDiscord, llm: HeldOpenAI, messenger: str
) -> None:
    database = tmp_path / "auto_reply.db"
    settings = {**process_settings(tmp_path, discord, llm), "MESSENGER": messenger}
    plugin = PluginStandIn()
    # Discord (or the plugin) has posted the reply; the answer saying so is held back.
    held = discord.answering if messenger == "rest" else plugin.answering
    held.clear()
    server = await ServerProcess.start(tmp_path, settings, RULES)
    try:
        await plugin.connect(server.url)
        await plugin.forward("1001", "111", "222", "are you there?")
        await plugin.wait_acked()
        await eventually(lambda: len(discord.messages + plugin.posted) == 1, "the post")
        [in_flight] = stored_replies(database)
        assert in_flight.delivered == 0
        await server.kill()
        await plugin.wait_disconnected()

        held.set()
        server = await ServerProcess.start(tmp_path, settings, RULES)
        await plugin.connect(server.url)
        await eventually(lambda: settled(database, 1), "the resent reply to be recorded")
        await plugin.close()
        assert await server.stop() == 0
    finally:
        await plugin.close()
        if server.process.returncode is None:
            await server.kill()

    if messenger == "rest":
        assert contents(discord, "222") == [answer("are you there?")]
        assert [post.nonce for post in discord.posts] == in_flight.nonces * 2
    else:
        assert discord.messages == []
        assert [(f["channel"], f["content"]) for f in plugin.posted] == [
            ("222", answer("are you there?"))
        ]
        assert [f["nonce"] for f in plugin.send_frames] == in_flight.nonces * 2
    assert llm.arrived == 1  # the reply was resent, not written again
    assert "finished a reply in channel 222 left half sent at the last stop" in server.log


# --- The database ----------------------------------------------------------------------------

LOCK_SECONDS = 2.0


async def test_a_locked_database_delays_the_ack_and_the_reply_record_but_loses_nothing(
    tmp_path: Path, discord: HeldDiscord, llm: HeldOpenAI
) -> None:
    database = tmp_path / "auto_reply.db"
    llm.answering.clear()
    async with running_app(tmp_path, RULES, **rest_settings(discord, llm)) as running:
        client = await PluginClient.connect(running.url)
        await client.message("1001", "111", "222", "before the lock")
        await eventually(lambda: llm.arrived == 1, "the LLM request")
        holder = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sqlite3, time\n"
            f"db = sqlite3.connect({str(database)!r}, isolation_level=None)\n"
            "db.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            f"time.sleep({LOCK_SECONDS})\n"
            "db.execute('COMMIT')\n",
            stdout=asyncio.subprocess.PIPE,
        )
        assert holder.stdout is not None
        assert (await holder.stdout.readline()).strip() == b"locked"
        locked_at = time.monotonic()
        llm.answering.set()  # the reply to 1001 is written now, and recorded while locked
        await client.message("1002", "112", "223", "during the lock")  # acked once stored
        acked_at = time.monotonic()
        await discord.wait_for_messages(2, timeout=15)
        await running.app.relay.drain()
        assert await asyncio.wait_for(holder.wait(), 10) == 0
        await client.close()

    # Neither the ack nor the first post came before the lock was released.
    assert acked_at - locked_at >= LOCK_SECONDS - 0.5
    assert discord.posts[0].channel == "222"
    assert discord.posts[0].at - locked_at >= LOCK_SECONDS - 0.5
    assert contents(discord, "222") == [answer("before the lock")]
    assert contents(discord, "223") == [answer("during the lock")]
    assert stored_messages(database) == {"1001": "answered", "1002": "answered"}
    assert [(r.channel, r.delivered) for r in stored_replies(database)] == [
        ("222", 1),
        ("223", 1),
    ]


async def test_no_ack_while_the_database_refuses_the_write_and_an_acked_message_is_committed(
    tmp_path: Path, discord: HeldDiscord, llm: HeldOpenAI
) -> None:
    """The ack promises the message is kept: none may come while the write waits on a lock,
    and when it comes, another connection already sees the message."""
    database = tmp_path / "auto_reply.db"
    async with running_app(tmp_path, RULES, **rest_settings(discord, llm)) as running:
        client = await PluginClient.connect(running.url)
        await client.message("3001", "111", "222", "before the lock")  # the database exists
        holder = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"db = sqlite3.connect({str(database)!r}, isolation_level=None)\n"
            "db.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.readline()\n"
            "db.execute('COMMIT')\n",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert holder.stdin is not None and holder.stdout is not None
        assert (await holder.stdout.readline()).strip() == b"locked"
        acking = asyncio.create_task(client.message("3002", "112", "223", "during the lock"))
        done, _ = await asyncio.wait({acking}, timeout=1.0)
        assert not done, "acknowledged while the database refused the write"
        holder.stdin.write(b"release\n")
        await holder.stdin.drain()
        await asyncio.wait_for(acking, 15)
        assert "3002" in stored_messages(database)  # committed before the ack went out
        assert await asyncio.wait_for(holder.wait(), 10) == 0
        await client.close()
