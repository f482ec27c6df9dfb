"""What the bot remembers besides the conversation: each person's persona and sessions per channel.

A person's sessions in a channel are separate conversations. The first one, `MAIN_SESSION`, keeps
its turns under the plain (user, channel) pair, so it is the same conversation the relay would
keep for that pair; a session made with `/session new` keeps them under
(user, "CHANNEL/session/TITLE") in the same `MemoryStore` (see `memory_key`), so a persistent
store holds every session without a schema of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from server.conversation.memory import PairKey

MAIN_SESSION = "main"
"""The title of the session every person starts with in a channel."""
MAX_TITLE_LENGTH = 50
SESSION_MARK = "/session/"
"""Between the channel and the session title in the memory key of a session but the main one."""


def memory_key(pair: PairKey, session: str) -> PairKey:
    """The `MemoryStore` key of `session` of `pair`: the pair itself for the main session."""
    user_id, channel_id = pair
    if session == MAIN_SESSION:
        return pair
    return (user_id, f"{channel_id}{SESSION_MARK}{session}")


def pair_of(key: PairKey) -> PairKey:
    """The (user, channel) pair whose session `key` (a `memory_key`) is."""
    user_id, channel_id = key
    return (user_id, channel_id.split(SESSION_MARK, 1)[0])


class BotStateStore(Protocol):
    """Per (user, channel): the persona chosen with /persona and the sessions made with /session."""

    async def persona(self, pair: PairKey) -> str | None:
        """The persona name chosen for `pair`, or None for the rule's own."""
        ...

    async def set_persona(self, pair: PairKey, name: str | None) -> None:
        """Choose persona `name` for `pair` (None: back to the rule's own)."""
        ...

    async def sessions(self, pair: PairKey) -> list[str]:
        """The titles of `pair`'s sessions, oldest first, `MAIN_SESSION` always first."""
        ...

    async def current_session(self, pair: PairKey) -> str:
        """The title of the session `pair`'s messages go to."""
        ...

    async def add_session(self, pair: PairKey, title: str) -> bool:
        """Create session `title` and make it current; False (and no change) if it exists."""
        ...

    async def switch_session(self, pair: PairKey, title: str) -> bool:
        """Make session `title` current; False (and no change) if there is none by that title."""
        ...


@dataclass
class _PairState:
    persona: str | None = None
    sessions: list[str] = field(default_factory=lambda: [MAIN_SESSION])
    current: str = MAIN_SESSION


class InMemoryBotState:
    """A `BotStateStore` in process memory (tests, and until a persistent one is wired in)."""

    def __init__(self) -> None:
        self._pairs: dict[PairKey, _PairState] = {}

    def _get(self, pair: PairKey) -> _PairState:
        return self._pairs.get(pair) or _PairState()

    def _edit(self, pair: PairKey) -> _PairState:
        return self._pairs.setdefault(pair, _PairState())

    async def persona(self, pair: PairKey) -> str | None:
        """The persona name chosen for `pair`, or None for the rule's own."""
        return self._get(pair).persona

    async def set_persona(self, pair: PairKey, name: str | None) -> None:
        """Choose persona `name` for `pair` (None: back to the rule's own)."""
        self._edit(pair).persona = name

    async def sessions(self, pair: PairKey) -> list[str]:
        """The titles of `pair`'s sessions, oldest first, `MAIN_SESSION` always first."""
        return list(self._get(pair).sessions)

    async def current_session(self, pair: PairKey) -> str:
        """The title of the session `pair`'s messages go to."""
        return self._get(pair).current

    async def add_session(self, pair: PairKey, title: str) -> bool:
        """Create session `title` and make it current; False (and no change) if it exists."""
        state = self._edit(pair)
        if title in state.sessions:
            return False
        state.sessions.append(title)
        state.current = title
        return True

    async def switch_session(self, pair: PairKey, title: str) -> bool:
        """Make session `title` current; False (and no change) if there is none by that title."""
        state = self._get(pair)
        if title not in state.sessions:
            return False
        self._edit(pair).current = title
        return True
