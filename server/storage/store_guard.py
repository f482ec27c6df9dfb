"""Store calls on a reply's path: a database error costs memory, never a reply.

The relay and its helpers (and the bot's responder) await every store operation through one
`StoreGuard`, so a failing database is logged once (and its recovery once), however many parts
hit it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

from server.storage.database import DatabaseError

log = logging.getLogger(__name__)

T = TypeVar("T")


class StoreGuard:
    """Awaits store operations, carrying on with a default when the database fails."""

    def __init__(self, database: str) -> None:
        """`database`: the file, as the recovery's log line names it."""
        self._database = database
        self._database_ok = True

    async def __call__(self, operation: Awaitable[T], default: T, *, read_only: bool = False) -> T:
        """Await a store operation; on a database error log it (once until it recovers) and
        carry on with `default`, answering from what is at hand.

        Only a write that works declares the database recovered (`read_only` operations do
        not): a file that can be read but not written is logged once, not once per message.
        """
        try:
            result = await operation
        except DatabaseError as exc:
            if self._database_ok:
                log.error("%s; replies go on, but this is not remembered", exc)
            self._database_ok = False
            return default
        if not self._database_ok and not read_only:
            log.info("the database %s works again", self._database)
            self._database_ok = True
        return result
