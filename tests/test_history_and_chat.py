"""`history` after real activity (replies, skips, an expired draft), and `chat` driven through a
pseudo-terminal against the fake LLM."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from server.owner.history import SpanError, parse_span
from server.storage.conversations import ConversationStore
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI
from tests.relay_harness import ROOT, PluginClient, run_cli, running_app, write_cli_config
from tests.test_relay import rest_settings

RULES = (
    'CONTEXT_MESSAGE = "You stand in for Sam."\n'
    'REPLY_TO = [("111", "222"), ("113", "224", {"mode": "draft"}),\n'
    '            ("114", "225", {"persona": "Talk like a pirate.", "mode": "draft",'
    ' "reply_when": "away"})]\n'
)


async def presence(client: PluginClient, status: str) -> None:
    await client.send_raw(json.dumps({"type": "presence", "status": status}))


def test_spans_are_a_number_and_a_unit() -> None:
    assert parse_span("90s") == 90.0
    assert parse_span("2h") == 7200.0
    assert parse_span("1.5d") == 1.5 * 86400
    assert parse_span(" 1w ") == 7 * 86400.0
    for bad in ("2", "h", "2 hours", "-1h"):
        with pytest.raises(SpanError, match="give a number and a unit"):
            parse_span(bad)


async def test_history_tells_who_said_what_which_backend_how_long_and_what_was_skipped(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    settings = rest_settings(
        fake_discord, fake_openai, REPLY_WHEN="away", DRAFT_EXPIRE_MINUTES=0.005
    )
    async with running_app(tmp_path, RULES, **settings) as running:
        config = str(write_cli_config(running, tmp_path / "config.json"))
        client = await PluginClient.connect(running.url)
        await presence(client, "online")
        await client.message("1001", "111", "222", "are you there?")  # present: skipped
        await presence(client, "idle")
        await client.message("1002", "111", "222", "hello [sic]")
        await fake_discord.wait_for_messages(1)
        await client.message("1003", "9", "222", "I'll take it from here", is_self=True)
        await client.message("1004", "111", "222", "oh hi Sam")  # the owner took over: skipped
        await client.message("2001", "113", "224", "draft me")
        draft = await client.wait_for_owner_frame("draft")
        await client.wait_for_owner_frame("draft_done", id=draft["id"], status="expired")
        await running.app.relay.drain()

        result = await run_cli("history", "--json", "--config", config, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        entries = json.loads(result.stdout)
        lines = [(e["user"], e["channel"], e["who"], e["text"], e["note"]) for e in entries]
        assert lines == [
            ("111", "222", "them", "are you there?", ""),
            ("111", "222", "skipped", "the owner is present (Discord status online)", ""),
            ("111", "222", "them", "hello [sic]", ""),
            ("111", "222", "relay", "echo: hello [sic] [turns=2]", ""),
            ("111", "222", "you", "I'll take it from here", ""),
            ("111", "222", "them", "oh hi Sam", ""),
            ("111", "222", "skipped", lines[6][3], ""),
            ("113", "224", "them", "draft me", ""),
            ("113", "224", "draft", "echo: draft me [turns=1]", "expired"),
        ]
        assert lines[6][3].startswith("the owner took over (")
        reply = entries[3]
        assert reply["backend"] == "openai"
        assert isinstance(reply["seconds"], float) and 0 <= reply["seconds"] < 10
        assert entries[8]["backend"] == "openai" and entries[8]["seconds"] is not None
        assert all(e["time"].startswith(time.strftime("%Y-")) for e in entries)

        table = await run_cli("history", "--since", "1h", "--config", config, cwd=tmp_path)
        assert table.returncode == 0, table.stderr
        header = next(line for line in table.stdout.splitlines() if "TIME" in line)
        assert [word for word in header.replace("┃", " ").split()] == [
            "TIME",
            "CHAT",
            "WHO",
            "WHAT",
            "BACKEND",
            "TOOK",
        ]
        assert "replies: 1 · skipped: 2" in table.stdout
        assert "echo: hello [sic] [turns=2]" in table.stdout  # brackets are text, not markup
        assert "the owner is present (Discord status online)" in table.stdout
        assert "echo: draft me [turns=1] (expired)" in table.stdout
        assert "111 in 222" in table.stdout and " s " in table.stdout

        one = await run_cli(
            "history", "--pair", "113", "224", "--json", "--config", config, cwd=tmp_path
        )
        assert {(e["user"], e["channel"]) for e in json.loads(one.stdout)} == {("113", "224")}
        await asyncio.sleep(0.05)
        recent = await run_cli("history", "--since", "0.01s", "--config", config, cwd=tmp_path)
        assert recent.stdout.startswith("nothing since ")
        bad = await run_cli("history", "--since", "yesterday", "--config", config, cwd=tmp_path)
        assert bad.returncode == 2
        assert "--since 'yesterday': give a number and a unit" in bad.stderr
        await client.close()


# `chat` through a pseudo-terminal.


class Terminal:
    """`discord-auto-reply chat …` on a pseudo-terminal: type lines, read the screen."""

    def __init__(self, process: asyncio.subprocess.Process, master: int) -> None:
        self.process = process
        self.master = master
        self.screen = ""

    @classmethod
    async def start(cls, *args: str, cwd: Path) -> Terminal:
        master, slave = pty.openpty()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server",
            "chat",
            *args,
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        return cls(process, master)

    def _drain(self) -> None:
        while select.select([self.master], [], [], 0)[0]:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # the child closed the terminal
                return
            if not data:
                return
            self.screen += data.decode(errors="replace").replace("\r\n", "\n")

    async def expect(self, text: str, timeout: float = 15.0) -> str:
        """Wait until `text` is on the screen after what was read before; the screen up to it."""
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            self._drain()
            if text in self.screen:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on the screen:\n{self.screen}")
            await asyncio.sleep(0.02)
        before, _, after = self.screen.partition(text)
        self.screen = after
        return before + text

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    async def exit_code(self) -> int:
        code = await asyncio.wait_for(self.process.wait(), 15)
        self._drain()
        os.close(self.master)
        return code


def chat_config(tmp_path: Path, fake_openai: FakeOpenAI) -> Path:
    config = tmp_path / "config.json"
    values: dict[str, Any] = {
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": FakeOpenAI.API_KEY,
        "LLM_BACKENDS": ["openai"],
        "MEMORY_LENGTH": 2,
        "DATABASE": str(tmp_path / "auto_reply.db"),
    }
    config.write_text(json.dumps(values), encoding="utf-8")
    (tmp_path / "reply_config.py").write_text(RULES, encoding="utf-8")
    return config


async def test_chat_answers_like_the_relay_would_through_a_terminal(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    chat_config(tmp_path, fake_openai)
    terminal = await Terminal.start("--user", "114", "--channel", "225", cwd=tmp_path)
    intro = await terminal.expect("them> ")
    assert "You are user 114 in channel 225." in intro
    assert "System prompt: Talk like a pirate." in intro
    assert "Context line: You are answering them for the owner. It is " in intro
    assert "Memory: a scratch store (nothing is kept)." in intro

    # The rule says draft and away; the chat shows the reply anyway, with the prefix.
    terminal.type("hello there\n")
    await terminal.expect("[auto-reply] echo: hello there [turns=1]\n")
    shown = await terminal.expect("them> ")
    assert "(openai, " in shown and " s)" in shown
    request = fake_openai.requests[-1]
    system = request["messages"][0]["content"]
    assert system.startswith("Talk like a pirate.\n\nYou are answering them for the owner.")

    long = ("lorem ipsum " * 180).strip()  # its echo is longer than a Discord message
    terminal.type(long + "\n")
    parts = await terminal.expect("them> ")
    posted = [line for line in parts.splitlines() if line.startswith("[auto-reply] ")]
    assert len(posted) == 2
    assert all(len(line) <= 2000 for line in posted)  # each part with its prefix fits
    text = " ".join(line.removeprefix("[auto-reply] ") for line in posted)
    assert text == f"echo: {long} [turns=3]"  # hello, its reply, this message: memory is used

    for text in ("three", "four"):
        terminal.type(text + "\n")
        await terminal.expect("them> ")
    assert [m["role"] for m in fake_openai.requests[-1]["messages"]] == [
        "system",
        "user",  # MEMORY_LENGTH 2: two interactions before the new message, no more
        "assistant",
        "user",
        "assistant",
        "user",
    ]

    terminal.type("/reset\n")
    await terminal.expect("(conversation reset: the next message starts afresh)")
    terminal.type("again\n")
    await terminal.expect("[auto-reply] echo: again [turns=1]")
    await terminal.expect("them> ")
    terminal.type("\x04")  # Ctrl-D
    assert await terminal.exit_code() == 0
    # Scratch memory: nothing reached the database.
    store = ConversationStore(tmp_path / "auto_reply.db")
    await store.open()
    try:
        assert await store.pairs() == []
    finally:
        await store.close()


async def test_chat_tries_a_persona_and_keeps_memory_only_when_asked(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    chat_config(tmp_path, fake_openai)
    terminal = await Terminal.start("--persona", "You are terse.", "--keep", cwd=tmp_path)
    intro = await terminal.expect("them> ")
    assert "System prompt: You are terse." in intro
    assert f"Memory: kept in {tmp_path / 'auto_reply.db'}." in intro
    terminal.type("ping\n")
    await terminal.expect("[auto-reply] echo: ping [turns=1]")
    await terminal.expect("them> ")
    terminal.type("/quit\n")
    assert await terminal.exit_code() == 0
    assert fake_openai.requests[-1]["messages"][0]["content"].startswith("You are terse.\n\n")
    store = ConversationStore(tmp_path / "auto_reply.db")
    await store.open()
    try:
        turns = await store.conversation(("0", "0"))
        assert [(t.kind, t.content) for t in turns] == [
            ("message", "ping"),
            ("reply", "echo: ping [turns=1]"),
        ]
    finally:
        await store.close()

    refused = await run_cli("chat", "--user", "999", "--channel", "998", cwd=tmp_path)
    assert refused.returncode == 2
    assert "user 999 in channel 998 matches no rule" in refused.stderr
    usage = await run_cli("chat", "--user", "999", cwd=tmp_path)
    assert usage.returncode == 2 and "--user ID --channel ID, or --persona TEXT" in usage.stderr
