"""What the fault tests need beyond the fakes: fakes that hold their answers, a server run as a
process that can be killed, a websocket client that behaves like the plugin across restarts, and
a look into the SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI
from tests.relay_harness import SECRET

ROOT = Path(__file__).resolve().parent.parent


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class HeldOpenAI(FakeOpenAI):
    """The fake OpenAI API, counting chat requests as they arrive (before any answer) and
    holding every answer while `answering` is clear: an LLM that takes as long as a test likes."""

    def __init__(self, *, require_key: bool = True) -> None:
        super().__init__(require_key=require_key)
        self.arrived = 0
        self.answering = asyncio.Event()
        self.answering.set()

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        self.arrived += 1
        await self.answering.wait()
        return await super()._chat_completions(request)


@dataclass(frozen=True)
class Post:
    """A create-message request as it reached the fake Discord."""

    at: float
    """time.monotonic() on arrival."""
    channel: str
    nonce: str | None


class HeldDiscord(FakeDiscord):
    """The fake Discord API, recording each create-message request as it arrives, and, while
    `answering` is clear, creating the message but holding the answer: the server has posted
    and Discord has the message, but the server does not know it yet."""

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[Post] = []
        self.answering = asyncio.Event()
        self.answering.set()

    async def _create_message(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        nonce = body.get("nonce") if isinstance(body, dict) else None
        channel = request.match_info["channel_id"]
        self.posts.append(Post(time.monotonic(), channel, None if nonce is None else str(nonce)))
        response = await super()._create_message(request)
        await self.answering.wait()
        return response

    def in_channel(self, channel: str) -> list[dict[str, Any]]:
        """The messages created in `channel`."""
        return [message for message in self.messages if message["channel_id"] == channel]


def stored_messages(database: Path) -> dict[str, str]:
    """Each stored message from the other side: Discord id -> status."""
    with contextlib.closing(sqlite3.connect(database, timeout=10)) as db:
        rows = db.execute("SELECT discord_id, status FROM turns WHERE kind = 'message'")
        return {str(discord_id): str(status) for discord_id, status in rows}


@dataclass(frozen=True)
class StoredReply:
    """A reply in the outbox: where, who wrote it, whether delivered (1, 0, -1: given up), and
    its parts' nonces."""

    channel: str
    backend: str
    delivered: int
    nonces: list[str]


def stored_replies(database: Path) -> list[StoredReply]:
    """Every stored reply, oldest first."""
    with contextlib.closing(sqlite3.connect(database, timeout=10)) as db:
        replies = db.execute(
            "SELECT id, channel_id, backend, delivered FROM turns WHERE kind = 'reply' ORDER BY id"
        ).fetchall()
        return [
            StoredReply(
                str(channel),
                str(backend),
                int(delivered),
                [
                    str(nonce)
                    for (nonce,) in db.execute(
                        "SELECT nonce FROM reply_parts WHERE reply_id = ? ORDER BY part",
                        (reply_id,),
                    )
                ],
            )
            for reply_id, channel, backend, delivered in replies
        ]


