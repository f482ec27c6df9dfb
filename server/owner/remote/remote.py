"""The owner's remote as the relay sees it: told of drafts, their outcome and notices, it DMs
the owner through its bot, off every reply's path. A bot that cannot connect or cannot DM is
logged in one line and the relay goes on without it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import discord

from server.bot.endpoints import bot_api_base
from server.bot.gateway_payloads import describe
from server.config import Settings
from server.owner.notifier import Notice
from server.owner.remote.client import REACHABLE, OwnerBotClient, OwnerDesk
from server.owner.remote.draft_messages import draft_message, notice_message, settled_message

log = logging.getLogger(__name__)

QUEUE_LIMIT = 200
SEND_TIMEOUT_SECONDS = 15.0
NOTICE_KINDS = frozenset({"urgent", "failure", "summary"})
"""Notices the bot DMs (drafts get their own message with buttons)."""
SETTLED = frozenset({"sent", "discarded", "expired"})


@dataclass
class _Shown:
    frame: dict[str, Any]
    channel_id: str
    message_id: str


@dataclass
class OwnerRemote:
    """Queues what the owner should see and DMs it in order; never raises into the relay."""

    settings: Settings
    desk: OwnerDesk
    owner_id: Callable[[], str | None]
    client: OwnerBotClient | None = None
    problem: str | None = None
    """Why the bot is not connected (one line, no token), or None."""
    _queue: asyncio.Queue[tuple[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_LIMIT)
    )
    _shown: dict[str, _Shown] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _dm_channel: tuple[str, str] | None = None
    _dm_failing: bool = False

    async def start(self) -> None:
        """Start the bot in the background; returns at once (the relay never waits for it)."""
        from server.bot.client import point_discord_py_at  # noqa: PLC0415 (one Route.BASE)

        point_discord_py_at(bot_api_base(self.settings.DISCORD_API_BASE))
        self.client = OwnerBotClient(self.desk, self.owner_id)
        self._tasks = [
            asyncio.create_task(self._run_bot(self.client), name="owner bot"),
            asyncio.create_task(self._deliver(self.client), name="owner bot DMs"),
        ]

    async def _run_bot(self, client: OwnerBotClient) -> None:
        try:
            await client.start(self.settings.DISCORD_BOT_TOKEN)
        except discord.LoginFailure:
            self._failed("Discord refused DISCORD_BOT_TOKEN (401): copy the bot's token again")
        except discord.PrivilegedIntentsRequired:
            self._failed("Discord refused the bot's intents")
        except (*REACHABLE, discord.GatewayNotFound, discord.ConnectionClosed) as exc:
            where = bot_api_base(self.settings.DISCORD_API_BASE)
            self._failed(f"cannot use Discord at {where}: {describe(exc)}")

    def _failed(self, why: str) -> None:
        self.problem = why
        log.error("owner bot not running: %s; replies go on without it", why)

    def owner_frame(self, frame: dict[str, Any]) -> None:
        """A frame for the owner's plugins: drafts and their outcome reach the DM too."""
        if frame.get("type") == "draft":
            self._put(("draft", frame))
        elif frame.get("type") == "draft_done" and frame.get("status") in SETTLED:
            self._put(("settled", frame))

    def notice(self, notice: Notice) -> None:
        """A notifier's notice: urgent messages, failures and the return summary are DMed."""
        if notice.kind in NOTICE_KINDS:
            self._put(("notice", notice))

    def _put(self, item: tuple[str, Any]) -> None:
        if self.client is None or self.problem is not None:
            return
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(item)

    async def _deliver(self, client: OwnerBotClient) -> None:
        await client.connected.wait()
        for frame in await self.desk.drafts():
            self._put(("draft", frame))
        while True:
            kind, item = await self._queue.get()
            try:
                await asyncio.wait_for(self._one(client, kind, item), SEND_TIMEOUT_SECONDS)
            except (*REACHABLE, ValueError) as exc:
                self._dm_refused(exc)
            else:
                if self._dm_failing:
                    self._dm_failing = False
                    log.info("owner bot: DMs to the owner go through again")

    async def _one(self, client: OwnerBotClient, kind: str, item: Any) -> None:
        if kind == "settled":
            shown = self._shown.pop(str(item["id"]), None)
            client.contents.pop(str(item["id"]), None)
            if shown is not None:
                body = settled_message(shown.frame, str(item["status"]))
                await client.edit(shown.channel_id, shown.message_id, body)
            return
        channel = await self._channel(client)
        if kind == "draft":
            draft_id = str(item["id"])
            if draft_id in self._shown:
                return
            client.contents[draft_id] = str(item["content"])
            message_id = await client.post(channel, draft_message(item))
            self._shown[draft_id] = _Shown(item, channel, message_id)
        else:
            await client.post(channel, notice_message(item))

    async def _channel(self, client: OwnerBotClient) -> str:
        owner = self.owner_id()
        if owner is None:
            raise ValueError("no OWNER_ID, and no plugin has said who you are yet")
        if self._dm_channel is None or self._dm_channel[0] != owner:
            self._dm_channel = (owner, await client.open_dm(owner))
        return self._dm_channel[1]

    def _dm_refused(self, exc: Exception) -> None:
        if self._dm_failing:
            log.debug("owner bot: another DM failed: %s", describe(exc))
            return
        self._dm_failing = True
        hint = ""
        if isinstance(exc, discord.Forbidden):
            hint = "; share a server with the bot and allow DMs from its members"
        log.error(
            "owner bot cannot DM you (user %s): %s%s (not logged again until one goes through)",
            self.owner_id(),
            describe(exc),
            hint,
        )

    async def aclose(self) -> None:
        """Disconnect the bot; what is queued is dropped."""
        if self.client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.close(), 5)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
