"""Wiring of bot-account mode: the parts both commands share, the gateway bot, the endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import discord
from aiohttp import web

from server.app import describe_backends
from server.bot.client import BotClient, ShardedBotClient, point_discord_py_at
from server.bot.commands import COMMANDS, SlashCommands
from server.bot.endpoints import bot_api_base
from server.bot.interactions import InteractionsEndpoint
from server.bot.keys import BOT_KEYS, INTERACTIONS_KEYS, WHERE_TO_FIND, require
from server.bot.pair_turns import PairTurns
from server.bot.responder import Responder
from server.bot.shards import AUTO, SETTING, recommended_shards, shard_count
from server.bot.sqlite_state import SqliteBotState
from server.bot.state import BotStateStore, pair_of
from server.bot.webhooks import DiscordRestError, InteractionWebhooks
from server.config import ConfigError, Settings
from server.conversation.memory import MemoryStore
from server.conversation.reply_policy import REMEMBERED_SECONDS, ReplyPolicy
from server.conversation.rules_file import RulesWatcher
from server.llm.chain import BackendChain, build_backend_chain
from server.storage.conversations import ConversationStore
from server.storage.store_guard import StoreGuard
from server.transport.local_server import is_loopback

log = logging.getLogger(__name__)

TOKEN_REFUSED = (
    "Discord refused DISCORD_BOT_TOKEN (401 Unauthorized): copy the bot's token again "
    f"({WHERE_TO_FIND['DISCORD_BOT_TOKEN']})"
)
INTENT_REFUSED = (
    "Discord refused the Message Content intent: turn on “Message Content Intent” "
    "(Developer Portal → your application → Bot → Privileged Gateway Intents)"
)


IN_MEMORY = ":memory:"
"""How the store guard names memory and state given in memory (tests), as SQLite would."""


class BotError(Exception):
    """Discord could not be reached or refused to start the bot; the text says which and why."""


@dataclass
class BotParts:
    """What the gateway bot and the interactions endpoint share: rules, LLM, memory, commands,
    the per-pair reply limits, and each pair's turn to be answered."""

    rules: RulesWatcher
    llm: BackendChain
    responder: Responder
    commands: SlashCommands
    limits: ReplyPolicy
    turns: PairTurns
    store: ConversationStore | None
    """The database behind memory and state, when they are not given (opened by `open`)."""

    @classmethod
    def build(
        cls,
        settings: Settings,
        reply_config: Path,
        *,
        memory: MemoryStore | None = None,
        state: BotStateStore | None = None,
    ) -> BotParts:
        """Load the rules and build the LLM chain; memory and state in DATABASE unless given."""
        rules = RulesWatcher(reply_config, lambda _rules: None)
        store = (
            None
            if memory is not None and state is not None
            else ConversationStore(settings.DATABASE)
        )
        if store is not None:
            memory = memory if memory is not None else store
            state = state if state is not None else SqliteBotState(store.database)
        assert memory is not None and state is not None
        llm = build_backend_chain(settings)
        responder = Responder(
            settings=settings,
            rules=lambda: rules.current,
            llm=llm,
            memory=memory,
            state=state,
            stored=StoreGuard(store.path if store is not None else IN_MEMORY),
            summaries=store if store is not None and memory is store else None,
        )
        limits, turns = bot_limits(settings), PairTurns()
        commands = SlashCommands(
            rules=lambda: rules.current,
            state=state,
            memory=memory,
            responder=responder,
            limits=limits,
            turns=turns,
        )
        return cls(rules, llm, responder, commands, limits, turns, store)

    async def open(self) -> None:
        """Open the database (if this bot keeps its own) and count the last hour's answers in
        it, so a restart does not reset the reply limits; `DatabaseError` names the file."""
        if self.store is not None:
            await self.store.open()
            log.info("conversations are kept in %s", self.store.path)
            answers = await self.store.replies_since(time.time() - REMEMBERED_SECONDS)
            self.limits.restore_replies((pair_of(key), text, at) for key, text, at in answers)

    async def close(self) -> None:
        """Close the LLM clients, the attachment reader and the database."""
        await self.llm.aclose()
        await self.responder.aclose()
        if self.store is not None:
            await self.store.close()

    def log_start(self, settings: Settings) -> None:
        """The start-up lines both commands print: backends and watched pairs."""
        log.info("LLM backends: %s", describe_backends(settings, self.llm))
        rules = self.rules.current
        log.info(
            "watching %d pair(s) and %d persona(s) from %s",
            len(rules.rules),
            len(rules.personas),
            self.rules.path,
        )


def bot_limits(settings: Settings) -> ReplyPolicy:
    """The relay's guard rails as the bot applies them: MAX_REPLIES_PER_MINUTE / _PER_HOUR per
    pair, and automatic messages recognised (REPLY_PREFIX among the disclosure prefixes: the
    owner's relay may share a channel with the bot). No takeover: the bot is not the owner."""
    return ReplyPolicy(
        takeover_seconds=0.0,
        per_minute=settings.MAX_REPLIES_PER_MINUTE,
        per_hour=settings.MAX_REPLIES_PER_HOUR,
        reply_prefix=settings.REPLY_PREFIX,
    )


