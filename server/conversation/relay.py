"""One message: accept → match → remember → wait for the burst → generate → send → record.

Pairs are answered concurrently; each pair's messages in order, one reply at a time, and the
messages of one burst in one reply. What is said is kept in the conversation store.

The relay decides and schedules; the steps it hands off live in their own modules: whether to
speak in `reply_policy`, what to say in `reply_writer`, sending and recording in `outbox`, and
what the last run left undone in `recovery`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field

from server.config import Settings
from server.conversation.inbox import Pending, SeenIds
from server.conversation.memory import PairKey
from server.conversation.placeholders import turn_text
from server.conversation.prompt_context import NOBODY_AWAY, OwnerContext
from server.conversation.recovery import Recovery
from server.conversation.reply_policy import (
    REMEMBERED_SECONDS,
    Decision,
    Presence,
    ReplyPolicy,
    burst_wait,
    grace_left,
    ignore_reason,
)
from server.conversation.reply_writer import Reply, ReplyWriter
from server.conversation.rules import WILDCARD, Rule, RuleSet
from server.conversation.tokens import TokenCounter
from server.delivery.echoes import EchoTracker
from server.delivery.outbox import Outbox
from server.llm.chain import BackendChain
from server.messengers.base import Messenger, MessengerError
from server.owner.away_schedule import parse_schedule
from server.owner.drafts import Drafts
from server.owner.notifier import NoEvents, RelayEvents
from server.storage.conversations import ConversationStore, MessageStatus
from server.storage.owner_store import Draft
from server.storage.store_guard import StoreGuard
from server.transport.protocol import Author, IncomingMessage

log = logging.getLogger(__name__)

_UNDELIVERABLE = "Discord refused the account's token (or the messenger stopped for good)"
SHUTDOWN_GRACE_SECONDS = 5.0
"""At shutdown, how long a reply already being sent may take to finish and be recorded."""


@dataclass
class _Pair:
    """What a busy pair is waiting for: its pending messages and the worker answering them."""

    pending: list[Pending] = field(default_factory=list)
    last_arrival: float = 0.0
    generation: asyncio.Task[Reply | None] | None = None
    sending: bool = False
    worker: asyncio.Task[None] | None = None


class Relay:
    """Decides what to do with each forwarded message and runs one worker per busy pair."""

    def __init__(
        self,
        *,
        settings: Settings,
        rules: Callable[[], RuleSet],
        llm: BackendChain,
        messenger: Messenger,
        store: ConversationStore,
        echoes: EchoTracker | None = None,
        tokens: TokenCounter | None = None,
        drafts: Drafts | None = None,
        events: RelayEvents | None = None,
    ) -> None:
        """`events`: told of messages, replies and failures (the notifier)."""
        self._settings = settings
        self._events = events or NoEvents()
        self._rules = rules
        self._messenger = messenger
        self._store = store
        self._drafts = drafts
        self._echoes = echoes or EchoTracker()
        self._tokens = tokens or TokenCounter()
        self._policy = ReplyPolicy(
            takeover_seconds=settings.TAKEOVER_MINUTES * 60,
            per_minute=settings.MAX_REPLIES_PER_MINUTE,
            per_hour=settings.MAX_REPLIES_PER_HOUR,
            reply_prefix=settings.REPLY_PREFIX,
            schedule=settings.away_schedule(),
        )
        self._seen = SeenIds()
        self._pairs: dict[PairKey, _Pair] = {}
        self.last_undelivered: float | None = None
        """When a reply was last not delivered (monotonic seconds), if ever."""
        self._workers: set[asyncio.Task[None]] = set()
        self._closing = False
        # The parts the relay hands its steps to share its store guard, policy and shutdown.
        self._stored = StoreGuard(store.path)
        self.owner_context: Callable[[], OwnerContext] = lambda: NOBODY_AWAY
        """The owner's name, absence and away note for the system prompt (the app sets it)."""
        self._writer = ReplyWriter(
            settings=settings,
            rules=rules,
            llm=llm,
            owner=lambda: self.owner_context(),  # noqa: PLW0108 (read late: the app sets it)
            store=store,
            stored=self._stored,
            tokens=self._tokens,
        )
        self._outbox = Outbox(
            settings=settings,
            messenger=messenger,
            store=store,
            stored=self._stored,
            policy=self._policy,
            echoes=self._echoes,
            stopping=lambda: self._closing,
        )
        self._recovery = Recovery(
            settings=settings,
            rules=rules,
            messenger=messenger,
            store=store,
            stored=self._stored,
            policy=self._policy,
            outbox=self._outbox,
            stopping=lambda: self._closing,
        )

    @property
    def presence(self) -> Presence:
        """Whether the owner is away, as the reply policy sees it (updated by away mode)."""
        return self._policy.presence

    async def start(self) -> None:
        """Take up where the last run stopped (takeovers, the last hour's replies for the reply
        limits, replies half sent, messages not yet answered)."""
        self._policy.restore(await self._stored(self._store.takeovers(), {}, read_only=True))
        since = time.time() - REMEMBERED_SECONDS
        replies = await self._stored(self._store.replies_since(since), [], read_only=True)
        self._policy.restore_replies(replies)
        for reply in await self._stored(self._store.undelivered_replies(), [], read_only=True):
            self._spawn(self._recovery.resend(reply), f"resend reply {reply.reply_id}")
        for pending in await self._recovery.unanswered():
            self._seen.add(pending.message.id)
            self._queue(pending.pair, pending)

    def _spawn(self, work: Coroutine[None, None, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)
        return task

    async def accept(self, message: IncomingMessage) -> None:
        """Take a forwarded message: store it and queue it for a reply, or drop it (debug log).

        Returns once the message is stored, so the caller may acknowledge it.
        """
        if not self._seen.add(message.id):
            log.debug("message %s already accepted; ignoring the re-send", message.id)
            return
        if message.is_self:
            await self._accept_owner_message(message)
            return
        rule = self._rules().match(message.author.id, message.channel, dm=message.guild is None)
        reason = ignore_reason(message, rule)
        if reason or rule is None:
            log.debug("message %s ignored: %s", message.id, reason)
            return
        self._events.incoming(message, rule, away=self.presence.away)
        pair = (message.author.id, message.channel)
        now = time.time()
        automatic = self._policy.automatic(message.channel, message.content, now)
        allowed = self._may_speak(message.channel, rule)
        skip = f"automatic message: {automatic}" if automatic else allowed.reason
        stored = self._store.record_message(
            pair,
            message.id,
            message.author.id,
            turn_text(message),
            guild_id=message.guild,
            status="skipped" if skip else "pending",
            reason=skip or None,
        )
        turn_id = await self._stored(stored, 0)
        if turn_id is None:
            log.debug("message %s was accepted before (a restart); not again", message.id)
            return
        if skip:
            log.log(
                logging.DEBUG if automatic else logging.INFO,
                "message %s remembered, not answered: %s",
                message.id,
                skip,
            )
            return
        self._queue(pair, Pending(message, rule, turn_id or None, now))

    async def _accept_owner_message(self, message: IncomingMessage) -> None:
        """The owner wrote in a watched chat: step aside there, and remember their words."""
        if self._echoes.is_echo(message.channel, message.content, message.nonce):
            log.debug("message %s is the echo of our own reply; not remembered twice", message.id)
            return
        if not self._rules().watches_channel(message.channel, dm=message.guild is None):
            return
        self._policy.owner_seen(message.channel, time.time())
        if self._settings.TAKEOVER_MINUTES > 0:
            until = self._policy.owner_wrote(message.channel, time.time())
            await self._stored(self._store.set_takeover(message.channel, until), None)
            self._interrupt(message.channel)
            log.info(
                "you wrote in channel %s: the relay stays silent there for %g min",
                message.channel,
                self._settings.TAKEOVER_MINUTES,
            )
        pair = await self._pair_in_channel(message.channel)
        if pair is not None and message.content.strip():
            stored = self._store.record_owner_message(
                pair, message.id, message.author.id, message.content
            )
            await self._stored(stored, False)

    async def _pair_in_channel(self, channel: str) -> PairKey | None:
        """Whose conversation the owner joined: the rule naming one person there, else the last
        person who wrote in it."""
        named = {
            rule.user
            for rule in self._rules().rules
            if rule.channel == channel and rule.user != WILDCARD
        }
        if len(named) == 1:
            return (named.pop(), channel)
        return await self._stored(self._store.last_pair_in_channel(channel), None, read_only=True)

    def _interrupt(self, channel: str) -> None:
        """Cancel the replies being written in `channel`."""
        for (_, pair_channel), state in self._pairs.items():
            if pair_channel == channel and state.generation is not None:
                state.generation.cancel()

    def _queue(self, pair: PairKey, pending: Pending) -> None:
        state = self._pairs.get(pair)
        if state is None:
            state = self._pairs[pair] = _Pair()
            state.worker = self._spawn(self._work(pair, state), f"pair {pair}")
        state.pending.append(pending)
        state.last_arrival = time.monotonic()

    async def _work(self, pair: PairKey, state: _Pair) -> None:
        """Answer the pair's bursts in order, showing the typing indicator (not for drafts, which
        may never be sent); exit when idle."""
        drafting = self._drafting(state.pending[0].rule)
        typing: asyncio.Task[None] | None = None
        try:
            while state.pending and not self._closing:
                first = state.pending[0]
                grace = grace_left(first.accepted_at, time.time(), self._reply_after(first.rule))
                if grace > 0:  # the owner may answer first: no typing indicator meanwhile
                    await _stopped(typing)
                    typing = None
                    await asyncio.sleep(grace)
                if typing is None:
                    typing = asyncio.create_task(self._keep_typing(pair[1], show=not drafting))
                await self._wait_for_burst(state)
                batch, state.pending = state.pending, []
                try:
                    await self._answer(pair, batch, state)
                except Exception:
                    log.exception("unexpected error answering message %s", batch[-1].message.id)
        finally:
            # Before any await: a message arriving from now on starts a new worker.
            del self._pairs[pair]
            await _stopped(typing)

    async def _wait_for_burst(self, state: _Pair) -> None:
        """Wait until COALESCE_SECONDS have passed since the pair's last message."""
        coalesce = self._settings.COALESCE_SECONDS
        # The deadline moves with each new message, so this sleeps again rather than on an event.
        while (delay := burst_wait(state.last_arrival, time.monotonic(), coalesce)) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)

    async def _answer(self, pair: PairKey, batch: list[Pending], state: _Pair) -> None:
        """Generate one reply to the whole burst and send it, unless the owner took over."""
        newest = batch[-1]
        if not self._messenger.available:
            log.debug(
                "message %s not answered: the messenger can deliver nothing", newest.message.id
            )
            await self._skip(batch, "failed", "the messenger can deliver nothing more")
            self._events.undeliverable(_UNDELIVERABLE)
            return
        if time.time() > self._due(newest.accepted_at):
            log.warning(
                "message %s not answered: it waited past REPLY_WITHIN_MINUTES", newest.message.id
            )
            await self._skip(batch, "expired", "waited too long for its turn")
            return
        decision = self._policy.may_reply(pair, time.time())
        if decision.reply:
            decision = self._owner_allows(newest.rule)
        if decision.reply:
            decision = self._answered_first(pair[1], batch)
        if not decision.reply:
            log.log(
                logging.DEBUG if decision.quiet else logging.INFO,
                "message %s not answered: %s",
                newest.message.id,
                decision.reason,
            )
            await self._skip(batch, "skipped", decision.reason)
            return
        generation = asyncio.create_task(self._writer.write(pair, batch))
        state.generation = generation
        try:
            await asyncio.wait({generation})
        finally:
            state.generation = None
            generation.cancel()
        if generation.cancelled():
            log.info("reply to message %s dropped: the owner took over", newest.message.id)
            await self._skip(batch, "skipped", "the owner took over while it was being written")
            return
        generated = generation.result()
        self._events.llm_result(generated is not None)
        decision = self._may_speak(pair[1], newest.rule)  # the owner may be back by now
        if decision.reply:
            decision = self._answered_first(pair[1], batch)
        if generated is None:
            await self._skip(batch, "failed", "no LLM backend answered")
        elif not decision.reply:
            log.info("reply to message %s dropped: %s", newest.message.id, decision.reason)
            await self._skip(batch, "skipped", decision.reason)
        elif self._drafts is not None and self._drafting(newest.rule):
            turn_ids = [pending.turn_id for pending in batch if pending.turn_id is not None]
            await self._stored(self._store.settle(turn_ids, "answered", "drafted"), None)
            await self._stored(
                self._drafts.create(
                    pair,
                    newest.message,
                    follows=newest.turn_id,
                    text=generated.text,
                    backend=generated.backend,
                    seconds=generated.seconds,
                ),
                None,
            )
        else:
            await self._send(pair, batch, generated, state)

    async def _send(self, pair: PairKey, batch: list[Pending], reply: Reply, state: _Pair) -> None:
        """Send `reply` through the outbox, and tell the events what came of it."""
        state.sending = True
        try:
            due = self._due(batch[0].accepted_at)
            delivered = await self._outbox.send(pair, batch, reply, due=due)
        finally:
            state.sending = False
        if delivered:
            self._events.replied(batch[-1].message, reply.text)
        else:
            self.last_undelivered = time.monotonic()
        if not self._messenger.available:
            self._events.undeliverable(_UNDELIVERABLE)

    def _due(self, accepted_at: float) -> float:
        """When a reply to a message accepted at `accepted_at` is too late (Unix time)."""
        return accepted_at + self._settings.REPLY_WITHIN_MINUTES * 60

    async def _skip(self, batch: list[Pending], status: MessageStatus, reason: str) -> None:
        """Record why the messages of `batch` get no reply (their fate, shown by `history`)."""
        turn_ids = [pending.turn_id for pending in batch if pending.turn_id is not None]
        await self._stored(self._store.settle(turn_ids, status, reason), None)

    async def deliver_draft(self, draft: Draft, text: str) -> int:
        """Send a draft the owner approved (`text`, maybe edited) as the reply it stands for;
        how many parts were delivered."""
        user, channel = draft.pair
        message = IncomingMessage(
            type="message",
            id=draft.message_id,
            channel=channel,
            guild=draft.guild,
            author=Author(id=user, username=draft.author_name),
            content=draft.question,
        )
        rule = self._rules().match(user, channel, dm=draft.guild is None) or Rule(user, channel)
        generated = Reply(text, draft.backend, draft.seconds)
        pending = Pending(message, rule, draft.follows, time.time())
        due = self._due(pending.accepted_at)
        return await self._outbox.send(draft.pair, [pending], generated, due=due, approved=True)

    def _may_speak(self, channel: str, rule: Rule) -> Decision:
        """No owner takeover in `channel`, and the owner away (unless the rule replies always)."""
        decision = self._policy.may_send(channel, time.time())
        if not decision.reply:
            return decision
        return self._owner_allows(rule)

    def _owner_allows(self, rule: Rule) -> Decision:
        """Is the owner away, by the rule's own away hours if it has some (or does the rule reply
        always)?"""
        schedule = None
        if rule.schedule is not None:
            schedule = parse_schedule(rule.schedule, self._settings.TIMEZONE)
        return self._policy.owner_allows(rule.reply_when or self._settings.REPLY_WHEN, schedule)

    def _reply_after(self, rule: Rule) -> float:
        """The grace period of `rule`: its own, else REPLY_AFTER_SECONDS."""
        own = rule.reply_after_seconds
        return self._settings.REPLY_AFTER_SECONDS if own is None else own

    def _answered_first(self, channel: str, batch: list[Pending]) -> Decision:
        """With a grace period, no reply once the owner has written in `channel` since."""
        if self._reply_after(batch[0].rule) <= 0:
            return Decision(True)
        return self._policy.answered_first(channel, since=batch[0].accepted_at)

    def _drafting(self, rule: Rule) -> bool:
        return (rule.mode or self._settings.MODE) == "draft"

    async def _keep_typing(self, channel_id: str, *, show: bool = True) -> None:
        """Pulse the typing indicator until cancelled (unless not `show`); failures are not worth
        a reply."""
        if not show:
            return
        # A reply ready within TYPING_DELAY_SECONDS goes out without the indicator (a request
        # saved), and the wait keeps this request off the reply's path. With no delay, one turn
        # of the loop still lets the worker's request to the LLM go out first.
        await asyncio.sleep(self._settings.TYPING_DELAY_SECONDS)
        while True:
            if self._policy.may_send(channel_id, time.time()).reply:
                try:
                    await self._messenger.typing(channel_id)
                except MessengerError as exc:
                    log.debug("typing indicator in channel %s failed: %s", channel_id, exc)
            await asyncio.sleep(self._settings.TYPING_INTERVAL_SECONDS)

    async def drain(self) -> None:
        """Wait until every queued message has been handled (used on shutdown and in tests)."""
        while self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)

    def waiting(self) -> int:
        """How many accepted messages are still waiting for their reply, in every pair."""
        return sum(len(state.pending) for state in self._pairs.values())

    def stalled_since(self, since: float) -> bool:
        """Whether messages wait for a reply now, or a reply failed since `since` (monotonic)."""
        failed = self.last_undelivered
        return bool(self.waiting()) or (failed is not None and failed >= since)

    async def aclose(self) -> None:
        """Stop the workers: a reply being sent may finish (briefly); the others stop now.

        Unanswered messages stay stored, and a warning says how many.
        """
        self._closing = True
        pending = self.waiting()
        if pending:
            log.warning("shutting down with %d message(s) still waiting for a reply", pending)
        for state in list(self._pairs.values()):
            if not state.sending and state.worker is not None:
                state.worker.cancel()
        if self._workers:
            await asyncio.wait(set(self._workers), timeout=SHUTDOWN_GRACE_SECONDS)
        for worker in list(self._workers):
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        await self._writer.aclose()


async def _stopped(task: asyncio.Task[None] | None) -> None:
    """Cancel `task` (if any) and wait for it to end."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
