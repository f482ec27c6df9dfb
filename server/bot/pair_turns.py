"""One answer at a time per (user, channel): a pair's messages and its /ask take turns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from server.conversation.memory import PairKey


class PairTurns:
    """One answer at a time per (user, channel), in arrival order; idle pairs are forgotten.

    Whoever holds a pair's turn sees every earlier answer to that pair already counted against
    its reply limits, so two answers started at the same instant cannot both pass them.
    """

    def __init__(self) -> None:
        self._locks: dict[PairKey, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def turn(self, pair: PairKey) -> AsyncIterator[None]:
        """Wait for `pair`'s turn and hold it."""
        lock, waiting = self._locks.get(pair, (asyncio.Lock(), 0))
        self._locks[pair] = (lock, waiting + 1)
        try:
            async with lock:
                yield
        finally:
            lock, waiting = self._locks[pair]
            if waiting == 1:
                del self._locks[pair]
            else:
                self._locks[pair] = (lock, waiting - 1)
