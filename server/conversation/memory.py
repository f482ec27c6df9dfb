"""Rolling conversation memory per (user, channel) pair, behind a small store interface."""

from __future__ import annotations

from collections import deque
from typing import Protocol

from server.llm.base import ChatMessage

MAX_MEMORY_LENGTH = 50
"""Most interactions (user turn + reply) a pair may be configured to remember."""

PairKey = tuple[str, str]
"""(user id, channel id) of the person the relay talks with."""


class MemoryStore(Protocol):
    """Where turns are kept; a persistent store can replace the in-memory one."""

    async def recent(self, pair: PairKey, turns: int) -> list[ChatMessage]:
        """The last `turns` turns of `pair`, oldest first."""
        ...

    async def add(self, pair: PairKey, message: ChatMessage) -> None:
        """Append one turn to `pair`."""
        ...

    async def reset(self, pair: PairKey) -> None:
        """Start `pair` afresh: later `recent` calls see only turns added after this."""
        ...


class InMemoryStore:
    """Keeps the last `capacity` turns of each pair in process memory."""

    def __init__(self, capacity: int = 2 * MAX_MEMORY_LENGTH) -> None:
        self._capacity = capacity
        self._turns: dict[PairKey, deque[ChatMessage]] = {}

    async def recent(self, pair: PairKey, turns: int) -> list[ChatMessage]:
        """The last `turns` turns of `pair`, oldest first."""
        history = self._turns.get(pair)
        if not history or turns <= 0:
            return []
        return list(history)[-turns:]

    async def add(self, pair: PairKey, message: ChatMessage) -> None:
        """Append one turn to `pair`, forgetting the oldest beyond capacity."""
        self._turns.setdefault(pair, deque(maxlen=self._capacity)).append(message)

    async def reset(self, pair: PairKey) -> None:
        """Forget every turn of `pair`."""
        self._turns.pop(pair, None)
