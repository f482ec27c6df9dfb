"""The bot's side of a conversation: the system prompt (with who writes and when, as the relay's),
the message read as the relay reads it (images, voice transcripts, text files, what it replies
to), the memory window (within CONTEXT_TOKENS and, with SUMMARIZE, with a summary of older turns:
the relay's `PromptWindow`), the LLM, the record.

Shared by replies to messages and by the slash commands, over the gateway or HTTP.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from server.bot.state import MAIN_SESSION, BotStateStore, memory_key
from server.config import Settings
from server.conversation.memory import MemoryStore, PairKey
from server.conversation.placeholders import turn_text
from server.conversation.prompt_context import OwnerContext, PromptContext, system_prompt
from server.conversation.prompt_window import PromptWindow, SummaryStore, history_limit
from server.conversation.reply_writer import participant_name
from server.conversation.rules import WILDCARD, Rule, RuleSet
from server.conversation.tokens import TokenCounter
from server.llm.base import ChatMessage, GenerationOptions, LLMBackend, LLMError
from server.media.attachment_reader import AttachmentReader, sends_images
from server.owner.away_schedule import zone_named
from server.storage.conversations import Turn, Window
from server.storage.store_guard import StoreGuard
from server.transport.protocol import IncomingMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """Text to send; `remember_as` is the memory key to record it under once it is delivered
    (None: a one-off or FALLBACK_MESSAGE, not remembered)."""

    text: str
    remember_as: PairKey | None


class Responder:
    """Turns what a person wrote into an answer in their persona and current session."""

    def __init__(
        self,
        *,
        settings: Settings,
        rules: Callable[[], RuleSet],
        llm: LLMBackend,
        memory: MemoryStore,
        state: BotStateStore,
        stored: StoreGuard,
        summaries: SummaryStore | None = None,
        tokens: TokenCounter | None = None,
    ) -> None:
        """`stored` guards every call to `memory`, `state` and `summaries`: a database error costs
        memory (a turn not kept, the default persona and session), never an answer.
        `summaries`: the store behind `memory` when it keeps summaries (the database); without
        it, SUMMARIZE does not apply and turns that do not fit are dropped."""
        self._settings = settings
        self._rules = rules
        self._llm = llm
        self._memory = memory
        self._state = state
        self._stored = stored
        self._summaries = summaries
        self._window = PromptWindow(
            settings=settings,
            llm=llm,
            tokens=tokens or TokenCounter(),
            save_summary=self._save_summary if summaries is not None else None,
        )
        self._reader = AttachmentReader(settings)
        self._zone = zone_named(settings.TIMEZONE)

    async def system_prompt(self, pair: PairKey, rule: Rule) -> str:
        """The persona chosen with /persona if PERSONAS still has it, else the rule's own."""
        rules = self._rules()
        name = await self._stored(self._state.persona(pair), None, read_only=True)
        if name is not None:
            prompt = rules.persona(name)
            if prompt is not None:
                return prompt
            log.debug("persona %r of %s is no longer in PERSONAS; using the rule's", name, pair)
        return rules.system_prompt(rule)

    async def current_memory_key(self, pair: PairKey) -> PairKey:
        """Where the turns of `pair`'s current session are kept."""
        session = self._state.current_session(pair)
        return memory_key(pair, await self._stored(session, MAIN_SESSION, read_only=True))

    async def answer(self, pair: PairKey, message: IncomingMessage, rule: Rule) -> Answer | None:
        """Answer `message` with the current session's memory: its attachments read (images for
        a model that takes them), the sender and the time in the system prompt. The person's turn
        is remembered now (as read: transcripts, placeholders), the answer by `remember` once it
        is delivered. None when there is nothing to send."""
        key = await self.current_memory_key(pair)
        length = self._memory_length(rule)
        window = await self._history(key, history_limit(self._settings, length))
        read = await self._reader.read(
            message,
            images=sends_images(self._settings, rule),
            inline_chars=self._settings.CONTEXT_TOKENS * 2,  # files: about half the budget
        )
        turn = Turn(0, 0, "message", read.text, read.images)
        context = PromptContext(
            message.author.name,
            OwnerContext(note=self._settings.AWAY_NOTE),
            time.time(),
            self._zone,
        )
        chat = await self._chat(
            pair, key, rule, window, [turn], max_history=2 * length, context=context
        )
        if rule.user == WILDCARD:  # where anyone may write, their turn carries their name
            name = participant_name(message.author.name)
            chat = [replace(m, name=name) if m is chat[-1] else m for m in chat]
        await self._remember(key, ChatMessage("user", read.text))
        reply = await self._generate(chat, rule)
        if reply is not None:
            return Answer(reply, remember_as=key)
        return self._fallback()

    async def ask(self, pair: PairKey, prompt: str, rule: Rule) -> Answer | None:
        """A one-off answer to `prompt` in the person's persona: no history, nothing remembered."""
        turn = _user_turn(prompt)
        chat = await self._chat(pair, pair, rule, Window(None, []), [turn], max_history=0)
        reply = await self._generate(chat, rule)
        return Answer(reply, remember_as=None) if reply is not None else self._fallback()

    async def remember_unanswered(self, pair: PairKey, message: IncomingMessage) -> None:
        """Remember what the person wrote though it gets no answer (a guard rail held it back),
        with placeholders for what it carries, so a later answer knows it, as the relay does."""
        text = turn_text(message)
        await self._remember(await self.current_memory_key(pair), ChatMessage("user", text))

    async def remember(self, answer: Answer) -> None:
        """Record a delivered answer as the assistant's turn (one-offs and fallbacks are not)."""
        if answer.remember_as is not None:
            await self._remember(answer.remember_as, ChatMessage("assistant", answer.text))

    def _memory_length(self, rule: Rule) -> int:
        """Interactions remembered for `rule`'s pairs: its own setting, else MEMORY_LENGTH."""
        if rule.memory_length is not None:
            return rule.memory_length
        return self._settings.MEMORY_LENGTH

    async def _history(self, key: PairKey, limit: int) -> Window:
        """The last `limit` turns remembered under `key`, and the summary before them if kept."""
        if self._summaries is not None:
            window = self._summaries.window(key, limit=limit)
            return await self._stored(window, Window(None, []), read_only=True)
        recent = await self._stored(self._memory.recent(key, limit), [], read_only=True)
        return Window(None, [_turn(message) for message in recent])

    async def _remember(self, key: PairKey, message: ChatMessage) -> None:
        await self._stored(self._memory.add(key, message), None)

    async def _save_summary(self, pair: PairKey, text: str, covers_through: int) -> None:
        assert self._summaries is not None  # only handed to the window with a summary store
        await self._stored(self._summaries.save_summary(pair, text, covers_through), None)

    async def _chat(
        self,
        pair: PairKey,
        key: PairKey,
        rule: Rule,
        window: Window,
        newest: Sequence[Turn],
        *,
        max_history: int,
        context: PromptContext | None = None,
    ) -> list[ChatMessage]:
        """The system prompt (told `context`, who writes and when, if given) and the turns of
        `window`, then `newest` (never dropped), within CONTEXT_TOKENS by the relay's window:
        with SUMMARIZE, what does not fit is summarised under memory key `key`, else the oldest
        turns go first; an over-long newest one is cut."""
        persona = await self.system_prompt(pair, rule)
        return await self._window.build(
            key,
            prompt=persona if context is None else system_prompt(persona, context),
            summary=window.summary,
            history=window.turns,
            newest=newest,
            max_history=max_history,
            model=rule.model,
        )

    async def _generate(self, chat: list[ChatMessage], rule: Rule) -> str | None:
        options = GenerationOptions(
            max_tokens=rule.max_tokens or self._settings.MAX_TOKENS,
            model=rule.model,
            temperature=rule.temperature,
        )
        try:
            reply = (await self._llm.complete(chat, options)).strip()
        except LLMError as exc:
            log.error("no answer from the LLM: %s", exc)
            return None
        if not reply:
            log.error("no answer: the LLM returned only whitespace")
            return None
        return reply

    async def aclose(self) -> None:
        """Close the attachment reader's connections."""
        await self._reader.aclose()

    def _fallback(self) -> Answer | None:
        fallback = self._settings.FALLBACK_MESSAGE.strip()
        return Answer(fallback, remember_as=None) if fallback else None


def _user_turn(text: str) -> Turn:
    """What the person asked now, as the window sees it (not stored yet: no id or position)."""
    return Turn(0, 0, "message", text)


def _turn(message: ChatMessage) -> Turn:
    """A turn of a store without positions (never summarised, so none is needed)."""
    return Turn(0, 0, "message" if message.role == "user" else "reply", message.content)
