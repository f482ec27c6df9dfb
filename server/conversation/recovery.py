"""Taking up, at start, what the last run left undone: replies half sent, messages unanswered.

A half-sent reply is sent on with the nonces it was recorded with, so a part that did go out is
not posted twice; a message accepted before a crash is answered if it is still recent enough.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from server.config import Settings
from server.conversation.inbox import Pending
from server.conversation.reply_policy import ReplyPolicy
from server.conversation.rules import RuleSet
from server.delivery.outbox import Outbox
from server.messengers.base import Messenger
from server.storage.conversations import ConversationStore, UndeliveredReply
from server.storage.store_guard import StoreGuard
from server.transport.protocol import Author, IncomingMessage

log = logging.getLogger(__name__)

RESEND_WINDOW_SECONDS = 120.0
"""How long after a reply was recorded its parts may be sent again with their nonces: Discord's
`enforce_nonce` returns the earlier message only "in the past few minutes", so a later resend
could post twice, and is given up instead."""
RETRY_FIRST_SECONDS = 5.0
RETRY_MAX_SECONDS = 30.0
"""A part that could not be delivered is tried again after 5 s, then 10, 20, 30... while the
resend window lasts."""


class Recovery:
    """What the relay does at start for the messages and replies the last run left."""

    def __init__(
        self,
        *,
        settings: Settings,
        rules: Callable[[], RuleSet],
        messenger: Messenger,
        store: ConversationStore,
        stored: StoreGuard,
        policy: ReplyPolicy,
        outbox: Outbox,
        stopping: Callable[[], bool],
    ) -> None:
        """`stopping` says whether the server is shutting down: a resend then stops and is left
        for the next start."""
        self._settings = settings
        self._rules = rules
        self._messenger = messenger
        self._store = store
        self._stored = stored
        self._policy = policy
        self._outbox = outbox
        self._stopping = stopping

    async def unanswered(self) -> list[Pending]:
        """The messages accepted before the restart that still wait for a reply, to be queued;
        those too old for one are marked expired, those no longer allow-listed skipped."""
        horizon = time.time() - self._settings.REPLY_WITHIN_MINUTES * 60
        expired: list[int] = []
        queued: list[Pending] = []
        rules = self._rules()
        for pending in await self._stored(self._store.pending_messages(), [], read_only=True):
            rule = rules.match(*pending.pair, dm=pending.guild_id is None)
            if pending.at < horizon:
                expired.append(pending.turn_id)
            elif rule is None:
                await self._stored(
                    self._store.settle([pending.turn_id], "skipped", "no longer allow-listed"),
                    None,
                )
            else:
                message = IncomingMessage(
                    type="message",
                    id=pending.discord_id,
                    channel=pending.pair[1],
                    guild=pending.guild_id,
                    author=Author(id=pending.pair[0]),
                    content=pending.content,
                )
                queued.append(Pending(message, rule, pending.turn_id, pending.at))
        if expired:
            log.warning(
                "%d message(s) accepted before the restart are older than REPLY_WITHIN_MINUTES "
                "(%g min): not answered, a reply that late is worse than none",
                len(expired),
                self._settings.REPLY_WITHIN_MINUTES,
            )
            reason = "too old after a restart"
            await self._stored(self._store.settle(expired, "expired", reason), None)
        return queued

    async def resend(self, reply: UndeliveredReply) -> None:
        """Deliver the rest of a reply left half sent at the last stop, with the same nonces (a
        part that did go out is not posted twice), retrying with backoff while that is safe;
        then give it up, visibly."""
        channel = reply.pair[1]
        until = reply.at + min(RESEND_WINDOW_SECONDS, self._settings.REPLY_WITHIN_MINUTES * 60)
        start, delay = reply.first_undelivered, 0.0
        while time.time() + delay < until:
            await asyncio.sleep(delay)
            about = f"reply {reply.reply_id}"
            delivered = await self._outbox.deliver(
                channel, reply.parts, start, reply.reply_to, until, about=about
            )
            if delivered > start:
                await self._stored(self._store.record_delivery(reply.reply_id, delivered), None)
            if delivered == len(reply.parts):
                log.info("finished a reply in channel %s left half sent at the last stop", channel)
                return
            if self._stopping() or not self._messenger.available:
                return  # the next start takes it up, within the window
            if not self._policy.may_send(channel, time.time()).reply:
                break
            start, delay = delivered, min(max(2 * delay, RETRY_FIRST_SECONDS), RETRY_MAX_SECONDS)
        log.warning(
            "gave up part %d and later of a reply in channel %s: not delivered while a resend "
            "could not post it twice",
            start + 1,
            channel,
        )
        await self._stored(self._store.give_up_reply(reply.reply_id), None)
