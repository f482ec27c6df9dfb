"""The websocket gateway the plugin connects to: handshake, hello/secret, frames in and out."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from server import __version__, protocol
from server.protocol import Hello, IncomingMessage, ProtocolError, Sent

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 1024 * 1024


def _peer(connection: ServerConnection) -> str:
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)


class Gateway:
    """Accepts authenticated plugin connections and routes their frames.

    Messages go to `accept` (then get an ack); `sent` answers resolve `request` calls.
    """

    def __init__(
        self,
        *,
        secret: str,
        allowed_origins: list[str],
        accept: Callable[[IncomingMessage], None],
        watch_list: Callable[[], list[dict[str, str]]],
        messenger_name: str,
        hello_timeout: float = 5.0,
    ) -> None:
        if not secret:
            raise ValueError("the gateway needs a non-empty secret")
        self._secret = secret.encode()
        self._origins: list[Origin | None] = [Origin(origin) for origin in allowed_origins]
        self._origins.append(None)  # clients that send no Origin (not a browser page) are fine
        self._accept = accept
        self._watch_list = watch_list
        self._messenger_name = messenger_name
        self._hello_timeout = hello_timeout
        self._clients: list[ServerConnection] = []
        self._client_connected = asyncio.Event()
        self._pending: dict[str, tuple[asyncio.Future[Sent], ServerConnection]] = {}

    async def start(self, host: str, port: int) -> Server:
        """Listen on host:port; the returned server's `close()` stops it."""
        return await serve(
            self._handle,
            host,
            port,
            origins=self._origins,
            max_size=MAX_FRAME_BYTES,
            server_header=f"discord-auto-reply/{__version__}",
        )

    async def _handle(self, connection: ServerConnection) -> None:
        peer = _peer(connection)
        hello = await self._authenticate(connection, peer)
        if hello is None:
            return
        log.info("plugin connected from %s (%s %s)", peer, hello.client or "?", hello.version)
        await connection.send(
            protocol.encode(protocol.welcome(__version__, self._watch_list(), self._messenger_name))
        )
        self._clients.append(connection)
        self._client_connected.set()
        try:
            async for text in connection:
                await self._on_frame(connection, text, peer)
        except ConnectionClosed:
            pass
        finally:
            self._forget(connection)
            log.info("plugin at %s disconnected", peer)

    async def _authenticate(self, connection: ServerConnection, peer: str) -> Hello | None:
        try:
            first = await asyncio.wait_for(connection.recv(), self._hello_timeout)
            frame = protocol.parse_client_frame(first)
        except TimeoutError:
            await self._refuse(connection, peer, protocol.CLOSE_NO_HELLO, "no hello in time")
            return None
        except ProtocolError as exc:
            await self._refuse(connection, peer, protocol.CLOSE_NO_HELLO, f"bad hello: {exc}")
            return None
        except ConnectionClosed:
            return None
        if not isinstance(frame, Hello):
            await self._refuse(connection, peer, protocol.CLOSE_NO_HELLO, "first frame not hello")
            return None
        if not hmac.compare_digest(frame.secret.encode(), self._secret):
            await self._refuse(connection, peer, protocol.CLOSE_BAD_SECRET, "bad secret")
            return None
        return frame

    async def _refuse(self, connection: ServerConnection, peer: str, code: int, why: str) -> None:
        log.warning("refused websocket client %s: %s", peer, why)
        # A close reason may hold at most 123 bytes of UTF-8; more is a protocol error.
        await connection.close(code, why.encode()[:120].decode(errors="ignore"))

    async def _on_frame(self, connection: ServerConnection, text: str | bytes, peer: str) -> None:
        try:
            frame = protocol.parse_client_frame(text)
        except ProtocolError as exc:
            log.warning("bad frame from %s: %s", peer, exc)
            await connection.send(protocol.encode(protocol.error(str(exc))))
            return
        if isinstance(frame, IncomingMessage):
            self._accept(frame)
            await connection.send(protocol.encode(protocol.ack(frame.id)))
        elif isinstance(frame, Sent):
            waiting = self._pending.get(frame.nonce)
            if waiting is not None and not waiting[0].done():
                waiting[0].set_result(frame)
        else:
            await connection.send(protocol.encode(protocol.error("already authenticated")))

    def _forget(self, connection: ServerConnection) -> None:
        if connection in self._clients:
            self._clients.remove(connection)
        if not self._clients:
            self._client_connected.clear()
        for future, owner in self._pending.values():
            if owner is connection and not future.done():
                future.set_exception(ConnectionError("the plugin disconnected before answering"))

    def broadcast(self, frame: dict[str, Any]) -> None:
        """Send a frame to every authenticated client (used for `watch` updates)."""
        broadcast(self._clients, protocol.encode(frame))

    async def _send_quietly(self, connection: ServerConnection, text: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await connection.send(text)

    async def request(self, frame: dict[str, Any], nonce: str, timeout: float) -> Sent:
        """Send `frame` to the newest plugin and wait for its `sent` answer with `nonce`.

        Waits up to `timeout` seconds in all, including for a plugin to (re)connect.
        Raises TimeoutError or ConnectionError.
        """
        async with asyncio.timeout(timeout):
            await self._client_connected.wait()
            connection = self._clients[-1]
            future: asyncio.Future[Sent] = asyncio.get_running_loop().create_future()
            self._pending[nonce] = (future, connection)
            try:
                await connection.send(protocol.encode(frame))
                return await future
            except ConnectionClosed as exc:
                raise ConnectionError("the plugin disconnected") from exc
            finally:
                del self._pending[nonce]

    async def notify(self, frame: dict[str, Any]) -> None:
        """Send `frame` to the newest plugin if one is connected; no answer expected."""
        if self._clients:
            await self._send_quietly(self._clients[-1], protocol.encode(frame))
