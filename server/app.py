"""Wiring: build the rules, LLM backends, messenger, relay and gateway; start and stop them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from server.config import ConfigError, Settings
from server.conversation.prompt_context import OwnerContext
from server.conversation.relay import Relay
from server.conversation.rules import RuleSet
from server.conversation.rules_file import RulesWatcher
from server.delivery.echoes import EchoTracker
from server.llm.chain import BackendChain, build_backend_chain
from server.messengers.base import Messenger
from server.messengers.macro import MacroMessenger
from server.messengers.plugin import PluginMessenger
from server.messengers.rest import RestMessenger
from server.owner.away_mode import AwayMode
from server.owner.away_note import AwayNote
from server.owner.chosen_chats import ChosenChats
from server.owner.drafts import Drafts
from server.owner.notifier import Notifier
from server.storage.conversations import ConversationStore
from server.storage.database import Database, DatabaseError, SchemaTooNewError
from server.storage.owner_store import Draft, OwnerStore
from server.storage.rule_store import RuleStore, StoredRule
from server.transport import protocol
from server.transport.gateway import Gateway
from server.transport.local_server import LocalServer, is_loopback

if TYPE_CHECKING:
    from server.owner.remote.remote import OwnerRemote

log = logging.getLogger(__name__)

PRUNE_INTERVAL_SECONDS = 24 * 3600.0
PLUGIN_WATCH_SECONDS = 1.0
"""How often the relay looks whether a plugin it must post through is still connected."""


def check_settings(settings: Settings, *, allow_remote: bool) -> None:
    """Refuse unsafe or incomplete settings before anything starts; `ConfigError` says why."""
    if not settings.WEBSOCKET_SECRET:
        raise ConfigError(
            "WEBSOCKET_SECRET is empty: the plugin must authenticate. "
            "Run `discord-auto-reply init` or set the WEBSOCKET_SECRET environment variable"
        )
    if not is_loopback(settings.WEBSOCKET_HOST) and not allow_remote:
        raise ConfigError(
            f"WEBSOCKET_HOST {settings.WEBSOCKET_HOST!r} is not a loopback address; "
            "pass --allow-remote to listen on it anyway"
        )
    if settings.messenger_name() == "rest" and not settings.DISCORD_AUTHORIZATION:
        raise ConfigError("MESSENGER is 'rest' but DISCORD_AUTHORIZATION is empty")
    if settings.OWNER_BOT and not settings.DISCORD_BOT_TOKEN:
        raise ConfigError("OWNER_BOT is true but DISCORD_BOT_TOKEN is empty")


def build_messenger(settings: Settings, gateway: Gateway, echoes: EchoTracker) -> Messenger:
    """The messenger MESSENGER names (after resolving "auto"); `echoes` tells the plugin
    messenger which replies Discord has echoed back."""
    name = settings.messenger_name()
    if name == "rest":
        return RestMessenger(settings.DISCORD_AUTHORIZATION, settings.DISCORD_API_BASE)
    if name == "macro":
        return MacroMessenger(
            gateway,
            timeout=settings.SEND_TIMEOUT_SECONDS,
            idle_seconds=settings.MACRO_IDLE_SECONDS,
        )
    return PluginMessenger(gateway, timeout=settings.SEND_TIMEOUT_SECONDS, echoed=echoes.was_echoed)


def describe_backend(settings: Settings, name: str) -> str:
    """A backend's name with its model and server or provider (no keys)."""
    if name == "openai":
        where = urlsplit(settings.OPENAI_BASE_URL).netloc or "api.openai.com"
        return f"openai ({settings.OPENAI_MODEL} at {where})"
    if name == "g4f":
        return (
            f"g4f ({settings.G4F_MODEL or 'default model'} via {settings.G4F_PROVIDER or 'auto'})"
        )
    return name


def describe_backends(settings: Settings, chain: BackendChain) -> str:
    """One line naming each backend that will be tried (no keys)."""
    described = [describe_backend(settings, name) for name in chain.names]
    return ", ".join(described) or "none (only FALLBACK_MESSAGE can be sent)"


