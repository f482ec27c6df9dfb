"""The gateway bot: discord.py connected as the application's bot user, answering as the relay.

discord.py keeps one aiohttp session per process for every REST call (messages, typing, command
registration, interaction responses) with its own rate limiting, so nothing else talks to Discord.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from server.bot.commands import COMMANDS, SlashCommands, ephemeral, read_command_data
from server.bot.gateway_payloads import PayloadGuard, describe
from server.bot.incoming import incoming_message
from server.bot.pair_turns import PairTurns
from server.bot.policy import SeenMessage, decide, screen, without_mention
from server.bot.registration import CommandRegistration, retry_delays
from server.bot.responder import Answer, Responder
from server.config import ConfigError, Settings
from server.conversation.reply_policy import ReplyPolicy
from server.conversation.rules import RuleSet
from server.delivery.splitter import split_message

log = logging.getLogger(__name__)

DISCORD_MESSAGE_LIMIT = 2000
INTENTS = discord.Intents(guilds=True, guild_messages=True, dm_messages=True, message_content=True)
"""Messages in guild channels and DMs, with their text (MESSAGE_CONTENT is privileged); the
guilds themselves, which discord.py needs to know its channels."""
NO_PINGS = discord.AllowedMentions.none()
FIRST_RECONNECT_SECONDS = 1.0
MAX_RECONNECT_SECONDS = 60.0
FATAL = (discord.DiscordException, OSError, aiohttp.ClientError, TimeoutError)
"""What discord.py itself reports or retries; anything else out of the gateway loop is a payload
it could not handle."""


def point_discord_py_at(api_base: str) -> None:
    """Send discord.py's REST traffic to `api_base` (a class attribute: one bot per process)."""
    Route.BASE = api_base


async def overwrite_commands(
    http: discord.http.HTTPClient, app_id: int, commands: list[dict[str, Any]]
) -> str | None:
    """One bulk overwrite of an application's commands; None if it worked, else what the
    server said (for `CommandRegistration`)."""
    try:
        await http.bulk_upsert_global_commands(app_id, commands)
    except discord.HTTPException as exc:
        return str(exc)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return f"cannot reach it: {exc or type(exc).__name__}"
    return None


