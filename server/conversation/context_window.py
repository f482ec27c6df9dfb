"""Which turns of a conversation fit the model's context: a pure function of turns and counts."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from server.conversation.tokens import TOKENS_PER_MESSAGE

REPLY_PRIMING_TOKENS = 3
"""Tokens the chat format adds before the model's answer."""


class Entry(Protocol):
    """One turn as the window sees it: a dataclass with its text (a stored `Turn` for the relay,
    a `ChatMessage` for the bot)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def content(self) -> str:
        """The turn's text."""
        ...


EntryT = TypeVar("EntryT", bound=Entry)


@dataclass(frozen=True)
class FittedWindow(Generic[EntryT]):
    """The turns to send (oldest first) and the older ones that did not fit."""

    kept: list[EntryT]
    dropped: list[EntryT]


def fit_window(
    system: str,
    turns: Sequence[EntryT],
    *,
    newest: int,
    max_history: int,
    budget: int,
    count: Callable[[str], int],
    ceiling: Callable[[str], int] | None = None,
) -> FittedWindow[EntryT]:
    """Keep the system prompt and the newest turn, then as many others as fit, newest first.

    `turns` ends with the `newest` messages being answered now; the turns before them are
    history, of which at most `max_history` are kept. Turns are dropped oldest first until the
    total (system prompt included) is within `budget` tokens; if the system prompt and the newest
    turn alone exceed it, the newest turn is truncated, never dropped. `ceiling`, a quick count
    that is never below `count`: when every turn fits by it, `count` is not called at all.
    """
    if not turns:
        return FittedWindow([], [])
    history_start = max(len(turns) - newest - max_history, 0)
    over_count, candidates = list(turns[:history_start]), list(turns[history_start:])
    if ceiling is not None and window_cost(system, candidates, ceiling) <= budget:
        return FittedWindow(kept=candidates, dropped=over_count)
    last = candidates.pop()
    costs = [count(turn.content) + TOKENS_PER_MESSAGE for turn in candidates]
    fixed = (
        (count(system) + TOKENS_PER_MESSAGE if system else 0)
        + count(last.content)
        + TOKENS_PER_MESSAGE
        + REPLY_PRIMING_TOKENS
    )
    total = fixed + sum(costs)
    first_kept = 0
    while first_kept < len(candidates) and total > budget:
        total -= costs[first_kept]
        first_kept += 1
    if total > budget:
        room = budget - (fixed - count(last.content))
        last = dataclasses.replace(last, content=truncate(last.content, room, count))
    return FittedWindow(
        kept=[*candidates[first_kept:], last], dropped=over_count + candidates[:first_kept]
    )


def window_cost(system: str, turns: Sequence[Entry], count: Callable[[str], int]) -> int:
    """Tokens of a request with the system prompt and all of `turns`, counted by `count`."""
    return (
        (count(system) + TOKENS_PER_MESSAGE if system else 0)
        + sum(count(turn.content) + TOKENS_PER_MESSAGE for turn in turns)
        + REPLY_PRIMING_TOKENS
    )


def truncate(text: str, tokens: int, count: Callable[[str], int]) -> str:
    """The longest start of `text` that is at most `tokens` tokens (at least one character)."""
    low, high = 1, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if count(text[:middle]) <= tokens:
            low = middle
        else:
            high = middle - 1
    return text[:low]
