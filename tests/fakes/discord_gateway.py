"""A local fake of Discord's gateway (API v10) for one bot, over a real websocket.

HELLO → IDENTIFY → READY, heartbeats answered with ACKs, MESSAGE_CREATE for every message
written in the fake REST API (filtered by intents, without content unless the bot may read it),
INTERACTION_CREATE on demand, and RESUME after a disconnect, replaying what was missed. Frames
are compressed as the client asks (`zlib-stream`, or `zstd-stream` when a zstd module exists).
A sharded bot (IDENTIFY with `shard: [id, count]`) gets one session per shard, each guild's
events on the shard `(guild_id >> 22) % count` and DMs on shard 0, as Discord routes them.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.discord_bot_api import FakeDiscordBot, FakeInteraction, _member

DISPATCH, HEARTBEAT, IDENTIFY, RESUME, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 0, 1, 2, 6, 9, 10, 11
GUILDS, GUILD_MESSAGES, DIRECT_MESSAGES, MESSAGE_CONTENT = 1 << 0, 1 << 9, 1 << 12, 1 << 15
AUTHENTICATION_FAILED, DISALLOWED_INTENTS = 4004, 4014

Compressor = Callable[[bytes], bytes]


def _compressor(kind: str | None) -> Compressor | None:
    """One compression context for a connection's whole stream, as Discord keeps it."""
    if kind == "zlib-stream":
        context = zlib.compressobj()
        return lambda data: context.compress(data) + context.flush(zlib.Z_SYNC_FLUSH)
    if kind == "zstd-stream":
        try:
            from compression import zstd  # type: ignore[import-not-found]  # noqa: PLC0415

            stdlib = zstd.ZstdCompressor()
            return lambda data: stdlib.compress(data, mode=zstd.ZstdCompressor.FLUSH_BLOCK)
        except ImportError:
            import zstandard  # type: ignore[import-not-found]  # noqa: PLC0415

            context = zstandard.ZstdCompressor().compressobj()
            return lambda data: (
                context.compress(data) + context.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
            )
    return None


@dataclass
class _Session:
    id: str
    intents: int
    shard: tuple[int, int] = (0, 1)
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)

    @property
    def seq(self) -> int:
        return self.events[-1][0] if self.events else 0


