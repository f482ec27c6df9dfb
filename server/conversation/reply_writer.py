"""What to say: one reply to a burst, written by the LLM backends from the pair's memory.

The prompt is the rule's system prompt, the pair's remembered turns (and, with SUMMARIZE, a
summary of older ones) and the burst, trimmed to CONTEXT_TOKENS by `PromptWindow`; when no backend
answers, the reply is FALLBACK_MESSAGE, if there is one.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from server.config import Settings
from server.conversation.inbox import Pending
from server.conversation.memory import PairKey
from server.conversation.placeholders import turn_text
from server.conversation.prompt_context import OwnerContext, PromptContext, system_prompt
from server.conversation.prompt_window import PromptWindow, history_limit
from server.conversation.rules import WILDCARD, Rule, RuleSet
from server.conversation.tokens import TokenCounter
from server.llm.base import ChatMessage, GenerationOptions, LLMError
from server.llm.chain import BackendChain
from server.media.attachment_reader import AttachmentReader, ReadMessage, sends_images
from server.owner.away_schedule import zone_named
from server.owner.style_profile import PROFILE_KEY, with_style
from server.storage.conversations import FALLBACK_BACKEND, ConversationStore, Turn, Window
from server.storage.owner_store import OwnerStore
from server.storage.store_guard import StoreGuard

log = logging.getLogger(__name__)


def participant_name(name: str) -> str:
    """A name as OpenAI's `name` field takes it: letters, digits, _ and -, at most 64."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:64] or "someone"


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
        owner: Callable[[], OwnerContext],
    ) -> None:
        """`owner`: the owner's name, absence and away note now, for the system prompt."""
        self._settings = settings
        self._owner = owner
        self._zone = zone_named(settings.TIMEZONE)
        self._rules = rules
        self._llm = llm
        self._store = store
        self._stored = stored
        self._window = PromptWindow(
            settings=settings, llm=llm, tokens=tokens, save_summary=self._save_summary
        )
        self._reader = AttachmentReader(settings)

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
        """System prompt, remembered turns (and summary) and the burst, within the token budget."""
        settings, rule = self._settings, batch[-1].rule
        memory_length = (
            rule.memory_length if rule.memory_length is not None else settings.MEMORY_LENGTH
        )
        batch_ids = {pending.turn_id for pending in batch}
        upto = batch[-1].turn_id
        limit = history_limit(settings, memory_length) + len(batch)
        window = await self._stored(
            self._store.window(pair, limit=limit, upto=upto), Window(None, []), read_only=True
        )
        read = await self._read(batch, rule)
        sender = batch[-1].message.author.name
        context = PromptContext(sender, self._owner(), time.time(), self._zone)
        prompt = system_prompt(self._rules().system_prompt(rule), context)
        chat = await self._window.build(
            pair,
            prompt=with_style(prompt, await self._style(rule)),
            summary=window.summary,
            history=[turn for turn in window.turns if turn.id not in batch_ids],
            newest=[
                Turn(p.turn_id or 0, 0, "message", message.text, message.images)
                for p, message in zip(batch, read, strict=True)
            ],
            max_history=2 * memory_length,
            model=rule.model,
        )
        if rule.user != WILDCARD:
            return chat
        # Where anyone may write, each of their turns carries their name.
        name = participant_name(sender)
        return [replace(m, name=name) if m.role == "user" else m for m in chat]

    async def _style(self, rule: Rule) -> str:
        """The owner's style profile when STYLE (or the rule's "style") is on; else ""."""
        if not (rule.style if rule.style is not None else self._settings.STYLE):
            return ""
        state = OwnerStore(self._store).owner_state()
        return (await self._stored(state, {}, read_only=True)).get(PROFILE_KEY, "")

    async def _read(self, batch: list[Pending], rule: Rule) -> list[ReadMessage]:
        """The burst's messages with their attachments read (images only for a model that takes
        them); a message whose text changed (a transcript, a file) is remembered that way."""
        images = sends_images(self._settings, rule)
        # Inlined files may take about half of CONTEXT_TOKENS (some 4 characters a token).
        inline_chars = self._settings.CONTEXT_TOKENS * 2
        read = await asyncio.gather(
            *(self._reader.read(p.message, images=images, inline_chars=inline_chars) for p in batch)
        )
        for pending, message in zip(batch, read, strict=True):
            if pending.turn_id and message.text != turn_text(pending.message):
                await self._stored(self._store.rewrite_message(pending.turn_id, message.text), None)
        return list(read)

    async def aclose(self) -> None:
        """Close the attachment reader's connections."""
        await self._reader.aclose()

    async def _save_summary(self, pair: PairKey, text: str, covers_through: int) -> None:
        await self._stored(self._store.save_summary(pair, text, covers_through), None)