class Bot:
    """`discord-auto-reply bot`: the gateway client, with the rules file watched meanwhile."""

    def __init__(
        self,
        settings: Settings,
        reply_config: Path,
        *,
        memory: MemoryStore | None = None,
        state: BotStateStore | None = None,
    ) -> None:
        require(settings, "bot", BOT_KEYS)
        self.settings = settings
        self.shards_setting: object = settings.BOT_SHARDS
        shard_count(self.shards_setting, None)  # a bad value is a ConfigError before any I/O
        self.parts = BotParts.build(settings, reply_config, memory=memory, state=state)
        point_discord_py_at(bot_api_base(settings.DISCORD_API_BASE))
        self.client = self._client(None)
        self._closing = False

    def _client(self, shards: int | None) -> BotClient:
        """The discord.py client: sharded over `shards` connections, or one connection."""
        kind, options = (
            (BotClient, {}) if shards is None else (ShardedBotClient, {"shard_count": shards})
        )
        return kind(
            settings=self.settings,
            rules=lambda: self.parts.rules.current,
            responder=self.parts.responder,
            commands=self.parts.commands,
            limits=self.parts.limits,
            turns=self.parts.turns,
            **options,
        )

    async def _choose_shards(self) -> None:
        """Ask Discord how many shards to run (BOT_SHARDS "auto"), and switch to the sharded
        client when that is more than one."""
        recommended = None
        if self.shards_setting == AUTO:
            api_base = bot_api_base(self.settings.DISCORD_API_BASE)
            recommended = await recommended_shards(api_base, self.settings.DISCORD_BOT_TOKEN)
        shards = shard_count(self.shards_setting, recommended)
        if shards is None:
            log.info("one gateway connection (%s=%s)", SETTING, self.shards_setting)
            return
        log.info(
            "%d gateway shards (%s=%s%s)",
            shards,
            SETTING,
            self.shards_setting,
            f", Discord recommends {recommended}" if recommended is not None else "",
        )
        self.client = self._client(shards)

    async def run(self) -> None:
        """Log in, connect and answer until `close`; `ConfigError` or `BotError` if refused."""
        self.parts.log_start(self.settings)
        await self.parts.open()
        watcher = asyncio.create_task(self.parts.rules.run(), name="rules watcher")
        try:
            await self._choose_shards()
            if self._closing:
                return
            async with self.client:
                await self.client.start(self.settings.DISCORD_BOT_TOKEN)
        except discord.LoginFailure:
            raise ConfigError(TOKEN_REFUSED) from None
        except discord.PrivilegedIntentsRequired:
            raise ConfigError(INTENT_REFUSED) from None
        except (
            OSError,
            aiohttp.ClientError,
            discord.HTTPException,
            discord.GatewayNotFound,
        ) as exc:
            where = bot_api_base(self.settings.DISCORD_API_BASE)
            raise BotError(f"cannot use Discord at {where}: {exc}") from None
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await self.parts.close()

    async def close(self) -> None:
        """Disconnect; `run` returns."""
        self._closing = True
        await self.client.close()


class InteractionsServer:
    """`discord-auto-reply interactions`: `POST /interactions` on `host:port`."""

    def __init__(
        self,
        settings: Settings,
        reply_config: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 8787,
        memory: MemoryStore | None = None,
        state: BotStateStore | None = None,
    ) -> None:
        require(settings, "interactions", INTERACTIONS_KEYS)
        self.settings = settings
        self.host = host
        self.port = port
        self.parts = BotParts.build(settings, reply_config, memory=memory, state=state)
        self.webhooks = InteractionWebhooks(
            api_base=bot_api_base(settings.DISCORD_API_BASE),
            application_id=settings.DISCORD_APPLICATION_ID,
            bot_token=settings.DISCORD_BOT_TOKEN,
        )
        endpoint = InteractionsEndpoint(
            public_key=settings.DISCORD_PUBLIC_KEY,
            commands=self.parts.commands,
            webhooks=self.webhooks,
        )
        self._runner = web.AppRunner(endpoint.application(), access_log=None)
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Register the commands (when the bot token is set), listen; returns the bound port."""
        await self.parts.open()
        if self.settings.DISCORD_BOT_TOKEN:
            try:
                await self.webhooks.overwrite_commands(COMMANDS)
            except DiscordRestError as exc:
                await self.webhooks.aclose()
                await self.parts.close()
                if exc.status == 401:
                    raise ConfigError(TOKEN_REFUSED) from None
                raise BotError(f"cannot register the slash commands: {exc}") from None
            log.info("registered %d slash commands", len(COMMANDS))
        else:
            log.warning(
                "DISCORD_BOT_TOKEN is empty: the slash commands are not registered here "
                "(set it, or run `discord-auto-reply bot` once)"
            )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        port = int(self._runner.addresses[0][1])
        if not is_loopback(self.host):
            log.warning("listening on a non-loopback address; every request is still signed")
        log.info("interactions endpoint on http://%s:%d/interactions", self.host, port)
        self.parts.log_start(self.settings)
        self._watcher = asyncio.create_task(self.parts.rules.run(), name="rules watcher")
        return port

    async def stop(self) -> None:
        """Stop listening, let answers in progress finish, close the clients."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self._runner.cleanup()
        await self.webhooks.aclose()
        await self.parts.close()