class FakeGateway:
    """The gateway `api.gateway_url` points at once started.

    Read `identifies`, `resumes` (their payloads, token removed), `heartbeats` and `replayed`
    (events re-sent on RESUME). `disconnect()` drops the bot (shard 0) with a resumable close
    code; `hold_resumes()` keeps a RESUME waiting until `release_resumes()`, so events can be
    missed. `send_raw` sends any text as a frame.
    """

    def __init__(
        self,
        api: FakeDiscordBot,
        *,
        heartbeat_interval: float = 0.5,
        allow_message_content: bool = True,
    ) -> None:
        self.api = api
        self.heartbeat_interval = heartbeat_interval
        self.allow_message_content = allow_message_content
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.heartbeats = 0
        self.replayed = 0
        self._sessions: dict[int, _Session] = {}
        """Shard id → its session."""
        self._sockets: dict[int, web.WebSocketResponse] = {}
        """Shard id → its latest connection."""
        self._live: dict[int, web.WebSocketResponse] = {}
        """Shard id → the connection whose session is identified or resumed: dispatches go to it."""
        self._compressors: dict[web.WebSocketResponse, Compressor | None] = {}
        self._sending = asyncio.Lock()
        self._sends: set[asyncio.Task[None]] = set()
        self._resume_gate = asyncio.Event()
        self._resume_gate.set()
        self._ready = asyncio.Event()
        self._resume_asked = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def url(self) -> str:
        """The gateway URL, as `GET /gateway/bot` gives it."""
        return f"ws://127.0.0.1:{self._port}"

    async def start(self) -> None:
        """Listen on 127.0.0.1 and tell the REST fake where the gateway is."""
        app = web.Application()
        app.router.add_get("/", self._connection)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        self.api.gateway_url = self.url
        self.api.message_listeners.append(self._message_created)

    @property
    def shard_count(self) -> int:
        """How many shards the bot identified with (1 unsharded)."""
        return next(iter(self._sessions.values())).shard[1] if self._sessions else 1

    def shard_of(self, guild_id: str | None) -> int:
        """The shard a guild's events go to (DMs: 0), as Discord routes them."""
        return 0 if guild_id is None else (int(guild_id) >> 22) % self.shard_count

    async def stop(self) -> None:
        """Close the bot's connections and stop listening."""
        for socket in list(self._sockets.values()):
            await socket.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_until_ready(self, timeout: float = 10.0) -> None:
        """Wait until a session has been READY."""
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def wait_for_resume(self, timeout: float = 10.0) -> None:
        """Wait until the bot has sent a RESUME."""
        await asyncio.wait_for(self._resume_asked.wait(), timeout)

    def dispatch(self, event: str, data: dict[str, Any], *, shard: int | None = None) -> None:
        """Send an event to the bot now, or keep it for a RESUME if the bot is away; on `shard`,
        else on the shard of the guild the event names."""
        if shard is None:
            guild_id = data.get("guild_id") if isinstance(data, dict) else None
            shard = self.shard_of(str(guild_id) if guild_id is not None else None)
        session = self._sessions.get(shard)
        if session is None:
            raise RuntimeError(f"no gateway session on shard {shard}: the bot has not identified")
        session.events.append((session.seq + 1, event, data))
        live = self._live.get(shard)
        if live is not None:
            task = asyncio.get_running_loop().create_task(
                self._send_event(live, session.events[-1])
            )
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    async def send_raw(self, text: str, shard: int = 0) -> None:
        """Send `text` to the bot as one frame, as it is (a malformed payload, say)."""
        live = self._live.get(shard)
        if live is None:
            raise RuntimeError(f"no live gateway connection on shard {shard}")
        await self._send_text(live, text)

    def interact(self, interaction: FakeInteraction) -> None:
        """Dispatch INTERACTION_CREATE for an interaction made with `api.new_interaction`."""
        self.dispatch("INTERACTION_CREATE", interaction.payload)

    async def disconnect(self, code: int = 4000) -> None:
        """Close the bot's connection (shard 0) as Discord does on an error; it may RESUME."""
        socket = self._sockets.pop(0, None)
        self._live.pop(0, None)
        if socket is not None:
            await socket.close(code=code, message=b"Unknown error.")

    def hold_resumes(self) -> None:
        """Keep the next RESUME waiting (events meanwhile are only recorded)."""
        self._resume_gate.clear()

    def release_resumes(self) -> None:
        """Let a held RESUME proceed: it replays what the bot missed."""
        self._resume_gate.set()

    def _message_created(self, message: dict[str, Any]) -> None:
        """A message was written somewhere: the bot gets MESSAGE_CREATE if its intents allow."""
        guild_id = self.api.channel_guilds.get(message["channel_id"])
        session = self._sessions.get(self.shard_of(guild_id))
        if session is None:
            return
        if not session.intents & (DIRECT_MESSAGES if guild_id is None else GUILD_MESSAGES):
            return
        event = dict(message)
        if guild_id is not None:
            event["guild_id"] = guild_id
            event["member"] = {key: value for key, value in _member({}).items() if key != "user"}
        elif self.api.flavour == "spacebar":
            event["guild_id"] = None  # Spacebar's Message.toJSON spreads every column
        readable = (
            session.intents & MESSAGE_CONTENT
            or guild_id is None
            or message["author"]["id"] == self.api.BOT_ID
            or any(user["id"] == self.api.BOT_ID for user in message["mentions"])
        )
        if not readable:
            event.update(content="", embeds=[], attachments=[], components=[])
        self.dispatch("MESSAGE_CREATE", event)

    async def _connection(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(max_msg_size=4096 * 1024)
        await socket.prepare(request)
        if request.query.get("v") != "10" or request.query.get("encoding") != "json":
            await socket.close(code=4012, message=b"Invalid API version.")
            return socket
        self._compressors[socket] = _compressor(request.query.get("compress"))
        await self._send(socket, {"op": HELLO, "d": {"heartbeat_interval": self._interval_ms()}})
        async for frame in socket:
            if frame.type is not WSMsgType.TEXT:
                await socket.close(code=4002, message=b"Error while decoding payload.")
                break
            await self._receive(socket, json.loads(frame.data))
        for shard, latest in list(self._sockets.items()):
            if latest is socket:
                del self._sockets[shard]
                self._live.pop(shard, None)
        del self._compressors[socket]
        return socket

    async def _take_shard(self, socket: web.WebSocketResponse, shard: int) -> None:
        """`socket` is now `shard`'s connection; an earlier one of that shard is closed."""
        previous = self._sockets.get(shard)
        self._sockets[shard] = socket
        self._live.pop(shard, None)
        if previous is not None and previous is not socket:
            await previous.close(code=4000)

    def _interval_ms(self) -> int:
        return max(1, round(self.heartbeat_interval * 1000))

    async def _receive(self, socket: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        op, data = payload.get("op"), payload.get("d")
        if op == HEARTBEAT:
            self.heartbeats += 1
            await self._send(socket, {"op": HEARTBEAT_ACK})
        elif op == IDENTIFY:
            await self._identify(socket, data)
        elif op == RESUME:
            await self._resume(socket, data)

    async def _identify(self, socket: web.WebSocketResponse, data: dict[str, Any]) -> None:
        self.identifies.append({key: value for key, value in data.items() if key != "token"})
        if data.get("token") != self.api.BOT_TOKEN:
            await socket.close(code=AUTHENTICATION_FAILED, message=b"Authentication failed.")
            return
        intents = int(data.get("intents", 0))
        if intents & MESSAGE_CONTENT and not self.allow_message_content:
            await socket.close(code=DISALLOWED_INTENTS, message=b"Disallowed intent(s).")
            return
        shard_id, count = (int(n) for n in data.get("shard") or (0, 1))
        await self._take_shard(socket, shard_id)
        session = _Session(secrets.token_hex(16), intents, (shard_id, count))
        self._sessions = {k: v for k, v in self._sessions.items() if v.shard[1] == count}
        self._sessions[shard_id] = session
        guilds = [guild_id for guild_id in self.api.guilds if self.shard_of(guild_id) == shard_id]
        ready = {
            "v": 10,
            "user": {**self.api.bot_user, "verified": True, "mfa_enabled": False},
            "guilds": [{"id": guild_id, "unavailable": True} for guild_id in guilds],
            "session_id": session.id,
            "resume_gateway_url": self.url,
            "shard": [shard_id, count],
            "application": {"id": self.api.APPLICATION_ID, "flags": 1 << 19},
        }
        self._live[shard_id] = socket
        self.dispatch("READY", ready, shard=shard_id)
        if intents & GUILDS:
            for guild_id in guilds:
                self.dispatch("GUILD_CREATE", self.api.guild_create(guild_id), shard=shard_id)
        if len(self._sessions) == count:
            self._ready.set()

    async def _resume(self, socket: web.WebSocketResponse, data: dict[str, Any]) -> None:
        self.resumes.append({key: value for key, value in data.items() if key != "token"})
        self._resume_asked.set()
        await self._resume_gate.wait()
        matching = [(k, v) for k, v in self._sessions.items() if v.id == data.get("session_id")]
        shard_id, session = matching[0] if matching else (0, None)
        await self._take_shard(socket, shard_id)
        if (
            session is None
            or data.get("token") != self.api.BOT_TOKEN
            or data.get("session_id") != session.id
        ):
            await self._send(socket, {"op": INVALID_SESSION, "d": False})
            return
        sent = int(data.get("seq") or 0)
        while missed := [event for event in session.events if event[0] > sent]:
            for event in missed:
                await self._send_event(socket, event)
                sent = event[0]
                self.replayed += 1
        self._live[shard_id] = socket
        self.dispatch("RESUMED", {}, shard=shard_id)

    async def _send_event(
        self, socket: web.WebSocketResponse, event: tuple[int, str, dict[str, Any]]
    ) -> None:
        seq, name, data = event
        await self._send(socket, {"op": DISPATCH, "s": seq, "t": name, "d": data})

    async def _send(self, socket: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        """Send one payload; frames leave in the order they were asked for (one stream)."""
        if "s" not in payload:
            payload = {**payload, "s": None, "t": None}
        await self._send_text(socket, json.dumps(payload))

    async def _send_text(self, socket: web.WebSocketResponse, text: str) -> None:
        async with self._sending:
            if socket.closed:
                return
            compress = self._compressors.get(socket)
            if compress is None:
                await socket.send_str(text)
            else:
                await socket.send_bytes(compress(text.encode()))
