"""How a reply gets out, exactly once: each reply is recorded with its parts and their nonces
before any is posted, the parts are posted in order, and what was delivered is recorded.

A part sent again with its nonce (after a crash) is not posted twice: Discord's `enforce_nonce`
returns the message it already made, and the plugin remembers the nonces it posted.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable

from server.config import Settings
from server.conversation.inbox import Pending
from server.conversation.memory import PairKey
from server.conversation.reply_policy import ReplyPolicy
from server.conversation.reply_writer import Reply
from server.delivery.echoes import EchoTracker
from server.delivery.splitter import discord_length, split_message
from server.messengers.base import Messenger, MessengerError
from server.storage.conversations import ConversationStore, ReplyPart
from server.storage.store_guard import StoreGuard

log = logging.getLogger(__name__)

DISCORD_MESSAGE_LIMIT = 2000


def new_nonce() -> str:
    """A Discord-compatible nonce (at most 25 characters)."""
    return str(secrets.randbits(63))


class Outbox:
    """Records and posts the relay's replies through the messenger."""

    def __init__(
        self,
        *,
        settings: Settings,
        messenger: Messenger,
        store: ConversationStore,
        stored: StoreGuard,
        policy: ReplyPolicy,
        echoes: EchoTracker,
        stopping: Callable[[], bool],
    ) -> None:
        """`stopping` says whether the server is shutting down: a part that fails then is left
        for the next start rather than reported as a failure."""
        self._settings = settings
        self._messenger = messenger
        self._store = store
        self._stored = stored
        self._policy = policy
        self._echoes = echoes
        self._stopping = stopping

    async def send(
        self,
        pair: PairKey,
        batch: list[Pending],
        reply: Reply,
        *,
        due: float,
        approved: bool = False,
    ) -> int:
        """Split and record `reply`, the reply to `batch` (the outbox), then post it part by
        part by `due` (Unix time); how many parts were delivered. An `approved` reply (a draft the
        owner sent) ignores a takeover."""
        message = batch[-1].message
        prefix = self._settings.REPLY_PREFIX
        room = DISCORD_MESSAGE_LIMIT - discord_length(prefix)
        parts = [ReplyPart(new_nonce(), text) for text in split_message(reply.text, room)]
        answers = [pending.turn_id for pending in batch if pending.turn_id is not None]
        record = self._store.record_reply(
            pair, answers, reply.backend, parts, seconds=reply.seconds
        )
        reply_id = await self._stored(record, None)
        self._policy.replied(pair, reply.text, time.time())
        reply_to = message.id if message.guild is not None else None
        delivered = await self.deliver(
            pair[1], parts, 0, reply_to, due, about=message.id, approved=approved
        )
        if reply_id is not None:
            await self._stored(self._store.record_delivery(reply_id, delivered), None)
        if delivered:
            log.info(
                "replied to user %s in channel %s (%d of %d parts, %s)",
                message.author.id,
                message.channel,
                delivered,
                len(parts),
                reply.backend,
            )
        return delivered

    async def deliver(
        self,
        channel: str,
        parts: list[ReplyPart],
        start: int,
        reply_to: str | None,
        due: float,
        *,
        about: str,
        approved: bool = False,
    ) -> int:
        """Post `parts[start:]` in order (`reply_to` on the first part) by `due` (Unix time); how
        many are delivered in all. Stops at a failure or a takeover (unless `approved` by the
        owner), saying which part and why."""
        prefix = self._settings.REPLY_PREFIX
        deadline = asyncio.get_running_loop().time() + (due - time.time())
        for index in range(start, len(parts)):
            part = parts[index]
            decision = self._policy.may_send(channel, time.time())
            if not decision.reply and not approved:
                log.info("rest of the reply to message %s dropped: %s", about, decision.reason)
                return index
            content = prefix + part.content
            self._echoes.expect(part.nonce, channel, content)
            try:
                await self._messenger.send(
                    channel,
                    content,
                    nonce=part.nonce,
                    reply_to=reply_to if index == 0 else None,
                    deadline=deadline,
                )
            except MessengerError as exc:
                if self._stopping():
                    log.info(
                        "part %d of the reply to message %s is settled at the next start",
                        index + 1,
                        about,
                    )
                else:
                    log.error(
                        "reply to message %s not delivered (part %d of %d): %s",
                        about,
                        index + 1,
                        len(parts),
                        exc,
                    )
                return index
        return len(parts)