class ServerProcess:
    """`python -m server serve` in a folder of its own, its log collected as it runs (and
    printed, so that pytest shows it with a failure)."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, lines: list[str]) -> None:
        self.process = process
        self.url = url
        self.lines = lines
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, folder: Path, settings: dict[str, Any], rules: str) -> ServerProcess:
        """Write config.json and reply_config.py into `folder`, start the server there and
        return once it listens (on a free port)."""
        (folder / "config.json").write_text(
            json.dumps({"WEBSOCKET_PORT": 0, "WEBSOCKET_SECRET": SECRET, **settings}),
            encoding="utf-8",
        )
        (folder / "reply_config.py").write_text(rules, encoding="utf-8")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server",
            "serve",
            "-v",
            cwd=folder,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        lines: list[str] = []
        async with asyncio.timeout(30):
            while True:
                line = (await process.stderr.readline()).decode()
                if not line:
                    raise AssertionError("the server exited at start:\n" + "".join(lines))
                print("server:", line, end="")  # shown by pytest when a test fails
                lines.append(line)
                found = re.search(r"listening on (ws://\S+)", line)
                if found:
                    return cls(process, found.group(1), lines)

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            print("server:", line.decode(), end="")
            self.lines.append(line.decode())

    @property
    def log(self) -> str:
        """What the server has logged so far."""
        return "".join(self.lines)

    async def kill(self) -> None:
        """SIGKILL (kill -9): no shutdown code runs."""
        self.process.kill()
        await self.process.wait()
        await self._reader

    async def stop(self) -> int:
        """SIGTERM and wait for a clean exit; the exit code."""
        self.process.terminate()
        code = await asyncio.wait_for(self.process.wait(), 15)
        await self._reader
        return code


Dropping = Literal["before_posting", "after_posting"]


class PluginStandIn:
    """A websocket client that does what the plugin does, across restarts of the server.

    It keeps each forwarded message until the server acknowledges it and re-sends the
    unacknowledged ones, in order, after each (re)connect. It posts the text of each `send` frame
    once per nonce (into `posted`, the channel as Discord would show it) and answers `sent`; a
    repeated nonce gets `sent` without a second post. While `answering` is clear it posts but
    holds its `sent` answers; `drop_next_send` makes it disconnect on the next `send` frame,
    before or after posting it, without answering.
    """

    def __init__(self) -> None:
        self.unacked: dict[str, dict[str, Any]] = {}
        self.send_frames: list[dict[str, Any]] = []
        self.posted: list[dict[str, Any]] = []
        self.answered: list[str] = []
        """The nonces of the `sent` answers given, in order."""
        self.drop_next_send: Dropping | None = None
        self.answering = asyncio.Event()
        self.answering.set()
        self.connection: ClientConnection | None = None
        self._posting: set[asyncio.Task[None]] = set()
        self._posted_nonces: set[str] = set()
        self._reader: asyncio.Task[None] | None = None

    async def connect(self, url: str) -> None:
        """Connect and say hello; after the welcome, re-send what was not acknowledged."""
        connection = await connect(url)
        await connection.send(
            json.dumps(
                {
                    "type": "hello",
                    "secret": SECRET,
                    "client": "test",
                    "version": "1",
                    "self_id": "9",
                }
            )
        )
        welcome = json.loads(await asyncio.wait_for(connection.recv(), 10))
        assert welcome["type"] == "welcome", welcome
        self.connection = connection
        self._reader = asyncio.create_task(self._read(connection))
        for frame in list(self.unacked.values()):
            await self._send(connection, frame)

    async def forward(self, message_id: str, user: str, channel: str, content: str) -> None:
        """A message appeared in Discord: keep it until acknowledged; send it if connected."""
        frame = {
            "type": "message",
            "id": message_id,
            "channel": channel,
            "guild": None,
            "author": {"id": user, "username": f"user{user}", "bot": False},
            "content": content,
            "timestamp": "2026-11-22T10:00:00.000000+00:00",
            "self": False,
            "nonce": None,
        }
        self.unacked[message_id] = frame
        if self.connection is not None:
            await self._send(self.connection, frame)

    async def wait_acked(self, timeout: float = 10.0) -> None:
        """Wait until the server has acknowledged every forwarded message."""
        await eventually(lambda: not self.unacked, f"acks for {list(self.unacked)}", timeout)

    async def wait_disconnected(self, timeout: float = 10.0) -> None:
        await eventually(lambda: self.connection is None, "the connection to close", timeout)

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
        if self._reader is not None:
            await self._reader
        self.answering.set()
        await asyncio.gather(*self._posting)

    async def _send(self, connection: ClientConnection, frame: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionClosed):  # still unacknowledged: sent again later
            await connection.send(json.dumps(frame))

    async def _read(self, connection: ClientConnection) -> None:
        try:
            async for text in connection:
                frame = json.loads(text)
                if frame["type"] == "ack":
                    self.unacked.pop(frame["id"], None)
                elif frame["type"] == "send":  # posted aside, as the plugin does
                    self.send_frames.append(frame)
                    task = asyncio.create_task(self._post(connection, frame))
                    self._posting.add(task)
                    task.add_done_callback(self._posting.discard)
        except ConnectionClosed:
            pass
        finally:
            if self.connection is connection:
                self.connection = None

    async def _post(self, connection: ClientConnection, frame: dict[str, Any]) -> None:
        dropping, self.drop_next_send = self.drop_next_send, None
        if dropping == "before_posting":
            await connection.close()
            return
        nonce = str(frame["nonce"])
        if nonce not in self._posted_nonces:
            self._posted_nonces.add(nonce)
            self.posted.append(frame)
        if dropping == "after_posting":
            await connection.close()
            return
        await self.answering.wait()
        with contextlib.suppress(ConnectionClosed):
            await connection.send(json.dumps({"type": "sent", "nonce": nonce, "ok": True}))
            self.answered.append(nonce)