class App:
    """The running relay server."""

    def __init__(
        self,
        settings: Settings,
        reply_config: Path,
        *,
        allow_remote: bool = False,
        config_dir: Path | None = None,
    ):
        """`config_dir`: the folder of config.json, where g4f keeps its own files."""
        check_settings(settings, allow_remote=allow_remote)
        self.settings = settings
        self.rules_watcher = RulesWatcher(reply_config, self._rules_changed)
        self.llm = build_backend_chain(settings, config_dir)
        self.gateway = Gateway(
            secret=settings.WEBSOCKET_SECRET,
            allowed_origins=settings.ALLOWED_ORIGINS,
            accept=self._accept,
            watch_list=self._watch_list,
            messenger_name=settings.messenger_name(),
            hello_timeout=settings.HELLO_TIMEOUT_SECONDS,
            control=self._control,
            greeting=self._greeting,
        )
        echoes = EchoTracker()
        self.messenger = build_messenger(settings, self.gateway, echoes)
        self.store = ConversationStore(settings.DATABASE)
        self.records = OwnerStore(self.store)
        self.chosen = ChosenChats(
            RuleStore(self.store),
            lambda: self.rules_watcher.current,
            default_mode=settings.MODE,
            default_when=settings.REPLY_WHEN,
        )
        """The chats chosen from Discord; `chosen.effective()` is what every part matches."""
        self.notifier = Notifier(settings)
        self.drafts = Drafts(
            self.records,
            expire_seconds=settings.DRAFT_EXPIRE_MINUTES * 60,
            notify=self._tell_owner,
            deliver=self._deliver_draft,
        )
        self.relay = Relay(
            settings=settings,
            rules=self.chosen.effective,
            llm=self.llm,
            messenger=self.messenger,
            store=self.store,
            drafts=self.drafts,
            echoes=echoes,
            events=self.notifier,
        )
        self.away = AwayMode(
            self.relay.presence,
            self.records,
            self.drafts,
            reply_when=settings.REPLY_WHEN,
            rules=self.chosen.effective,
            notify=self._tell_owner,
            zone_name=settings.TIMEZONE,
        )
        self.away_note = AwayNote(self.records, configured=settings.AWAY_NOTE)
        self.away.note_fields = lambda: {
            "note": self.away_note.text,
            "note_source": self.away_note.source,
        }
        self.relay.owner_context = self._owner_context
        self.owner_remote = self._owner_remote() if settings.OWNER_BOT else None
        self._server: LocalServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._retelling: set[asyncio.Task[None]] = set()

    def _watch_list(self) -> list[dict[str, str]]:
        """The effective rules' watch list (read afresh: the rules change in place)."""
        return self.chosen.effective().watch_list()

    def _tell_owner(self, frame: dict[str, Any]) -> None:
        """Show `frame` in the owner's plugins; drafts and the summary are pushed too."""
        self.gateway.broadcast(frame)
        self.notifier.owner_frame(frame)
        if self.owner_remote is not None:
            self.owner_remote.owner_frame(frame)

    def _owner_remote(self) -> OwnerRemote:
        """The owner's bot (OWNER_BOT), told of drafts and of the notifier's notices."""
        try:
            from server.owner.remote.client import OwnerDesk  # noqa: PLC0415 (the `bot` extra)
            from server.owner.remote.remote import OwnerRemote  # noqa: PLC0415
        except ImportError as exc:
            raise ConfigError(
                f"OWNER_BOT needs discord.py ({exc}): pip install 'discord-auto-reply[bot]'"
            ) from None
        desk = OwnerDesk(
            control=self._control, drafts=self.drafts.frames, history=self.records.history
        )
        remote = OwnerRemote(
            self.settings, desk, lambda: self.settings.OWNER_ID or self.gateway.self_id
        )
        self.notifier.listeners.append(remote.notice)
        return remote

    def _owner_context(self) -> OwnerContext:
        """The owner as the replies know them: name, away since when, the away note."""
        note = self.away_note
        since = self.away.away_since
        return OwnerContext(note.owner_name, self.relay.presence.away, since, note.text)

    async def _accept(self, message: protocol.IncomingMessage) -> None:
        await self.relay.accept(message)

    async def _control(self, frame: protocol.OwnerFrame) -> dict[str, Any] | None:
        """The owner's frames: presence reports, the away switch, actions on drafts."""
        if isinstance(frame, protocol.PresenceReport):
            self.away_note.reported(frame.custom_status, frame.name)
            await self.away.report(frame.status)
            return None
        if isinstance(frame, protocol.AwayRequest):
            if frame.note is not None:
                await self.away_note.set(frame.note)
                self.away.retell()  # every plugin's panel shows the new note
            mode = frame.mode
            return self.away.status() if mode is None else await self.away.switch(mode)
        if isinstance(frame, protocol.RulesRequest):
            return await self._rules_frame()
        if isinstance(frame, protocol.RuleSetRequest | protocol.RuleRemoveRequest):
            return await self._change_rule(frame)
        return await self.drafts.act(frame.id, frame.action, frame.content)

    async def _change_rule(
        self, frame: protocol.RuleSetRequest | protocol.RuleRemoveRequest
    ) -> dict[str, Any]:
        """Set or remove a chat chosen from Discord; every plugin hears of the new rules before
        the answer goes out."""
        if isinstance(frame, protocol.RuleRemoveRequest):
            result = await self.chosen.remove(frame.user, frame.channel)
        else:
            wanted = StoredRule(
                frame.user, frame.channel, frame.persona, frame.mode, frame.reply_when, frame.label
            )
            result = await self.chosen.set(wanted)
        if result.changed:
            log.info("%s", result.text)
            await self._retell_rules()
        return protocol.rule_result(result.ok, result.text, result.rule)

    async def _rules_frame(self) -> dict[str, Any]:
        """Every effective rule, the PERSONAS names and what a rule without a mode does."""
        personas = [name for name, _ in self.chosen.effective().personas]
        defaults: dict[str, str] = {
            "mode": self.settings.MODE,
            "reply_when": self.settings.REPLY_WHEN,
        }
        return protocol.rules(await self.chosen.rule_objects(), personas, defaults)

    async def _retell_rules(self) -> None:
        """Tell every plugin the new watch list and rules."""
        self.gateway.broadcast(protocol.watch(self._watch_list()))
        self.gateway.broadcast(await self._rules_frame())

    async def _deliver_draft(self, draft: Draft, text: str) -> int:
        return await self.relay.deliver_draft(draft, text)

    async def _greeting(self) -> list[dict[str, Any]]:
        """What a plugin gets after its welcome: the away status, the rules, the pending drafts."""
        return [self.away.status(), await self._rules_frame(), *await self.drafts.frames()]

    def _rules_changed(self, _file_rules: RuleSet) -> None:
        """`reply_config.py` was reloaded: retell the rules (merged afresh) to every plugin."""
        task = asyncio.create_task(self._retell_rules(), name="retell rules")
        self._retelling.add(task)
        task.add_done_callback(self._retelling.discard)

    async def start(self) -> int:
        """Open the database, listen and start watching the rules file; returns the bound port.

        A database from a newer release stops the start (`DatabaseError`); one that cannot be
        opened otherwise is reported, and the relay runs without memory.
        """
        settings = self.settings
        await self.notifier.start()
        await self._open_store()
        await self.chosen.load()
        await self.relay.start()
        await self.away.start()
        await self.away_note.start()
        await self.drafts.start()
        self._server = await self.gateway.start(
            settings.WEBSOCKET_HOST,
            settings.WEBSOCKET_PORT,
            check_host=is_loopback(settings.WEBSOCKET_HOST),
        )
        port = self._server.port
        self._tasks = [
            asyncio.create_task(self.rules_watcher.run(), name="rules watcher"),
            asyncio.create_task(self._prune_daily(), name="retention"),
        ]
        if self.messenger.name in ("plugin", "macro"):  # replies go out through the plugin
            self._tasks.append(asyncio.create_task(self._watch_plugin(), name="plugin watch"))
        if not is_loopback(settings.WEBSOCKET_HOST):
            log.warning("listening on a non-loopback address: other machines can reach the relay")
        log.info("listening on ws://%s:%d", settings.WEBSOCKET_HOST, port)
        log.info("the plugin's HTTP transport: http://%s:%d/plugin/", settings.WEBSOCKET_HOST, port)
        log.info("LLM backends: %s", describe_backends(settings, self.llm))
        log.info("messenger: %s", self.messenger.name)
        in_file = len(self.rules_watcher.current.rules)
        watched = len(self.chosen.effective().rules)
        chosen = f" and {watched - in_file} chosen from Discord" if watched > in_file else ""
        log.info("watching %d pair(s) from %s%s", in_file, self.rules_watcher.path, chosen)
        if not watched:
            log.warning(
                "nobody gets replies yet: add pairs to REPLY_TO in that file, or choose chats "
                "from Discord (right-click > Auto-reply) or with `discord-auto-reply rules add`"
            )
        if self.owner_remote is not None:
            await self.owner_remote.start()
        return port

    async def _open_store(self) -> None:
        try:
            await self.store.open()
        except SchemaTooNewError:
            raise
        except DatabaseError as exc:
            log.error("%s; conversations are kept in memory only until a restart", exc)
            await self.store.close()
            self.store.database = Database(":memory:")
            await self.store.open()
        log.info("conversations are kept in %s", self.store.path)

    async def _watch_plugin(self) -> None:
        """Tell the owner (once per absence) when no plugin has been connected for longer than
        SEND_TIMEOUT_SECONDS while replies only a plugin can post wait, or failed meanwhile."""
        limit = self.settings.SEND_TIMEOUT_SECONDS
        while True:
            await asyncio.sleep(PLUGIN_WATCH_SECONDS)
            gone_since = self.gateway.plugins_gone_since()
            stalled = gone_since is not None and self.relay.stalled_since(gone_since)
            self.notifier.plugin_absent(gone_since, stalled, limit)

    async def _prune_daily(self) -> None:
        """Delete what is older than RETENTION_DAYS, now and then once a day."""
        while True:
            horizon = time.time() - self.settings.RETENTION_DAYS * 86400
            try:
                pruned = await self.store.prune(horizon)
                await self.records.prune(horizon)
            except DatabaseError as exc:
                log.error("could not prune old conversations: %s", exc)
            else:
                if pruned:
                    log.info("pruned %d turn(s) older than the retention period", pruned)
            await asyncio.sleep(PRUNE_INTERVAL_SECONDS)

    async def stop(self) -> None:
        """Stop listening, then stop the workers, close every client and the database."""
        for task in [*self._tasks, *self._retelling]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.close()
        await self.gateway.aclose()
        if self.owner_remote is not None:
            await self.owner_remote.aclose()
        await self.drafts.aclose()
        await self.away.aclose()
        await self.relay.aclose()
        await self.messenger.aclose()
        await self.notifier.aclose()
        await self.llm.aclose()
        await self.store.close()
