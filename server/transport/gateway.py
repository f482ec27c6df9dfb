"""The gateway the plugin connects to: hello/secret, frames in and out, whatever the transport.

The links come from `local_server` (a WebSocket, or HTTP polls); the gateway only sees frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from server import __version__
from server.transport import protocol
from server.transport.local_server import LocalServer
from server.transport.plugin_link import LinkClosed, PluginLink
from server.transport.protocol import (
    Activity,
    AwayRequest,
    DraftAction,
    Hello,
    IncomingMessage,
    Opened,
    OwnerFrame,
    PresenceReport,
    ProtocolError,
    RuleRemoveRequest,
    RuleSetRequest,
    RulesRequest,
    Sent,
    StatusRequest,
)

log = logging.getLogger(__name__)

Control = Callable[[OwnerFrame], Awaitable[dict[str, Any] | None]]
"""Handles an owner frame (presence, away, draft_action); its answer, if any."""
Greeting = Callable[[], Awaitable[list[dict[str, Any]]]]
"""Frames a plugin gets right after its welcome (the away status, pending drafts)."""

Answer = TypeVar("Answer", Sent, Opened)


@dataclass(frozen=True)
class _Waiter:
    """A request waiting for the plugin's answer of type `kind` with its nonce."""

    future: asyncio.Future[Sent | Opened]
    connection: PluginLink
    kind: type[Sent | Opened]


