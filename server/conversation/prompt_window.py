"""The request for one answer: the system prompt, a pair's remembered turns and the newest ones,
within CONTEXT_TOKENS; with SUMMARIZE the turns that do not fit are folded into the pair's stored
summary, which is sent with the system prompt, instead of dropped.

Shared by the relay's `ReplyWriter` and the bot's `Responder`: one way to fit and summarise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from server.config import Settings
from server.conversation.context_window import fit_window, window_cost
from server.conversation.memory import PairKey
from server.conversation.summarizer import summarize
from server.conversation.tokens import TokenCounter, token_ceiling
from server.llm.base import ChatMessage, LLMBackend, LLMError
from server.storage.conversations import Turn, Window

log = logging.getLogger(__name__)

SUMMARY_BACKLOG = 50
"""With SUMMARIZE, how many turns beyond the window are read so they can be summarised."""

SaveSummary = Callable[[PairKey, str, int], Awaitable[None]]
"""Stores a pair's summary of every turn up to a position (`ConversationStore.save_summary`)."""


class SummaryStore(Protocol):
    """What summarising needs of a store: turns with their positions, and the summary rows
    (`ConversationStore` has both)."""

    async def window(self, pair: PairKey, *, limit: int, upto: int | None = None) -> Window:
        """The last `limit` turns of `pair` after its newest summary, and that summary."""
        ...

    async def save_summary(self, pair: PairKey, text: str, covers_through: int) -> None:
        """Store a summary of every turn of `pair` up to position `covers_through`."""
        ...


def history_limit(settings: Settings, memory_length: int) -> int:
    """How many remembered turns to read for a window of `memory_length` interactions: with
    SUMMARIZE, a backlog beyond them, so that what falls out can be summarised."""
    return 2 * memory_length + (SUMMARY_BACKLOG if settings.SUMMARIZE else 0)


class PromptWindow:
    """Builds requests within CONTEXT_TOKENS, summarising what does not fit when SUMMARIZE is on."""

    def __init__(
        self,
        *,
        settings: Settings,
        llm: LLMBackend,
        tokens: TokenCounter,
        save_summary: SaveSummary | None,
    ) -> None:
        """`save_summary` None: nothing is summarised (a store without summary rows)."""
        self._settings = settings
        self._llm = llm
        self._tokens = tokens
        self._save_summary = save_summary

    async def build(
        self,
        pair: PairKey,
        *,
        prompt: str,
        summary: str | None,
        history: Sequence[Turn],
        newest: Sequence[Turn],
        max_history: int,
        model: str | None,
    ) -> list[ChatMessage]:
        """The system prompt (with `summary`), at most `max_history` of `history` and `newest`
        (never dropped), trimmed to the budget; with SUMMARIZE, the history that does not fit is
        folded into `summary`, stored, and the request built again with the new summary.
        `model` is the rule's (None: OPENAI_MODEL), used to count tokens and to summarise."""
        settings = self._settings
        counting_model = model or settings.OPENAI_MODEL
        turns = [*history, *newest]

        async def fit(summary: str | None) -> tuple[str, list[Turn], list[Turn]]:
            system = prompt + (f"\n\nEarlier in this conversation: {summary}" if summary else "")
            # Most windows fit by their bytes alone; the others need the encoding, loaded once.
            over = window_cost(system, turns, token_ceiling) > settings.CONTEXT_TOKENS
            if over and not self._tokens.loaded(counting_model):
                await asyncio.to_thread(self._tokens.load, counting_model)
            fitted = fit_window(
                system,
                turns,
                newest=len(newest),
                max_history=max_history,
                budget=settings.CONTEXT_TOKENS,
                count=lambda text: self._tokens.count(text, counting_model),
                ceiling=token_ceiling,
            )
            return system.strip(), fitted.kept, fitted.dropped

        system, kept, dropped = await fit(summary)
        if settings.SUMMARIZE and dropped and self._save_summary is not None:
            summary = await self._summarize(pair, summary, dropped, model, self._save_summary)
            if summary is not None:
                system, kept, _ = await fit(summary)
        return [
            *([ChatMessage("system", system)] if system else []),
            *(turn.as_chat() for turn in kept),
        ]

    async def _summarize(
        self,
        pair: PairKey,
        previous: str | None,
        dropped: list[Turn],
        model: str | None,
        save: SaveSummary,
    ) -> str | None:
        """Fold `dropped` into the pair's summary and store it; None (drop them) on failure."""
        try:
            summary = await summarize(self._llm, previous, dropped, model)
        except LLMError as exc:
            log.warning("could not summarise older turns, dropping them instead: %s", exc)
            return None
        await save(pair, summary, max(turn.position for turn in dropped))
        return summary
