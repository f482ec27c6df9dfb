"""Recognising the relay's own replies when Discord echoes them back as the owner's messages."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Sent:
    nonce: str
    channel: str
    content: str
    at: float


class EchoTracker:
    """Remembers what the relay sent for `ttl` seconds; each sent part matches one echo.

    Parts are kept oldest first, so forgetting costs only the parts forgotten.
    """

    def __init__(self, ttl: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._sent: deque[_Sent] = deque()
        self._echoed: dict[str, float] = {}
        """The nonces whose echo came back, with when: oldest first."""

    def expect(self, nonce: str, channel: str, content: str) -> None:
        """Note a part the relay is about to send."""
        self._forget_old()
        self._sent.append(_Sent(nonce, channel, content, self._clock()))

    def is_echo(self, channel: str, content: str, nonce: str | None) -> bool:
        """True (once) if this owner message is the echo of a part the relay sent.

        Matches by nonce where the event echoes ours, else by channel and text.
        """
        self._forget_old()
        for index, sent in enumerate(self._sent):
            if (nonce is not None and nonce == sent.nonce) or (
                channel == sent.channel and content.strip() == sent.content.strip()
            ):
                del self._sent[index]
                self._echoed[sent.nonce] = self._clock()
                return True
        return False

    def was_echoed(self, nonce: str) -> bool:
        """True if the echo of the part sent with `nonce` came back: Discord has that message."""
        self._forget_old()
        return nonce in self._echoed

    def _forget_old(self) -> None:
        horizon = self._clock() - self._ttl
        while self._sent and self._sent[0].at < horizon:
            self._sent.popleft()
        while self._echoed:
            nonce, at = next(iter(self._echoed.items()))
            if at >= horizon:
                break
            del self._echoed[nonce]
