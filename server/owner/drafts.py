"""Draft mode: replies written but kept for the owner to send, edit or discard.

A draft is stored, handed to the plugin (and again to a plugin that connects later, even after a
restart), and expires after DRAFT_EXPIRE_MINUTES. Sending goes through the relay's own send path,
so a sent draft gets the prefix, the nonces and the bookkeeping of any reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from server.conversation.memory import PairKey
from server.storage.database import DatabaseError
from server.storage.owner_store import Draft, OwnerStore
from server.transport import protocol
from server.transport.protocol import IncomingMessage

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0
"""After a database error, how long the expiry loop waits before it looks again."""
Deliver = Callable[[Draft, str], Awaitable[int]]
"""Sends a draft's (possibly edited) text as a reply; how many parts were delivered."""


def draft_frame(draft: Draft) -> dict[str, Any]:
    """The `draft` frame that shows `draft` to the owner in the plugin."""
    return protocol.draft(
        draft_id=draft.id,
        user=draft.pair[0],
        author=draft.author_name,
        channel=draft.pair[1],
        guild=draft.guild,
        message_id=draft.message_id,
        question=draft.question,
        content=draft.content,
        expires_at=draft.expires,
    )


class Drafts:
    """The pending drafts: created by the relay, acted on by the owner, expired by the clock."""

    def __init__(
        self,
        store: OwnerStore,
        *,
        expire_seconds: float,
        notify: Callable[[dict[str, Any]], None],
        deliver: Deliver,
    ) -> None:
        self._store = store
        self._expire_seconds = expire_seconds
        self._notify = notify
        self._deliver = deliver
        self._wake = asyncio.Event()
        self._expiry: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take up the drafts left by a previous run and start expiring them on time."""
        try:
            released = await self._store.release_interrupted_drafts()
        except DatabaseError as exc:
            log.error("could not read the pending drafts: %s", exc)
        else:
            if released:
                log.warning("%d draft(s) were being sent at shutdown; pending again", released)
        self._expiry = asyncio.create_task(self._expire_on_time(), name="draft expiry")

    async def create(
        self,
        pair: PairKey,
        message: IncomingMessage,
        *,
        follows: int | None,
        text: str,
        backend: str,
        seconds: float | None,
    ) -> Draft:
        """Keep `text`, the reply to `message`, as a draft and show it to the owner."""
        draft = await self._store.add_draft(
            pair,
            guild=message.guild,
            message_id=message.id,
            author_name=message.author.username,
            follows=follows,
            question=message.content,
            content=text,
            backend=backend,
            seconds=seconds,
            expires=time.time() + self._expire_seconds,
        )
        log.info(
            "draft %d kept for user %s in channel %s; it expires in %g min",
            draft.id,
            pair[0],
            pair[1],
            self._expire_seconds / 60,
        )
        self._notify(draft_frame(draft))
        self._wake.set()
        return draft

    async def frames(self) -> list[dict[str, Any]]:
        """A `draft` frame for each pending draft, for a plugin that just connected."""
        try:
            drafts = await self._store.drafts()
        except DatabaseError as exc:
            log.error("could not read the pending drafts: %s", exc)
            return []
        return [draft_frame(draft) for draft in drafts if draft.status == "pending"]

    async def act(
        self, draft_id: str, action: Literal["send", "discard"], content: str | None = None
    ) -> dict[str, Any]:
        """Send (with `content` instead of the drafted text, if given) or discard a draft.

        Returns the `draft_done` frame for the one who asked; a final outcome is also told to
        every plugin, so each can close the draft.
        """
        if not draft_id.isdigit():
            return protocol.draft_done(draft_id, "failed", f"no draft {draft_id!r}")
        try:
            return await self._act(int(draft_id), action, content)
        except DatabaseError as exc:
            log.error("draft %s: %s", draft_id, exc)
            return protocol.draft_done(draft_id, "failed", str(exc))

    async def _act(
        self, number: int, action: Literal["send", "discard"], content: str | None
    ) -> dict[str, Any]:
        draft_id = str(number)
        if action == "discard":
            if not await self._store.discard_draft(number):
                return await self._not_pending(number)
            log.info("draft %d discarded by the owner", number)
            return self._done(protocol.draft_done(draft_id, "discarded"))
        if content is not None and not content.strip():
            return protocol.draft_done(draft_id, "failed", "the edited text is empty")
        draft = await self._store.claim_draft(number)
        if draft is None:
            return await self._not_pending(number)
        text = draft.content if content is None else content.strip()
        try:
            delivered = await self._deliver(draft, text)
        except BaseException:
            await self._store.settle_draft(number, "pending")
            raise
        if not delivered:
            await self._store.settle_draft(number, "pending")
            return protocol.draft_done(
                draft_id, "failed", "not delivered (see the server log); the draft is kept"
            )
        await self._store.settle_draft(number, "sent", text)
        edited = " after an edit" if text != draft.content else ""
        log.info("draft %d sent by the owner%s", number, edited)
        return self._done(protocol.draft_done(draft_id, "sent"))

    async def _not_pending(self, draft_id: int) -> dict[str, Any]:
        draft = await self._store.draft(draft_id)
        if draft is None:
            return protocol.draft_done(str(draft_id), "failed", f"no draft {draft_id}")
        if draft.status == "sending":
            return protocol.draft_done(str(draft_id), "failed", f"draft {draft_id} is being sent")
        status = draft.status
        return protocol.draft_done(str(draft_id), status, f"draft {draft_id} is already {status}")

    def _done(self, frame: dict[str, Any]) -> dict[str, Any]:
        self._notify(frame)
        return frame

    async def _expire_on_time(self) -> None:
        """Expire drafts as their time comes; a new draft wakes the loop to look again."""
        while True:
            self._wake.clear()
            try:
                for draft in await self._store.expire_drafts(time.time()):
                    log.info("draft %d expired unsent", draft.id)
                    self._notify(protocol.draft_done(str(draft.id), "expired"))
                next_expiry = await self._store.next_expiry()
            except DatabaseError as exc:
                log.error("could not expire drafts: %s", exc)
                next_expiry = time.time() + RETRY_SECONDS
            timeout = None if next_expiry is None else max(0.0, next_expiry - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def aclose(self) -> None:
        """Stop expiring drafts; pending ones stay stored for the next start."""
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
