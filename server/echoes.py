"""Recognising the relay's own replies when Discord echoes them back as the owner's messages."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

_Key = tuple[str, ...]
"""("nonce", nonce) or ("text", channel, stripped content): what an echo can be known by."""


@dataclass(eq=False)
class _Sent:
    keys: tuple[_Key, _Key]
    at: float
    order: int
    matched: bool = field(default=False)


class EchoTracker:
    """Remembers what the relay sent for `ttl` seconds; each sent part matches one echo.

    Parts are indexed by nonce and by channel and text, so noting a part and recognising an
    echo cost the same however many parts were sent within `ttl`.
    """

    def __init__(self, ttl: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._sent: deque[_Sent] = deque()  # oldest first
        self._by_key: dict[_Key, deque[_Sent]] = {}
        self._count = 0

    def expect(self, nonce: str, channel: str, content: str) -> None:
        """Note a part the relay is about to send."""
        self._forget_old()
        self._count += 1
        sent = _Sent(
            (("nonce", nonce), ("text", channel, content.strip())), self._clock(), self._count
        )
        self._sent.append(sent)
        for key in sent.keys:
            self._by_key.setdefault(key, deque()).append(sent)

    def is_echo(self, channel: str, content: str, nonce: str | None) -> bool:
        """True (once) if this owner message is the echo of a part the relay sent.

        Matches by nonce where the event echoes ours, else by channel and text; the oldest such
        part is the one matched.
        """
        self._forget_old()
        by_text = self._first(("text", channel, content.strip()))
        by_nonce = self._first(("nonce", nonce)) if nonce is not None else None
        found = [sent for sent in (by_nonce, by_text) if sent is not None]
        if not found:
            return False
        min(found, key=lambda sent: sent.order).matched = True
        return True

    def _first(self, key: _Key) -> _Sent | None:
        """The oldest part known by `key` that no echo has matched yet."""
        parts = self._by_key.get(key)
        while parts and parts[0].matched:
            parts.popleft()
        if parts is None:
            return None
        if not parts:
            del self._by_key[key]
            return None
        return parts[0]

    def _forget_old(self) -> None:
        horizon = self._clock() - self._ttl
        while self._sent and self._sent[0].at < horizon:
            sent = self._sent.popleft()
            for key in sent.keys:
                parts = self._by_key.get(key)
                if parts and parts[0] is sent:
                    parts.popleft()
                    if not parts:
                        del self._by_key[key]
