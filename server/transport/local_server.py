"""The server's one local port (aiohttp): the plugin's WebSocket, and the same frames over HTTP.

- `GET /` with an Upgrade: the WebSocket. An `Origin` outside ALLOWED_ORIGINS is refused (403);
  a client sending none (not a web page) is let through to say hello with the secret.
- `/plugin/…`: the HTTP transport (see `http_link`), for a plugin whose WebSocket Discord's
  Chromium blocks. BetterDiscord's `Net.fetch` sends no `Origin`, so every request that carries
  one, or any other mark of a web page, is refused (403); every request must carry the secret
  (`Authorization: Bearer …`, compared in constant time; 401 otherwise); on a loopback bind the
  `Host` must name a loopback address too (a page using DNS rebinding gets 403).

    POST /plugin/open[?replaces=OLD_ID]     → {"session": ID, "max_wait": S}
    POST /plugin/frames?session=ID          body: one JSON frame per line → {"ok": true}
    GET  /plugin/poll?session=ID&after=N&wait=S
                                            → {"frames": [{"seq": n, "frame": {…}}], "closed": …}
    POST /plugin/close?session=ID           → {"ok": true}

Each link, whatever its transport, is handed to `serve_link`, which returns when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from server import __version__
from server.transport.http_link import HttpLink, HttpSessions
from server.transport.plugin_link import LinkClosed, PluginLink
from server.transport.websocket_link import WebSocketLink

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 1024 * 1024
"""The largest frame either transport takes from a client; a larger one ends its link (1009)."""
MAX_FRAMES_PER_POST = 64
MAX_POST_BYTES = 8 * 1024 * 1024
MAX_POLL_WAIT_SECONDS = 25.0
"""The longest a poll is held; the plugin asks for less than its request timeout."""
MAX_HTTP_SESSIONS = 8
SESSION_IDLE_SECONDS = 15.0
"""A session no poll has touched for this long is gone, as a dropped socket would be."""
SWEEP_INTERVAL_SECONDS = 2.0
WEBSOCKET_HEARTBEAT_SECONDS = 20.0
LINGER_SECONDS = 2.0
"""How long a closed WebSocket waits for its client to hang up before the connection is cut."""
CLOSE_TOO_BIG = 1009
CLOSE_GOING_AWAY = 1001
PAGE_HEADERS = ("Origin", "Sec-Fetch-Site", "Sec-Fetch-Mode")
"""Headers a browser page's request carries and `Net.fetch` never does."""

ServeLink = Callable[[PluginLink], Awaitable[None]]


