"""A running relay server and a real websocket client that speaks protocol v1 like the plugin."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from server.app import App
from server.config import Settings
from tests.http_connection import HttpConnection

SECRET = "test-websocket-secret-0123456789"
OWNER_FRAMES = ("away_status", "draft", "draft_done", "summary", "rules", "rule_result")


@dataclass
class RunningApp:
    app: App
    url: str


@asynccontextmanager
async def running_app(tmp_path: Path, rules: str, **overrides: Any) -> AsyncIterator[RunningApp]:
    """Start the real App on a free loopback port with `rules` as reply_config.py."""
    reply_config = tmp_path / "reply_config.py"
    reply_config.write_text(rules, encoding="utf-8")
    values: dict[str, Any] = {
        "WEBSOCKET_PORT": 0,
        "WEBSOCKET_SECRET": SECRET,
        "TYPING_INTERVAL_SECONDS": 0.05,
        "TYPING_DELAY_SECONDS": 0.0,
        "LLM_MAX_RETRIES": 0,
        "LLM_BACKENDS": ["openai"],
        "DATABASE": str(tmp_path / "auto_reply.db"),
        "COALESCE_SECONDS": 0.0,
        # Replies whatever the owner's presence, as before away mode; its tests set "away".
        "REPLY_WHEN": "always",
    }
    values.update(overrides)
    app = App(Settings(**values), reply_config)
    port = await app.start()
    try:
        yield RunningApp(app, f"ws://127.0.0.1:{port}")
    finally:
        await app.stop()


def opened(
    frame: dict[str, Any],
    *,
    channel: str | None = None,
    focused: bool = True,
    error: str | None = None,
) -> dict[str, Any]:
    """The plugin's `opened` answer to an `open_channel` frame; by default: shown, focused."""
    shown = frame["channel"] if channel is None else channel
    return {
        "type": "opened",
        "nonce": frame["nonce"],
        "channel": shown,
        "ok": shown == frame["channel"],
        "focused": focused,
        "error": error,
    }


class PluginClient:
    """A websocket client doing what the plugin does; `send` frames can be answered for it.

    `open_channel` frames are recorded with the time they arrived and answered with
    `answer_open(frame)` (None: no answer); by default the channel is shown, focused.
    """

    def __init__(
        self, connection: ClientConnection | HttpConnection, welcome: dict[str, Any]
    ) -> None:
        self.connection = connection
        self.welcome = welcome
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sends: list[dict[str, Any]] = []
        self.typing: list[str] = []
        self.owner_frames: list[dict[str, Any]] = []
        """Frames for the owner: away_status, draft, draft_done, summary, rules, rule_result."""
        self.answer_sends = True
        self.open_requests: list[tuple[float, dict[str, Any]]] = []
        self.answer_open: Callable[[dict[str, Any]], dict[str, Any] | None] = opened
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(
        cls, url: str, secret: str = SECRET, *, transport: str = "websocket"
    ) -> PluginClient:
        """Say hello over a WebSocket, or over the HTTP transport (`transport="http"`)."""
        connection: ClientConnection | HttpConnection = (
            await HttpConnection.open(url, secret) if transport == "http" else await connect(url)
        )
        await connection.send(
            json.dumps(
                {
                    "type": "hello",
                    "secret": secret,
                    "client": "test",
                    "version": "1",
                    "self_id": "9",
                }
            )
        )
        welcome = json.loads(await asyncio.wait_for(connection.recv(), 5))
        assert welcome["type"] == "welcome", welcome
        return cls(connection, welcome)

    async def _read(self) -> None:
        async for text in self.connection:
            frame = json.loads(text)
            if frame["type"] == "send":
                self.sends.append(frame)
                if self.answer_sends:
                    await self.connection.send(
                        json.dumps({"type": "sent", "nonce": frame["nonce"], "ok": True})
                    )
            elif frame["type"] == "typing":
                self.typing.append(frame["channel"])
            elif frame["type"] == "open_channel":
                self.open_requests.append((time.time(), frame))
                answer = self.answer_open(frame)
                if answer is not None:
                    await self.connection.send(json.dumps(answer))
            elif frame["type"] in OWNER_FRAMES:
                self.owner_frames.append(frame)
            else:
                await self.frames.put(frame)

    async def next_frame(self, timeout: float = 5.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.frames.get(), timeout)

    async def wait_for_owner_frame(
        self, kind: str, timeout: float = 5.0, **fields: Any
    ) -> dict[str, Any]:
        """The first owner frame of type `kind` whose fields match `fields`."""
        deadline = time.monotonic() + timeout
        while True:
            for frame in self.owner_frames:
                if frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items()):
                    return frame
            if time.monotonic() > deadline:
                raise AssertionError(f"no {kind} frame with {fields}; got {self.owner_frames}")
            await asyncio.sleep(0.01)

    async def send_raw(self, text: str | bytes) -> None:
        await self.connection.send(text)

    async def message(
        self,
        message_id: str,
        user: str,
        channel: str,
        content: str,
        *,
        guild: str | None = None,
        is_self: bool = False,
        bot: bool = False,
        nonce: str | None = None,
        **extra: Any,
    ) -> None:
        """Forward a message (with `extra` frame fields: attachments, reference …) and wait for
        its ack."""
        frame = {
            "type": "message",
            "id": message_id,
            "channel": channel,
            "guild": guild,
            "author": {"id": user, "username": f"user{user}", "bot": bot},
            "content": content,
            "timestamp": "2026-11-22T10:00:00.000000+00:00",
            "self": is_self,
            "nonce": nonce,
            **extra,
        }
        await self.connection.send(json.dumps(frame))
        ack = await self.next_frame()
        assert ack == {"type": "ack", "id": message_id}, ack

    async def activity(self, at: float) -> None:
        """Report keyboard or mouse activity in Discord at `at` (epoch seconds), like the plugin."""
        await self.connection.send(json.dumps({"type": "activity", "at": round(at * 1000)}))

    async def wait_for_open_requests(
        self, count: int, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.open_requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} open_channel frames: {self.open_requests}")
            await asyncio.sleep(0.01)
        return [frame for _, frame in self.open_requests[:count]]

    async def wait_for_sends(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.sends) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} send frames, got {self.sends}")
            await asyncio.sleep(0.01)
        return self.sends[:count]

    async def close(self) -> None:
        await self.connection.close()
        self._reader.cancel()


ROOT = Path(__file__).resolve().parent.parent


def write_cli_config(running: RunningApp, path: Path) -> Path:
    """A config.json for the command line that points at the running app and its database."""
    settings = running.app.settings
    port = int(running.url.rsplit(":", 1)[1])
    values = {
        "WEBSOCKET_PORT": port,
        "WEBSOCKET_SECRET": settings.WEBSOCKET_SECRET,
        "DATABASE": settings.DATABASE,
        "SEND_TIMEOUT_SECONDS": settings.SEND_TIMEOUT_SECONDS,
    }
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


async def run_cli(*args: str, cwd: Path, timeout: float = 60.0) -> CliResult:
    """Run `python -m server ARGS` without blocking the event loop (the app under test runs on
    it); its exit code and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        *args,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return CliResult(process.returncode, stdout.decode(), stderr.decode())
