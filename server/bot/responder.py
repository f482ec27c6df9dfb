"""The bot's side of a conversation: the system prompt, the memory window, the LLM, the record.

Shared by replies to messages and by the slash commands, over the gateway or HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from server.bot.state import BotStateStore, memory_key
from server.config import Settings
from server.llm.base import ChatMessage, GenerationOptions, LLMBackend, LLMError
from server.memory import MemoryStore, PairKey
from server.rules import Rule, RuleSet

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
    ) -> None:
        self._settings = settings
        self._rules = rules
        self._llm = llm
        self._memory = memory
        self._state = state

    async def system_prompt(self, pair: PairKey, rule: Rule) -> str:
        """The persona chosen with /persona if PERSONAS still has it, else the rule's own."""
        rules = self._rules()
        name = await self._state.persona(pair)
        if name is not None:
            prompt = rules.persona(name)
            if prompt is not None:
                return prompt
            log.debug("persona %r of %s is no longer in PERSONAS; using the rule's", name, pair)
        return rules.system_prompt(rule)

    async def current_memory_key(self, pair: PairKey) -> PairKey:
        """Where the turns of `pair`'s current session are kept."""
        return memory_key(pair, await self._state.current_session(pair))

    async def answer(self, pair: PairKey, text: str, rule: Rule) -> Answer | None:
        """Answer `text` with the current session's memory; the person's turn is remembered now,
        the answer by `remember` once it is delivered. None when there is nothing to send."""
        key = await self.current_memory_key(pair)
        length = (
            rule.memory_length if rule.memory_length is not None else self._settings.MEMORY_LENGTH
        )
        history = await self._memory.recent(key, 2 * length)
        user_turn = ChatMessage("user", text)
        chat = [*await self._system(pair, rule), *history, user_turn]
        await self._memory.add(key, user_turn)
        reply = await self._generate(chat, rule)
        if reply is not None:
            return Answer(reply, remember_as=key)
        return self._fallback()

    async def ask(self, pair: PairKey, prompt: str, rule: Rule) -> Answer | None:
        """A one-off answer to `prompt` in the person's persona: no history, nothing remembered."""
        reply = await self._generate(
            [*await self._system(pair, rule), ChatMessage("user", prompt)], rule
        )
        return Answer(reply, remember_as=None) if reply is not None else self._fallback()

    async def remember(self, answer: Answer) -> None:
        """Record a delivered answer as the assistant's turn (one-offs and fallbacks are not)."""
        if answer.remember_as is not None:
            await self._memory.add(answer.remember_as, ChatMessage("assistant", answer.text))

    async def _system(self, pair: PairKey, rule: Rule) -> list[ChatMessage]:
        prompt = await self.system_prompt(pair, rule)
        return [ChatMessage("system", prompt)] if prompt else []

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

    def _fallback(self) -> Answer | None:
        fallback = self._settings.FALLBACK_MESSAGE.strip()
        return Answer(fallback, remember_as=None) if fallback else None
