"""Registering the slash commands so that a refusal costs the commands, never the answers.

A Discord-compatible server may refuse the bulk overwrite (Spacebar's schema has no
`max_length`), and Discord itself may be down for a while: the refusal is logged once, messages
are answered meanwhile, and the overwrite is tried again with a growing delay until it works.
Neither Discord library is used here: the adapter passes a `register` coroutine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 30.0
MAX_RETRY_SECONDS = 3600.0

Register = Callable[[], Awaitable[str | None]]
"""One bulk overwrite: None once registered, else what the server said (no token in it)."""

_COMMAND_INDEX = re.compile(r"\bIn (\d+)\b")


def retry_delays(first: float, most: float) -> Iterator[float]:
    """`first`, then doubling up to `most`, forever."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, most)


def name_commands(refusal: str, commands: Sequence[Mapping[str, Any]]) -> str:
    """The server's refusal on one line, each command's index ("In 1.options.0: …") replaced by
    its name ("In /persona.options.0: …"), so the line says which command was refused."""

    def named(match: re.Match[str]) -> str:
        index = int(match[1])
        return f"In /{commands[index]['name']}" if index < len(commands) else match[0]

    return "; ".join(_COMMAND_INDEX.sub(named, line.strip()) for line in refusal.splitlines())


class CommandRegistration:
    """Registers the commands once (`start`), and if refused keeps trying in the background.

    `refusal` holds what the server last said while the commands are not registered.
    """

    def __init__(
        self,
        register: Register,
        commands: Sequence[Mapping[str, Any]],
        *,
        first_retry: float | None = None,
        max_retry: float | None = None,
    ) -> None:
        self._register = register
        self._commands = commands
        self._first = FIRST_RETRY_SECONDS if first_retry is None else first_retry
        self._most = MAX_RETRY_SECONDS if max_retry is None else max_retry
        self._retrying: asyncio.Task[None] | None = None
        self.registered = False
        self.refusal: str | None = None
        self.attempts = 0

    @property
    def names(self) -> str:
        """The commands, as a person types them: "/reset, /persona, …"."""
        return ", ".join(f"/{command['name']}" for command in self._commands)

    async def start(self) -> None:
        """Try once now; if refused, log it and go on trying in the background."""
        if await self._attempt():
            return
        delays = retry_delays(self._first, self._most)
        first = next(delays)
        log.warning(
            "the slash commands (%s) are not registered: the server refused them: %s; "
            "messages are still answered, trying again in %.0f s",
            self.names,
            self.refusal,
            first,
        )
        self._retrying = asyncio.create_task(self._keep_trying(first, delays))

    async def stop(self) -> None:
        """Stop trying."""
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying
            self._retrying = None

    async def _keep_trying(self, first: float, delays: Iterator[float]) -> None:
        delay = first
        while True:
            await asyncio.sleep(delay)
            if await self._attempt():
                log.info(
                    "registered %d slash commands at attempt %d",
                    len(self._commands),
                    self.attempts,
                )
                return
            delay = next(delays)
            log.debug("slash commands still refused (%s); next try in %.0f s", self.refusal, delay)

    async def _attempt(self) -> bool:
        self.attempts += 1
        refusal = await self._register()
        if refusal is None:
            self.registered, self.refusal = True, None
            return True
        self.refusal = name_commands(refusal, self._commands)
        return False
