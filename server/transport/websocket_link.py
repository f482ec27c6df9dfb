"""A plugin link over a WebSocket (aiohttp's server side): one frame per text message."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import WSMsgType, web

from server.transport.plugin_link import LinkClosed, PluginLink

log = logging.getLogger(__name__)

MAX_QUEUED_FRAMES = 4096
"""Frames waiting for a client that does not read; past this the link is closed (1013)."""
CLOSE_TRY_AGAIN_LATER = 1013
_END = None


class WebSocketLink(PluginLink):
    """Frames go out in order through one writer task, so `send` never waits."""

    transport = "websocket"

    def __init__(self, socket: web.WebSocketResponse, peer: str) -> None:
        super().__init__(peer)
        self._socket = socket
        self._outgoing: asyncio.Queue[str | None] = asyncio.Queue()
        self._ended = False
        self._writer = asyncio.create_task(self._write(), name=f"websocket writer {peer}")

    def send(self, text: str) -> None:
        if self.closed:
            raise LinkClosed("the websocket is closed")
        if self._outgoing.qsize() >= MAX_QUEUED_FRAMES:
            log.warning("closing the websocket of %s: it reads no frames", self.peer)
            self._ended = True
            self._outgoing.put_nowait(_END)
            asyncio.get_running_loop().create_task(
                self._socket.close(code=CLOSE_TRY_AGAIN_LATER, message=b"not reading")
            )
            raise LinkClosed("the client reads no frames")
        self._outgoing.put_nowait(text)

    async def _write(self) -> None:
        while (text := await self._outgoing.get()) is not _END:
            try:
                await self._socket.send_str(text)
            except (ConnectionError, RuntimeError):  # closing or reset underneath us
                self._ended = True
                return

    async def recv(self) -> str | bytes:
        if self._ended:
            raise LinkClosed("the websocket is closed")
        message = await self._socket.receive()
        if message.type is WSMsgType.TEXT:
            return str(message.data)
        if message.type is WSMsgType.BINARY:
            return bytes(message.data)
        self._ended = True
        raise LinkClosed(f"the websocket closed ({message.type.name.lower()})")

    async def close(self, code: int, reason: str) -> None:
        """Send what is queued (for a second at most), then close with `code` and `reason`
        (cut to fit a close frame); safe to call again, and after the client closed."""
        self._ended = True
        self._outgoing.put_nowait(_END)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._writer), 1.0)
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._socket.close(code=code, message=reason.encode()[:120])

    @property
    def closed(self) -> bool:
        return self._ended or self._socket.closed
