"""The life of one message: accept → match → remember → generate → send → record.

Pairs are answered concurrently; the messages of one pair in order, one reply at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from server.config import Settings
from server.echoes import EchoTracker
from server.llm.base import ChatMessage, GenerationOptions, LLMBackend, LLMError
from server.memory import MemoryStore, PairKey
from server.messengers.base import Messenger, MessengerError
from server.protocol import IncomingMessage
from server.rules import Rule, RuleSet
from server.splitter import split_message

log = logging.getLogger(__name__)

DISCORD_MESSAGE_LIMIT = 2000


@dataclass(frozen=True)
class _Reply:
    """A message from an allow-listed pair, waiting for its answer."""

    message: IncomingMessage
    rule: Rule


@dataclass(frozen=True)
class _OwnerMessage:
    """Something the owner wrote by hand in a pair's channel."""

    message: IncomingMessage


@dataclass(frozen=True)
class _Generated:
    """Text to send: the LLM's reply (remembered) or FALLBACK_MESSAGE (not remembered)."""

    reply: str
    from_llm: bool


class _SeenIds:
    """The ids of recent messages, so a plugin's re-sent buffer is not answered twice."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, message_id: str) -> bool:
        """Remember `message_id`; False if it was already seen."""
        if message_id in self._ids:
            return False
        self._ids[message_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True


def new_nonce() -> str:
    """A Discord-compatible nonce (at most 25 characters)."""
    return str(secrets.randbits(63))


class Relay:
    """Decides what to do with each forwarded message and runs one worker per busy pair."""

    def __init__(
        self,
        *,
        settings: Settings,
        rules: Callable[[], RuleSet],
        llm: LLMBackend,
        messenger: Messenger,
        memory: MemoryStore,
        echoes: EchoTracker | None = None,
    ) -> None:
        self._settings = settings
        self._rules = rules
        self._llm = llm
        self._messenger = messenger
        self._memory = memory
        self._echoes = echoes or EchoTracker()
        self._seen = _SeenIds()
        self._queues: dict[PairKey, asyncio.Queue[_Reply | _OwnerMessage]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._last_pair_in_channel: dict[str, PairKey] = {}

    def accept(self, message: IncomingMessage) -> None:
        """Take a forwarded message: queue it for a reply, or drop it with a reason (debug log)."""
        if not self._seen.add(message.id):
            log.debug("message %s already accepted; ignoring the re-send", message.id)
            return
        if message.is_self:
            self._accept_owner_message(message)
            return
        if message.author.bot:
            log.debug("message %s ignored: author is a bot", message.id)
            return
        rule = self._rules().match(message.author.id, message.channel)
        if rule is None:
            log.debug("message %s ignored: pair is not allow-listed", message.id)
            return
        if not message.content.strip():
            log.debug("message %s ignored: no text (attachment or sticker only)", message.id)
            return
        pair = (message.author.id, message.channel)
        self._last_pair_in_channel[message.channel] = pair
        self._enqueue(pair, _Reply(message, rule))

    def _accept_owner_message(self, message: IncomingMessage) -> None:
        if self._echoes.is_echo(message.channel, message.content, message.nonce):
            log.debug("message %s is the echo of our own reply; not remembered twice", message.id)
            return
        pair = self._last_pair_in_channel.get(message.channel)
        if pair is not None and message.content.strip():
            self._enqueue(pair, _OwnerMessage(message))

    def _enqueue(self, pair: PairKey, item: _Reply | _OwnerMessage) -> None:
        queue = self._queues.get(pair)
        if queue is None:
            queue = self._queues[pair] = asyncio.Queue()
            worker = asyncio.create_task(self._work(pair, queue), name=f"pair {pair}")
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)
        queue.put_nowait(item)

    async def _work(self, pair: PairKey, queue: asyncio.Queue[_Reply | _OwnerMessage]) -> None:
        """Answer the pair's messages in order; exit when its queue is empty."""
        try:
            while not queue.empty():
                item = queue.get_nowait()
                try:
                    if isinstance(item, _Reply):
                        await self._reply(pair, item)
                    else:
                        await self._memory.add(pair, ChatMessage("assistant", item.message.content))
                except Exception:
                    log.exception("unexpected error handling message %s", item.message.id)
        finally:
            del self._queues[pair]

    async def _reply(self, pair: PairKey, item: _Reply) -> None:
        message, rule = item.message, item.rule
        memory_length = (
            rule.memory_length if rule.memory_length is not None else self._settings.MEMORY_LENGTH
        )
        history = await self._memory.recent(pair, 2 * memory_length)
        user_turn = ChatMessage("user", message.content)
        prompt = self._rules().system_prompt(rule)
        chat = [*([ChatMessage("system", prompt)] if prompt else []), *history, user_turn]
        await self._memory.add(pair, user_turn)

        generated = await self._generate(message, chat, rule)
        if generated is None or not await self._send(message, generated.reply):
            return
        if generated.from_llm:
            await self._memory.add(pair, ChatMessage("assistant", generated.reply))
        log.info(
            "replied to user %s in channel %s (%d chars)",
            message.author.id,
            message.channel,
            len(generated.reply),
        )

    async def _generate(
        self, message: IncomingMessage, chat: list[ChatMessage], rule: Rule
    ) -> _Generated | None:
        options = GenerationOptions(
            max_tokens=rule.max_tokens or self._settings.MAX_TOKENS,
            model=rule.model,
            temperature=rule.temperature,
        )
        typing = asyncio.create_task(self._keep_typing(message.channel))
        try:
            reply = (await self._llm.complete(chat, options)).strip()
            if reply:
                return _Generated(reply, from_llm=True)
            log.error("no reply to message %s: the LLM returned only whitespace", message.id)
        except LLMError as exc:
            log.error("no reply to message %s from the LLM: %s", message.id, exc)
        finally:
            typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await typing
        fallback = self._settings.FALLBACK_MESSAGE.strip()
        return _Generated(fallback, from_llm=False) if fallback else None

    async def _send(self, message: IncomingMessage, reply: str) -> bool:
        """Split, prefix and post the reply; True if at least its first part was delivered."""
        prefix = self._settings.REPLY_PREFIX
        parts = split_message(reply, DISCORD_MESSAGE_LIMIT - len(prefix))
        reply_to = message.id if message.guild is not None else None
        for index, part in enumerate(parts):
            content = prefix + part
            nonce = new_nonce()
            self._echoes.expect(nonce, message.channel, content)
            try:
                await self._messenger.send(
                    message.channel, content, nonce=nonce, reply_to=reply_to if index == 0 else None
                )
            except MessengerError as exc:
                log.error(
                    "reply to message %s not delivered (part %d of %d): %s",
                    message.id,
                    index + 1,
                    len(parts),
                    exc,
                )
                return index > 0
        return True

    async def _keep_typing(self, channel_id: str) -> None:
        """Pulse the typing indicator until cancelled; failures are not worth a reply."""
        while True:
            try:
                await self._messenger.typing(channel_id)
            except MessengerError as exc:
                log.debug("typing indicator in channel %s failed: %s", channel_id, exc)
            await asyncio.sleep(self._settings.TYPING_INTERVAL_SECONDS)

    async def drain(self) -> None:
        """Wait until every queued message has been handled (used on shutdown and in tests)."""
        while self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)

    async def aclose(self) -> None:
        """Stop the workers; messages still queued are dropped with a warning."""
        pending = sum(queue.qsize() for queue in self._queues.values())
        if pending:
            log.warning("shutting down with %d message(s) still waiting for a reply", pending)
        for worker in list(self._workers):
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
