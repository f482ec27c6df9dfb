"""The owner's bot (discord.py): DMs the owner, and turns the owner's button presses, Edit modal
and slash commands into the same owner frames the plugin sends. Anyone else is refused."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from server.bot.client import overwrite_commands
from server.bot.gateway_payloads import PayloadGuard, describe
from server.bot.registration import CommandRegistration
from server.owner.remote.draft_messages import edit_modal, modal_value, read_custom_id
from server.owner.remote.owner_commands import (
    OWNER_COMMANDS,
    SpanError,
    away_answer,
    command_options,
    drafts_answer,
    history_answer,
    history_since,
)
from server.storage.owner_store import HistoryEntry
from server.transport import protocol

log = logging.getLogger(__name__)

APPLICATION_COMMAND, MESSAGE_COMPONENT, MODAL_SUBMIT = 2, 3, 5
MODAL = 9
NOT_YOURS = "This bot takes buttons and commands from its owner only."
REACHABLE = (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError)


@dataclass(frozen=True)
class OwnerDesk:
    """What the owner's bot may ask of the relay: the plugin's owner frames, the pending drafts,
    the history."""

    control: Callable[[protocol.OwnerFrame], Awaitable[dict[str, Any] | None]]
    drafts: Callable[[], Awaitable[list[dict[str, Any]]]]
    history: Callable[[float], Awaitable[list[HistoryEntry]]]


class OwnerBotClient(discord.Client):
    """The discord.py client of the owner's remote; `owner_id()` is the only user it obeys."""

    def __init__(self, desk: OwnerDesk, owner_id: Callable[[], str | None]) -> None:
        discord.VoiceClient.warn_dave = False
        # GUILDS only: discord.py keeps its state by guild; no message intents are needed.
        super().__init__(intents=discord.Intents(guilds=True), max_messages=None)
        self._desk = desk
        self._owner_id = owner_id
        self.payloads = PayloadGuard()
        self.payloads.install(self._connection.parsers)
        self.registration: CommandRegistration | None = None
        self.connected = asyncio.Event()
        self.contents: dict[str, str] = {}
        """Draft id → its text, for the Edit modal (filled as drafts are shown)."""

    async def setup_hook(self) -> None:
        """After login: the gateway URL Discord names, then the commands (retried if refused)."""
        _shards, url, _limits = await self.http.get_bot_gateway()
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        app_id = self.application_id
        if app_id is None:
            return
        self.registration = CommandRegistration(
            lambda: overwrite_commands(self.http, app_id, OWNER_COMMANDS), OWNER_COMMANDS
        )
        await self.registration.start()

    async def close(self) -> None:
        """Stop retrying the registration, then disconnect."""
        if self.registration is not None:
            await self.registration.stop()
        await super().close()

    async def on_ready(self) -> None:
        """The gateway session is ready: DMs may go out."""
        log.info("owner bot connected as %s", self.user)
        self.connected.set()

    # Talking to Discord: raw routes, so the payloads are the pure functions' output.

    async def open_dm(self, user_id: str) -> str:
        """The DM channel with `user_id` (POST /users/@me/channels)."""
        channel = await self.http.start_private_message(int(user_id))
        return str(channel["id"])

    async def post(self, channel_id: str, body: dict[str, Any]) -> str:
        """Create a message; its id."""
        route = Route("POST", "/channels/{channel_id}/messages", channel_id=channel_id)
        message = await self.http.request(route, json=body)
        return str(message["id"])

    async def edit(self, channel_id: str, message_id: str, body: dict[str, Any]) -> None:
        """Edit one of the bot's messages."""
        route = Route(
            "PATCH",
            "/channels/{channel_id}/messages/{message_id}",
            channel_id=channel_id,
            message_id=message_id,
        )
        await self.http.request(route, json=body)

    # The owner's presses and commands.

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        """Refuse anyone but the owner; otherwise do what the press or command asks."""
        try:
            owner = self._owner_id()
            if owner is None or str(interaction.user.id) != owner:
                log.info("owner bot: refused an interaction from user %s", interaction.user.id)
                await interaction.response.send_message(NOT_YOURS, ephemeral=True)
                return
            kind = interaction.type.value
            if kind == APPLICATION_COMMAND:
                await self._command(interaction)
            elif kind in (MESSAGE_COMPONENT, MODAL_SUBMIT):
                await self._press(interaction)
        except REACHABLE as exc:
            log.warning("owner bot: an answer to the owner failed: %s", describe(exc))

    async def _press(self, interaction: discord.Interaction[Any]) -> None:
        data: Any = interaction.data or {}
        press = read_custom_id(data.get("custom_id"))
        if press is None:
            await interaction.response.send_message("That button is not mine.", ephemeral=True)
            return
        content: str | None = None
        if interaction.type.value == MESSAGE_COMPONENT and press.action == "edit":
            text = self.contents.get(press.draft_id) or await self._draft_text(press.draft_id)
            if text is None:
                await interaction.response.send_message(
                    f"Draft {press.draft_id} is no longer waiting.", ephemeral=True
                )
                return
            await self._respond_modal(interaction, edit_modal(press.draft_id, text))
            return
        if interaction.type.value == MODAL_SUBMIT:
            content = modal_value(data)
            if content is None:
                await interaction.response.send_message("The modal had no text.", ephemeral=True)
                return
        action: Literal["send", "discard"] = "discard" if press.action == "discard" else "send"
        await interaction.response.defer()  # the DM is edited when the draft is settled
        frame = protocol.DraftAction(
            type="draft_action", id=press.draft_id, action=action, content=content
        )
        done = await self._desk.control(frame)
        if done is not None and done.get("status") == "failed":
            await interaction.followup.send(f"Not done: {done.get('error')}", ephemeral=True)

    async def _draft_text(self, draft_id: str) -> str | None:
        for frame in await self._desk.drafts():
            if frame["id"] == draft_id:
                return str(frame["content"])
        return None

    async def _respond_modal(
        self, interaction: discord.Interaction[Any], modal: dict[str, Any]
    ) -> None:
        route = Route(
            "POST",
            "/interactions/{interaction_id}/{interaction_token}/callback",
            interaction_id=interaction.id,
            interaction_token=interaction.token,
        )
        await self.http.request(route, json={"type": MODAL, "data": modal})

    async def _command(self, interaction: discord.Interaction[Any]) -> None:
        data: Any = interaction.data or {}
        name, options = data.get("name"), command_options(data)
        await interaction.response.defer(thinking=True)
        answer = await self._answer(name, options)
        await interaction.edit_original_response(content=answer)

    async def _answer(self, name: object, options: dict[str, str]) -> str:
        if name == "away":
            mode = options.get("mode")
            frame = protocol.AwayRequest(
                type="away",
                mode=mode if mode in ("on", "off", "auto") else None,  # type: ignore[arg-type]
                note=options.get("note"),
            )
            status = await self._desk.control(frame)
            return away_answer(status or {})
        if name == "drafts":
            return drafts_answer(await self._desk.drafts())
        if name == "history":
            since_text = options.get("since") or "24h"
            try:
                since = history_since(since_text)
            except SpanError:
                return f"{since_text!r} is not a span such as 30m, 2h or 1d."
            return history_answer(await self._desk.history(since), since_text)
        return f"Unknown command {name!r}."