def _peer(request: web.Request) -> str:
    address = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(address, tuple) and len(address) >= 2:
        host = f"[{address[0]}]" if ":" in str(address[0]) else str(address[0])
        return f"{host}:{address[1]}"
    return str(request.remote or "?")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_loopback_host(host_header: str) -> bool:
    """Whether a `Host` header names this machine (localhost, 127.0.0.0/8, ::1), any port."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return is_loopback(host)


def _frame_text(line: bytes) -> str | bytes:
    """A posted line as text; invalid UTF-8 stays bytes, which the gateway answers with an error."""
    try:
        return line.decode()
    except UnicodeDecodeError:
        return line


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)


class _GracefulWebSocket(web.WebSocketResponse):
    """aiohttp's WebSocket, ending TCP with a FIN rather than a reset.

    After a frame too big (or any protocol error) aiohttp sends the close frame (1009) and then
    closes the transport at once, while the client may still be sending the rest of that frame:
    closing a socket with unread data makes the kernel send a reset, which can destroy the close
    frame before the client reads it. Half-closing keeps the close code; what the client still
    sends is dropped by aiohttp's reader, and the handler lingers until the client hangs up.
    """

    def _close_transport(self) -> None:
        request = self._req
        transport = request.transport if request is not None else None
        if transport is not None and transport.can_write_eof() and not transport.is_closing():
            transport.write_eof()
        else:
            super()._close_transport()


async def _linger(request: web.Request, seconds: float = LINGER_SECONDS) -> None:
    """Wait until the client has hung up (its FIN closes the transport), at most `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while (transport := request.transport) is not None and not transport.is_closing():
        if asyncio.get_running_loop().time() >= deadline:
            return
        await asyncio.sleep(0.02)


class LocalServer:
    """Listens on one port for plugin links over either transport."""

    def __init__(
        self,
        *,
        secret: str,
        allowed_origins: list[str],
        serve_link: ServeLink,
        check_host: bool,
    ) -> None:
        self._secret = f"Bearer {secret}".encode()
        self._origins = set(allowed_origins)
        self._serve_link = serve_link
        self._check_host = check_host
        self.sessions = HttpSessions(limit=MAX_HTTP_SESSIONS, idle_seconds=SESSION_IDLE_SECONDS)
        self._session_tasks: set[asyncio.Task[None]] = set()
        self._websockets: set[WebSocketLink] = set()
        self._runner: web.AppRunner | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port; returns the port bound (useful with port 0)."""
        app = web.Application(client_max_size=MAX_POST_BYTES)
        app.router.add_get("/", self._websocket)
        app.router.add_post("/plugin/open", self._open)
        app.router.add_post("/plugin/frames", self._frames)
        app.router.add_get("/plugin/poll", self._poll)
        app.router.add_post("/plugin/close", self._close)
        app.on_response_prepare.append(self._name_server)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the port bound, also when asked for 0
        self._sweeper = asyncio.create_task(self._sweep(), name="http session sweeper")
        return self.port

    async def close(self) -> None:
        """Stop listening and end every link."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        self.sessions.end_all(CLOSE_GOING_AWAY, "the server is stopping")
        for link in list(self._websockets):
            await link.close(CLOSE_GOING_AWAY, "the server is stopping")
        await asyncio.gather(*self._session_tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    async def _name_server(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = f"discord-auto-reply/{__version__}"

    # ----- the WebSocket -----

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        peer = _peer(request)
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self._origins:
            log.warning("refused websocket client %s: Origin %r is not allowed (403)", peer, origin)
            return web.Response(status=403, text="Origin not allowed\n")
        socket = _GracefulWebSocket(
            max_msg_size=MAX_FRAME_BYTES,
            compress=False,  # small frames over loopback: deflate only costs CPU
            heartbeat=WEBSOCKET_HEARTBEAT_SECONDS,
        )
        if not socket.can_prepare(request).ok:
            return web.Response(
                status=426,
                headers={"Upgrade": "websocket"},
                text="This port speaks WebSocket, and HTTP under /plugin/ (docs/protocol.md).\n",
            )
        await socket.prepare(request)
        link = WebSocketLink(socket, peer)
        self._websockets.add(link)
        try:
            await self._serve_link(link)
        finally:
            self._websockets.discard(link)
            await link.close(1000, "")
            await _linger(request)
        return socket

    # ----- the HTTP transport -----

    def _refusal(self, request: web.Request, peer: str) -> web.Response | None:
        """403 for a web page's request or a foreign Host, 401 without the secret; else None."""
        marks = [name for name in PAGE_HEADERS if name in request.headers]
        if marks:
            log.warning("refused HTTP client %s: a web page's request (%s)", peer, marks[0])
            return _json(403, {"error": "requests from web pages are refused"})
        if self._check_host and not _is_loopback_host(request.host):
            log.warning("refused HTTP client %s: Host %r is not this machine", peer, request.host)
            return _json(403, {"error": "the Host header must name a loopback address"})
        presented = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(presented, self._secret):
            log.warning("refused HTTP client %s: bad secret", peer)
            return _json(401, {"error": "bad secret: copy WEBSOCKET_SECRET from config.json"})
        return None

    def _authorized_session(self, request: web.Request) -> HttpLink | web.Response:
        """The request's session, or the answer for a refused request or an unknown session."""
        if (refused := self._refusal(request, _peer(request))) is not None:
            return refused
        link = self.sessions.get(request.query.get("session", ""))
        if link is None:
            return _json(404, {"error": "no such session (the server may have restarted)"})
        return link

    async def _open(self, request: web.Request) -> web.Response:
        peer = _peer(request)
        if (refused := self._refusal(request, peer)) is not None:
            return refused
        # A plugin whose link broke names its old session: it ends now, so what waited on it (a
        # `send` in flight) is sent again on the new one at once, not when the old one times out.
        replaced = self.sessions.get(request.query.get("replaces", ""))
        if replaced is not None:
            replaced.end(1000, "replaced by a new session of the client")
        link = self.sessions.open(f"{peer} (http)")
        task = asyncio.create_task(self._serve_session(link), name=f"http session {link.peer}")
        self._session_tasks.add(task)
        task.add_done_callback(self._session_tasks.discard)
        return _json(200, {"session": link.id, "max_wait": MAX_POLL_WAIT_SECONDS})

    async def _serve_session(self, link: HttpLink) -> None:
        try:
            await self._serve_link(link)
        finally:
            link.end(1000, "")

    async def _frames(self, request: web.Request) -> web.Response:
        link = self._authorized_session(request)
        if isinstance(link, web.Response):
            return link
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            link.end(CLOSE_TOO_BIG, "frames too big")
            return _json(413, {"error": f"at most {MAX_POST_BYTES} bytes per post"})
        lines = [line for line in body.split(b"\n") if line.strip()]
        if len(lines) > MAX_FRAMES_PER_POST:
            return _json(413, {"error": f"at most {MAX_FRAMES_PER_POST} frames per post"})
        if any(len(line) > MAX_FRAME_BYTES for line in lines):
            link.end(CLOSE_TOO_BIG, "frame too big")
            return _json(413, {"error": f"a frame may hold at most {MAX_FRAME_BYTES} bytes"})
        try:
            await link.deliver([_frame_text(line) for line in lines])
        except LinkClosed:
            return _json(410, {"error": "the session has ended"})
        return _json(200, {"ok": True})

    async def _poll(self, request: web.Request) -> web.Response:
        link = self._authorized_session(request)
        if isinstance(link, web.Response):
            return link
        try:
            after = int(request.query.get("after", "0"))
            wait = float(request.query.get("wait", "0"))
        except ValueError:
            return _json(400, {"error": "after must be an integer and wait a number of seconds"})
        wait = min(max(wait, 0.0), MAX_POLL_WAIT_SECONDS)
        answer = await link.poll(after, wait)
        return web.Response(text=answer.encode(), content_type="application/json")

    async def _close(self, request: web.Request) -> web.Response:
        link = self._authorized_session(request)
        if isinstance(link, web.Response):
            return link
        link.end(1000, "closed by the client")
        return _json(200, {"ok": True})

    async def _sweep(self) -> None:
        """End the sessions whose client stopped polling."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_SECONDS)
            for link in self.sessions.sweep():
                log.info(
                    "HTTP session of %s ended: no poll for %.0f s", link.peer, SESSION_IDLE_SECONDS
                )