class Gateway:
    """Accepts authenticated plugin connections and routes their frames.

    Messages go to `accept` and are acknowledged once it returns (they are stored then);
    `sent` and `opened` answers resolve `request` and `open_channel` calls; `activity` frames
    update `last_activity`.
    Clients whose hello says `"role": "cli"` are kept apart: they may only ask for `status`,
    and `request`, `notify` and `broadcast` only ever pick plugins.
    """

    def __init__(
        self,
        *,
        secret: str,
        allowed_origins: list[str],
        accept: Callable[[IncomingMessage], Awaitable[None]],
        watch_list: Callable[[], list[dict[str, str]]],
        messenger_name: str,
        hello_timeout: float = 5.0,
        control: Control | None = None,
        greeting: Greeting | None = None,
    ) -> None:
        if not secret:
            raise ValueError("the gateway needs a non-empty secret")
        self._secret = secret.encode()
        self._origins = list(allowed_origins)
        self._accept = accept
        self._watch_list = watch_list
        self._messenger_name = messenger_name
        self._hello_timeout = hello_timeout
        self._clients: list[PluginLink] = []  # plugins only (never cli clients), oldest first
        self._client_connected = asyncio.Event()
        self._plugins_gone_since: float | None = time.monotonic()  # none has connected yet
        self._pending: dict[str, _Waiter] = {}
        self._last_activity: float | None = None
        self._control = control
        self._greeting = greeting
        self._control_tasks: set[asyncio.Task[None]] = set()
        self.self_id: str | None = None
        """The owner's Discord user id, as the last plugin's hello reported it."""

    async def start(self, host: str, port: int, *, check_host: bool = True) -> LocalServer:
        """Listen on host:port for both transports; the returned server's `close()` stops it.

        `check_host`: refuse HTTP requests whose Host is not a loopback name (on a loopback bind).
        """
        server = LocalServer(
            secret=self._secret.decode(),
            allowed_origins=self._origins,
            serve_link=self.serve,
            check_host=check_host,
        )
        await server.start(host, port)
        return server

    async def serve(self, connection: PluginLink) -> None:
        """Serve one client from its hello until its link ends."""
        peer = connection.peer
        hello = await self._authenticate(connection, peer)
        if hello is None:
            return
        if hello.role == "cli":
            await self._serve_cli(connection, peer)
            return
        log.info(
            "plugin connected from %s over %s (%s %s)",
            peer,
            connection.transport,
            hello.client or "?",
            hello.version,
        )
        if hello.self_id:
            self.self_id = hello.self_id
        self._clients.append(connection)
        self._client_connected.set()
        self._plugins_gone_since = None
        try:
            connection.send(
                protocol.encode(
                    protocol.welcome(__version__, self._watch_list(), self._messenger_name)
                )
            )
            await self._greet(connection)
            while True:
                await self._on_frame(connection, await connection.recv(), peer)
        except LinkClosed:
            pass
        finally:
            self._forget(connection)
            log.info("plugin at %s disconnected", peer)

    async def _authenticate(self, connection: PluginLink, peer: str) -> Hello | None:
        try:
            first = await asyncio.wait_for(connection.recv(), self._hello_timeout)
            frame = protocol.parse_client_frame(first)
        except TimeoutError:
            await self._refuse(connection, peer, protocol.CLOSE_NO_HELLO, "no hello in time")
            return None
        except ProtocolError as exc:
            await self._refuse(connection, peer, protocol.CLOSE_NO_HELLO, f"bad hello: {exc}")
            return None
        except LinkClosed:
            return None
        if not isinstance(frame, Hello):
            await self._refuse(connection, peer, protocol.CLOSE_NO_HELLO, "first frame not hello")
            return None
        if not hmac.compare_digest(frame.secret.encode(), self._secret):
            await self._refuse(connection, peer, protocol.CLOSE_BAD_SECRET, "bad secret")
            return None
        return frame

    async def _refuse(self, connection: PluginLink, peer: str, code: int, why: str) -> None:
        log.warning("refused %s client %s: %s", connection.transport, peer, why)
        # A close reason may hold at most 123 bytes of UTF-8; more is a protocol error.
        await connection.close(code, why.encode()[:120].decode(errors="ignore"))

    async def _on_frame(self, connection: PluginLink, text: str | bytes, peer: str) -> None:
        try:
            frame = protocol.parse_client_frame(text)
        except ProtocolError as exc:
            log.warning("bad frame from %s: %s", peer, exc)
            connection.send(protocol.encode(protocol.error(str(exc))))
            return
        if isinstance(frame, IncomingMessage):
            await self._accept(frame)
            connection.send(protocol.encode(protocol.ack(frame.id)))
        elif isinstance(frame, Sent | Opened):
            waiter = self._pending.get(frame.nonce)
            if waiter is not None and isinstance(frame, waiter.kind) and not waiter.future.done():
                waiter.future.set_result(frame)
        elif isinstance(frame, Activity):
            self._note_activity(frame.at / 1000)
        elif isinstance(frame, StatusRequest):
            connection.send(protocol.encode(self._status()))
        elif isinstance(
            frame, PresenceReport | AwayRequest | RulesRequest | RuleSetRequest | RuleRemoveRequest
        ):
            # In order: a message right after a presence report is judged by the new status.
            await self._answer_control(connection, frame, peer)
        elif isinstance(frame, DraftAction):
            self._start_control(connection, frame, peer)
        else:
            connection.send(protocol.encode(protocol.error("already authenticated")))

    async def _serve_cli(self, connection: PluginLink, peer: str) -> None:
        """A command-line client: welcome it, then answer its `status`, `away`, `draft_action`
        and rule frames until it leaves; it is never chosen to post."""
        log.info("command-line client connected from %s", peer)
        welcome = protocol.welcome(__version__, self._watch_list(), self._messenger_name)
        try:
            connection.send(protocol.encode(welcome))
            while True:
                text = await connection.recv()
                try:
                    frame = protocol.parse_client_frame(text)
                except ProtocolError as exc:
                    connection.send(protocol.encode(protocol.error(str(exc))))
                    continue
                if isinstance(frame, StatusRequest):
                    connection.send(protocol.encode(self._status()))
                elif isinstance(
                    frame, AwayRequest | RulesRequest | RuleSetRequest | RuleRemoveRequest
                ):
                    await self._answer_control(connection, frame, peer)
                elif isinstance(frame, DraftAction):
                    self._start_control(connection, frame, peer)
                else:
                    error = f"a cli client may not send {frame.type!r} frames"
                    connection.send(protocol.encode(protocol.error(error)))
        except LinkClosed:
            pass
        log.info("command-line client at %s disconnected", peer)

    def _status(self) -> dict[str, Any]:
        transports = Counter[str](client.transport for client in self._clients)
        return protocol.status(
            __version__,
            len(self._clients),
            len(self._watch_list()),
            self._messenger_name,
            dict(transports),
        )

    async def _greet(self, connection: PluginLink) -> None:
        """Send a new plugin what it must know beyond the welcome (away status, drafts)."""
        if self._greeting is not None:
            for frame in await self._greeting():
                connection.send(protocol.encode(frame))

    def _start_control(self, connection: PluginLink, frame: OwnerFrame, peer: str) -> None:
        """Handle a draft action in its own task: sending a draft may wait on this very plugin's
        `sent` answer, which this connection's read loop must stay free to receive."""
        task = asyncio.create_task(self._answer_control(connection, frame, peer))
        self._control_tasks.add(task)
        task.add_done_callback(self._control_tasks.discard)

    async def _answer_control(self, connection: PluginLink, frame: OwnerFrame, peer: str) -> None:
        if self._control is None:  # a gateway without away mode: presence reports are moot
            answer: dict[str, Any] | None = (
                None
                if isinstance(frame, PresenceReport)
                else protocol.error(f"{frame.type} frames are not served")
            )
        else:
            try:
                answer = await self._control(frame)
            except Exception:
                log.exception("could not handle a %s frame from %s", frame.type, peer)
                answer = protocol.error(f"the server could not handle that {frame.type} frame")
        if answer is not None:
            self._send_quietly(connection, protocol.encode(answer))

    async def aclose(self) -> None:
        """Stop the owner frames still being handled (a draft being sent)."""
        for task in list(self._control_tasks):
            task.cancel()
        await asyncio.gather(*self._control_tasks, return_exceptions=True)

    def _forget(self, connection: PluginLink) -> None:
        if connection in self._clients:
            self._clients.remove(connection)
        if not self._clients:
            self._client_connected.clear()
            if self._plugins_gone_since is None:
                self._plugins_gone_since = time.monotonic()
        for waiter in self._pending.values():
            if waiter.connection is connection and not waiter.future.done():
                waiter.future.set_exception(
                    ConnectionError("the plugin disconnected before answering")
                )

    def broadcast(self, frame: dict[str, Any]) -> None:
        """Send a frame to every connected plugin (`watch` updates, drafts, the away status)."""
        text = protocol.encode(frame)
        for connection in list(self._clients):
            self._send_quietly(connection, text)

    def _send_quietly(self, connection: PluginLink, text: str) -> None:
        with contextlib.suppress(LinkClosed):
            connection.send(text)

    async def request(self, frame: dict[str, Any], nonce: str, timeout: float) -> Sent:
        """Send `frame` to the newest plugin and wait for its `sent` answer with `nonce`.

        Waits up to `timeout` seconds in all, including for a plugin to (re)connect.
        Raises TimeoutError or ConnectionError.
        """
        return await self._ask(frame, nonce, timeout, Sent)

    async def open_channel(self, channel_id: str, timeout: float) -> Opened:
        """Ask the newest plugin to show `channel_id` and wait for its `opened` answer.

        Waits up to `timeout` seconds in all, including for a plugin to (re)connect.
        Raises TimeoutError or ConnectionError.
        """
        nonce = secrets.token_hex(8)
        return await self._ask(protocol.open_channel(nonce, channel_id), nonce, timeout, Opened)

    def plugins_gone_since(self) -> float | None:
        """Since when no plugin has been connected (monotonic seconds: the start, or when the
        last one left); None while one is."""
        return self._plugins_gone_since

    def last_activity(self) -> float | None:
        """When the person last used the keyboard or mouse in Discord (epoch seconds), if known."""
        return self._last_activity

    def _note_activity(self, at: float) -> None:
        """Keep the latest reported activity; a time in the future counts as now."""
        at = min(at, time.time())
        if self._last_activity is None or at > self._last_activity:
            self._last_activity = at

    async def _ask(
        self, frame: dict[str, Any], nonce: str, timeout: float, kind: type[Answer]
    ) -> Answer:
        """Send `frame` to the newest plugin and wait for its answer of type `kind` with `nonce`."""
        async with asyncio.timeout(timeout):
            await self._client_connected.wait()
            connection = self._clients[-1]
            future: asyncio.Future[Sent | Opened] = asyncio.get_running_loop().create_future()
            self._pending[nonce] = _Waiter(future, connection, kind)
            try:
                connection.send(protocol.encode(frame))
                answer = await future
            except LinkClosed as exc:
                raise ConnectionError("the plugin disconnected") from exc
            finally:
                del self._pending[nonce]
        assert isinstance(answer, kind)  # resolved only by frames of this kind
        return answer

    async def notify(self, frame: dict[str, Any]) -> None:
        """Send `frame` to the newest plugin if one is connected; no answer expected."""
        if self._clients:
            self._send_quietly(self._clients[-1], protocol.encode(frame))
