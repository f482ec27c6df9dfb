"""A plugin link over plain HTTP: frames posted up, numbered frames long-polled down.

For a plugin whose WebSocket to 127.0.0.1 is blocked (Chromium's Local Network Access) and which
reaches the server through `BdApi.Net.fetch` instead. One `HttpLink` is one session:

- the client posts its frames (`deliver`), which the gateway reads with `recv` as from a socket;
- each frame the gateway sends gets the next sequence number and stays buffered until a poll
  asking for frames `after` it shows the client has it, so a poll broken on the way (a timeout,
  a reset) loses nothing: the next poll with the same `after` gets the frames again;
- a poll is held until there is a frame to give or `wait` seconds pass; a newer poll ends the
  one being held, so a client never holds more than one;
- a session that no poll has touched for `idle_seconds` is gone, like a dropped socket.

No I/O here: `local_server` turns requests into these calls.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from server.transport.plugin_link import LinkClosed, PluginLink

MAX_INCOMING_FRAMES = 64
"""Frames posted but not yet read by the gateway; a post beyond this waits for room."""
MAX_UNACKED_BYTES = 16 * 1024 * 1024
"""Frames sent but not yet confirmed by a poll; past this the client is not polling (1008)."""
MAX_POLL_FRAMES = 256
"""At most this many frames in one poll's answer; the next poll gets the rest at once."""
CLOSE_POLICY = 1008


@dataclass(frozen=True)
class Poll:
    """A poll's answer: numbered frames (encoded JSON), and the close if the link has ended."""

    frames: list[tuple[int, str]]
    closed: tuple[int, str] | None

    def encode(self) -> str:
        """The JSON body: `{"frames": [{"seq": n, "frame": {...}}, ...], "closed": ...}`."""
        frames = ",".join(f'{{"seq":{seq},"frame":{text}}}' for seq, text in self.frames)
        closed = "null"
        if self.closed is not None:
            code, reason = self.closed
            closed = f'{{"code":{code},"reason":{json.dumps(reason)}}}'
        return f'{{"frames":[{frames}],"closed":{closed}}}'


class HttpLink(PluginLink):
    """One plugin's HTTP session; `id` is its unguessable session token."""

    transport = "http"

    def __init__(self, peer: str, *, now: Callable[[], float] = time.monotonic) -> None:
        super().__init__(peer)
        self.id = secrets.token_urlsafe(18)
        self._now = now
        self.last_seen = now()
        self._incoming: deque[str | bytes] = deque()
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._outgoing: deque[tuple[int, str]] = deque()
        self._outgoing_bytes = 0
        self._next_seq = 1
        self._changed = asyncio.Event()
        self._ended: tuple[int, str] | None = None
        self._poll_generation = 0
        self._polls_held = 0

    # ----- the gateway's side -----

    def send(self, text: str) -> None:
        if self._ended is not None:
            raise LinkClosed("the HTTP session is closed")
        self._outgoing.append((self._next_seq, text))
        self._next_seq += 1
        self._outgoing_bytes += len(text)
        if self._outgoing_bytes > MAX_UNACKED_BYTES:
            self.end(CLOSE_POLICY, "frames not collected: the client stopped polling")
            raise LinkClosed("the client stopped polling")
        self._changed.set()

    async def recv(self) -> str | bytes:
        while not self._incoming:
            if self._ended is not None:
                raise LinkClosed("the HTTP session is closed")
            self._arrived.clear()
            await self._arrived.wait()
        self._room.set()
        return self._incoming.popleft()

    async def close(self, code: int, reason: str) -> None:
        self.end(code, reason)

    @property
    def closed(self) -> bool:
        return self._ended is not None

    def end(self, code: int, reason: str) -> None:
        """End the session: the next poll gets what is left and the close; nothing is read."""
        if self._ended is None:
            self._ended = (code, reason)
        for event in (self._arrived, self._room, self._changed):
            event.set()

    # ----- the client's side -----

    async def deliver(self, frames: list[str | bytes]) -> None:
        """Frames the client posted, in order; waits while the gateway is behind."""
        self.last_seen = self._now()
        for text in frames:
            while len(self._incoming) >= MAX_INCOMING_FRAMES and self._ended is None:
                self._room.clear()
                await self._room.wait()
            if self._ended is not None:
                raise LinkClosed("the HTTP session is closed")
            self._incoming.append(text)
            self._arrived.set()

    async def poll(self, after: int, wait: float) -> Poll:
        """The frames numbered above `after` (the client has the rest), waiting up to `wait` s."""
        self._confirm(after)
        self._poll_generation += 1
        generation = self._poll_generation
        self._changed.set()  # an older poll still held returns now, empty
        self._changed.clear()
        self._polls_held += 1
        try:
            async with asyncio.timeout(wait):
                while not self._outgoing and self._ended is None:
                    self._changed.clear()
                    await self._changed.wait()
                    if generation != self._poll_generation:
                        return Poll([], None)
        except TimeoutError:
            pass
        finally:
            self._polls_held -= 1
            self.last_seen = self._now()
        frames = [entry for _, entry in zip(range(MAX_POLL_FRAMES), self._outgoing, strict=False)]
        return Poll(frames, self._ended if len(frames) == len(self._outgoing) else None)

    def idle_for(self) -> float:
        """Seconds since a poll or post last touched the session (0 while a poll is held)."""
        return 0.0 if self._polls_held else self._now() - self.last_seen

    def _confirm(self, after: int) -> None:
        """Forget the frames numbered up to `after`: the client has them."""
        while self._outgoing and self._outgoing[0][0] <= after:
            _, text = self._outgoing.popleft()
            self._outgoing_bytes -= len(text)


class HttpSessions:
    """The open HTTP sessions, bounded in number: a new one beyond `limit` ends the stalest."""

    def __init__(self, *, limit: int, idle_seconds: float) -> None:
        self.limit = limit
        self.idle_seconds = idle_seconds
        self._links: dict[str, HttpLink] = {}

    def open(self, peer: str) -> HttpLink:
        """A new session for `peer`; beyond the limit an ended one, else the stalest, goes."""
        if len(self._links) >= self.limit:
            stalest = max(self._links.values(), key=lambda link: (link.closed, link.idle_for()))
            stalest.end(CLOSE_POLICY, "too many HTTP sessions: this one was the stalest")
            del self._links[stalest.id]
        link = HttpLink(peer)
        self._links[link.id] = link
        return link

    def get(self, session_id: str) -> HttpLink | None:
        return self._links.get(session_id)

    def __len__(self) -> int:
        return len(self._links)

    def sweep(self) -> list[HttpLink]:
        """Drop the sessions idle for too long, ending the live ones among them (which it
        returns); an ended session lingers as long, so that a poll can still learn its close."""
        gone = [link for link in self._links.values() if link.idle_for() > self.idle_seconds]
        ended = [link for link in gone if not link.closed]
        for link in gone:
            link.end(CLOSE_POLICY, "no poll for too long")
            del self._links[link.id]
        return ended

    def end_all(self, code: int, reason: str) -> None:
        for link in self._links.values():
            link.end(code, reason)