class BotClient(discord.Client):
    """Answers allow-listed people's messages and runs the slash commands.

    Whatever the server sends or refuses costs at most what it concerns: a refused command
    registration the commands (tried again later), an unreadable event that event.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        rules: Callable[[], RuleSet],
        responder: Responder,
        commands: SlashCommands,
        limits: ReplyPolicy,
        turns: PairTurns,
        **options: Any,
    ) -> None:
        """`options` go to discord.py's client (`shard_count` for the sharded one)."""
        # The bot never joins voice: no warning that voice's optional libraries are missing.
        discord.VoiceClient.warn_dave = False
        # The application id comes with the login (GET /oauth2/applications/@me).
        super().__init__(intents=INTENTS, allowed_mentions=NO_PINGS, max_messages=None, **options)
        self._settings = settings
        self._rules = rules
        self._responder = responder
        self._commands = commands
        self._limits = limits
        self._turns = turns
        self.payloads = PayloadGuard()
        self.payloads.install(self._connection.parsers)
        self.registration: CommandRegistration | None = None

    async def setup_hook(self) -> None:
        """After login, before the gateway: find the gateway, register the commands."""
        _shards, url, _limits = await self.http.get_bot_gateway()
        # discord.py connects to DEFAULT_GATEWAY unless told; Discord names the URL to use.
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        app_id, configured = self.application_id, self._settings.DISCORD_APPLICATION_ID
        if app_id is None:
            raise ConfigError("Discord did not say which application DISCORD_BOT_TOKEN belongs to")
        if configured and configured != str(app_id):
            raise ConfigError(
                f"DISCORD_APPLICATION_ID is {configured}, but DISCORD_BOT_TOKEN belongs to "
                f"application {app_id}; fix one of them"
            )
        self.registration = CommandRegistration(
            lambda: overwrite_commands(self.http, app_id, COMMANDS), COMMANDS
        )
        await self.registration.start()
        if self.registration.registered:
            log.info("registered %d slash commands for application %s", len(COMMANDS), app_id)

    async def connect(self, *, reconnect: bool = True) -> None:
        """discord.py's gateway loop, started again (with backoff) when a payload it could not
        handle escapes it, instead of ending the bot."""
        delays = retry_delays(FIRST_RECONNECT_SECONDS, MAX_RECONNECT_SECONDS)
        while True:
            try:
                await super().connect(reconnect=reconnect)
                return
            except FATAL:
                raise
            except Exception as exc:
                if not reconnect or self.is_closed():
                    raise
                delay = next(delays)
                log.warning(
                    "the gateway connection stopped on a payload it could not read (%s); "
                    "connecting again in %.0f s",
                    describe(exc),
                    delay,
                )
                log.debug("what stopped the gateway connection", exc_info=exc)
                with contextlib.suppress(Exception):
                    await self.ws.close(code=4000)
                await asyncio.sleep(delay)

    async def close(self) -> None:
        """Stop retrying the command registration, then disconnect."""
        if self.registration is not None:
            await self.registration.stop()
        await super().close()

    async def on_ready(self) -> None:
        """Log who we are once the gateway session is ready."""
        assert self.user is not None
        log.info("connected to Discord as %s (id %s)", self.user, self.user.id)

    async def on_resumed(self) -> None:
        """Log a resumed gateway session (discord.py resumes by itself after a disconnect)."""
        log.info("gateway session resumed")

    async def on_message(self, message: discord.Message) -> None:
        """Answer the message if the rules say so; the life of one message reads top to bottom."""
        me = self.user
        if me is None:
            return
        seen = _seen(message, me.id)
        decision = decide(seen, self._rules())
        if decision.rule is None:
            log.debug("message %s not answered: %s", seen.id, decision.reason)
            return
        incoming = incoming_message(message, seen.content, me.id)
        pair = (seen.author_id, seen.channel_id)
        async with self._turns.turn(pair):
            # In the pair's turn: the replies before this one are counted by now.
            held = screen(self._limits, pair, seen.content, time.time())
            if not held.reply:
                level = logging.DEBUG if held.quiet else logging.INFO
                log.log(level, "message %s remembered, not answered: %s", seen.id, held.reason)
                await self._responder.remember_unanswered(pair, incoming)
                return
            typing = asyncio.create_task(self._keep_typing(message.channel))
            try:
                answer = await self._responder.answer(pair, incoming, decision.rule)
            finally:
                typing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await typing
            if answer is None:
                return
            self._limits.replied(pair, answer.text, time.time())
            if await self._send(message, seen.in_guild, answer):
                await self._responder.remember(answer)
                log.info("answered user %s in channel %s (%d chars)", *pair, len(answer.text))

    async def on_interaction(self, interaction: discord.Interaction[BotClient]) -> None:
        """Run a slash command: refuse at once, or defer and then edit in the answer.

        The channel is read from the ids when discord.py has no channel object for it (Spacebar
        sends only `channel_id`); an interaction not answered is always logged with the reason.
        """
        raw_channel_id = self.payloads.interaction_channel(interaction.id)
        if interaction.type is not discord.InteractionType.application_command:
            log.info(
                "interaction %s not answered: a %s, and the bot has only slash commands",
                interaction.id,
                interaction.type.name,
            )
            return
        if interaction.data is None:
            log.warning("interaction %s not answered: it carries no command", interaction.id)
            return
        channel_id = interaction.channel_id or raw_channel_id
        if channel_id is None:
            log.warning(
                "/%s (interaction %s) not answered: it names no channel",
                interaction.data.get("name", "?"),
                interaction.id,
            )
            return
        invocation = read_command_data(
            interaction.data,
            str(interaction.user.id),
            str(channel_id),
            dm=interaction.guild_id is None,
        )
        try:
            refusal = self._commands.check(invocation)
            if refusal is not None:
                await interaction.response.send_message(
                    refusal.content, ephemeral=True, allowed_mentions=NO_PINGS
                )
                return
            await interaction.response.defer(ephemeral=ephemeral(invocation), thinking=True)
            reply = await self._commands.run(invocation)
            first, *rest = split_message(reply.content, DISCORD_MESSAGE_LIMIT)
            await interaction.edit_original_response(content=first, allowed_mentions=NO_PINGS)
            for part in rest:
                await interaction.followup.send(
                    part, ephemeral=reply.ephemeral, allowed_mentions=NO_PINGS
                )
        except discord.HTTPException as exc:
            log.error(
                "/%s in channel %s: Discord refused the answer: %s",
                invocation.name,
                invocation.channel_id,
                exc,
            )
        except Exception:
            log.exception("/%s in channel %s failed", invocation.name, invocation.channel_id)

    async def _send(self, message: discord.Message, in_guild: bool, answer: Answer) -> bool:
        """Post the answer in parts, the first as a reply in guild channels; pings nobody."""
        parts = split_message(answer.text, DISCORD_MESSAGE_LIMIT)
        for index, part in enumerate(parts):
            try:
                if index == 0 and in_guild:
                    await message.reply(part, mention_author=False, allowed_mentions=NO_PINGS)
                else:
                    await message.channel.send(part, allowed_mentions=NO_PINGS)
            except discord.HTTPException as exc:
                log.error(
                    "answer to message %s not delivered (part %d of %d) in channel %s: %s",
                    message.id,
                    index + 1,
                    len(parts),
                    message.channel.id,
                    exc,
                )
                return index > 0
        return True

    async def _keep_typing(self, channel: discord.abc.Messageable) -> None:
        """Show the typing indicator, after TYPING_DELAY_SECONDS, until cancelled; a failure is
        not worth an answer."""
        await asyncio.sleep(self._settings.TYPING_DELAY_SECONDS)
        while True:
            try:
                await channel.typing()
            except discord.HTTPException as exc:
                log.debug("typing indicator failed: %s", exc)
            await asyncio.sleep(self._settings.TYPING_INTERVAL_SECONDS)


class ShardedBotClient(BotClient, discord.AutoShardedClient):
    """The same bot over several gateway connections, for an application in many guilds."""


def _seen(message: discord.Message, bot_id: int) -> SeenMessage:
    """The facts `decide` needs, read from discord.py's message."""
    reference = message.reference
    resolved = reference.resolved if reference is not None else None
    return SeenMessage(
        id=str(message.id),
        author_id=str(message.author.id),
        author_is_bot=message.author.bot,
        channel_id=str(message.channel.id),
        in_guild=not isinstance(message.channel, discord.DMChannel),
        mentions_bot=any(user.id == bot_id for user in message.mentions),
        replies_to_bot=isinstance(resolved, discord.Message) and resolved.author.id == bot_id,
        content=without_mention(message.content, str(bot_id)),
        carries=bool(message.attachments or message.stickers or message.message_snapshots),
    )
