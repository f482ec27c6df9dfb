"""What to say: one reply to a burst, written by the LLM backends from the pair's memory.

The prompt is the rule's system prompt, the pair's remembered turns (and, with SUMMARIZE, a
summary of older ones) and the burst, trimmed to CONTEXT_TOKENS; when no backend answers, the
reply is FALLBACK_MESSAGE, if there is one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from server.config import Settings
from server.context_window import fit_window, window_cost
from server.conversations import FALLBACK_BACKEND, ConversationStore, Turn, Window
from server.inbox import Pending
from server.llm.base import ChatMessage, GenerationOptions, LLMError
from server.llm.chain import BackendChain
from server.memory import PairKey
from server.rules import RuleSet
from server.store_guard import StoreGuard
from server.summarizer import summarize
from server.tokens import TokenCounter, token_ceiling

log = logging.getLogger(__name__)

SUMMARY_BACKLOG = 50
"""With SUMMARIZE, how many turns beyond the window are read so they can be summarised."""


@dataclass(frozen=True)
class Reply:
    """Text to send, who wrote it (a backend, or "fallback": FALLBACK_MESSAGE) and how long it
    took."""

    text: str
    backend: str
    seconds: float | None = None


class ReplyWriter:
    """Writes the replies of every pair: builds each prompt and asks the backends."""

    def __init__(
        self,
        *,
        settings: Settings,
        rules: Callable[[], RuleSet],
        llm: BackendChain,
        store: ConversationStore,
        stored: StoreGuard,
        tokens: TokenCounter,
    ) -> None:
        self._settings = settings
        self._rules = rules
        self._llm = llm
        self._store = store
        self._stored = stored
        self._tokens = tokens

    async def write(self, pair: PairKey, batch: list[Pending]) -> Reply | None:
        """Ask the backends for a reply to `batch`, with the pair's memory; the fallback if none."""
        newest = batch[-1]
        rule = newest.rule
        options = GenerationOptions(
            max_tokens=rule.max_tokens or self._settings.MAX_TOKENS,
            model=rule.model,
            temperature=rule.temperature,
        )
        chat = await self._prompt(pair, batch)
        started = time.monotonic()
        try:
            completion = await self._llm.answer(chat, options)
            seconds = time.monotonic() - started
            return Reply(completion.text.strip(), completion.backend, seconds)
        except LLMError as exc:
            log.error("no reply to message %s from the LLM: %s", newest.message.id, exc)
        fallback = self._settings.FALLBACK_MESSAGE.strip()
        return Reply(fallback, FALLBACK_BACKEND) if fallback else None

    async def _prompt(self, pair: PairKey, batch: list[Pending]) -> list[ChatMessage]:
        """System prompt, remembered turns and the burst, trimmed to the token budget."""
        settings, rule = self._settings, batch[-1].rule
        memory_length = (
            rule.memory_length if rule.memory_length is not None else settings.MEMORY_LENGTH
        )
        batch_ids = {pending.turn_id for pending in batch}
        upto = batch[-1].turn_id
        limit = 2 * memory_length + len(batch) + (SUMMARY_BACKLOG if settings.SUMMARIZE else 0)
        window = await self._stored(
            self._store.window(pair, limit=limit, upto=upto), Window(None, [])
        )
        history = [turn for turn in window.turns if turn.id not in batch_ids]
        burst = [Turn(p.turn_id or 0, 0, "message", p.message.content) for p in batch]
        model = rule.model or settings.OPENAI_MODEL
        prompt = self._rules().system_prompt(rule)
        summary = window.summary

        async def fit(summary: str | None) -> tuple[str, list[Turn], list[Turn]]:
            system = prompt + (f"\n\nEarlier in this conversation: {summary}" if summary else "")
            turns = [*history, *burst]
            # Most windows fit by their bytes alone; the others need the encoding, loaded once.
            over = window_cost(system, turns, token_ceiling) > settings.CONTEXT_TOKENS
            if over and not self._tokens.loaded(model):
                await asyncio.to_thread(self._tokens.load, model)
            fitted = fit_window(
                system,
                turns,
                newest=len(burst),
                max_history=2 * memory_length,
                budget=settings.CONTEXT_TOKENS,
                count=lambda text: self._tokens.count(text, model),
                ceiling=token_ceiling,
            )
            return system.strip(), fitted.kept, fitted.dropped

        system, kept, dropped = await fit(summary)
        if settings.SUMMARIZE and dropped:
            summary = await self._summarize(pair, summary, dropped, rule.model)
            if summary is not None:
                system, kept, _ = await fit(summary)
        return [
            *([ChatMessage("system", system)] if system else []),
            *(turn.as_chat() for turn in kept),
        ]

    async def _summarize(
        self, pair: PairKey, previous: str | None, dropped: list[Turn], model: str | None
    ) -> str | None:
        """Fold `dropped` into the pair's summary and store it; None (drop them) on failure."""
        try:
            summary = await summarize(self._llm, previous, dropped, model)
        except LLMError as exc:
            log.warning("could not summarise older turns, dropping them instead: %s", exc)
            return None
        covered = max(turn.position for turn in dropped)
        await self._stored(self._store.save_summary(pair, summary, covered), None)
        return summary
