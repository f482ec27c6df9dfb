"""Command line: `discord-auto-reply serve | init | plugin install | check | memory | away |
drafts | history | chat | style | bot | interactions`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from server import __version__, event_loop, log_redaction
from server.app import App
from server.bot.keys import BOT_KEYS, INTERACTIONS_KEYS, require
from server.cli import health_check, memory_commands, owner_commands, style_commands
from server.cli.chat_session import chat_rule, run_chat
from server.cli.control_client import ControlError
from server.cli.plugin_installer import (
    InstallError,
    check_install_target,
    default_plugin_dir,
    install_plugin,
)
from server.config import ConfigError, Settings, load_settings, write_initial_config
from server.conversation.rules import RulesError, RuleSet
from server.conversation.rules_file import load_rules
from server.owner import history
from server.owner.style_profile import PackageError
from server.storage.conversations import ConversationStore
from server.storage.database import DatabaseError
from server.storage.owner_store import OwnerStore

log = logging.getLogger("server")


class _Service(Protocol):
    """Something that starts listening and stops: the relay `App`, the interactions server."""

    async def start(self) -> int: ...

    async def stop(self) -> None: ...


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of `python -m server`."""
    args = _parser().parse_args(argv)
    try:
        code: int = args.command(args)
    except (
        ConfigError,
        RulesError,
        DatabaseError,
        InstallError,
        ControlError,
        history.SpanError,
        PackageError,
    ) as exc:
        print(f"discord-auto-reply: error: {exc}", file=sys.stderr)
        return 2
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="discord-auto-reply", description="Personal auto-reply relay for Discord."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the relay server")
    serve.add_argument("--config", type=Path, default=Path("config.json"))
    serve.add_argument("--reply-config", type=Path, default=Path("reply_config.py"))
    serve.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback WEBSOCKET_HOST"
    )
    serve.add_argument(
        "-v", "--verbose", action="count", default=0, help="-v: debug logs; -vv: also websockets"
    )
    serve.set_defaults(command=_serve)

    init = commands.add_parser("init", help="write config.json with a random secret")
    init.add_argument("--config", type=Path, default=Path("config.json"))
    init.set_defaults(command=_init)

    plugin = commands.add_parser("plugin", help="manage the BetterDiscord plugin")
    plugin_commands = plugin.add_subparsers(required=True, metavar="ACTION")
    install = plugin_commands.add_parser(
        "install", help="copy the plugin into BetterDiscord's plugins folder"
    )
    install.add_argument("--dir", type=Path, default=None, help="plugins folder to install into")
    install.add_argument("--config", type=Path, default=Path("config.json"))
    install.set_defaults(command=_plugin_install)

    check = commands.add_parser(
        "check", help="try every part of the configured path once and report (exit 0 = ready)"
    )
    check.add_argument("--config", type=Path, default=Path("config.json"))
    check.add_argument("--reply-config", type=Path, default=Path("reply_config.py"))
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(command=_check)

    memory = commands.add_parser("memory", help="read or reset the stored conversations")
    memory_actions = memory.add_subparsers(required=True, metavar="ACTION")
    for name, help_text in (
        ("list", "each pair: turns, last activity, takeover pause"),
        ("show", "one pair's conversation since its last reset"),
        ("reset", "start a pair (or --all) afresh"),
        ("export", "write stored turns as JSON"),
    ):
        action = memory_actions.add_parser(name, help=help_text)
        action.add_argument("--config", type=Path, default=Path("config.json"))
        action.set_defaults(command=_memory, action=name)
        if name in ("show", "reset"):
            action.add_argument("user", nargs="?" if name == "reset" else None)
            action.add_argument("channel", nargs="?" if name == "reset" else None)
        if name == "reset":
            action.add_argument("--all", action="store_true", help="reset every pair")
        if name == "export":
            action.add_argument("--pair", nargs=2, metavar=("USER", "CHANNEL"))
            action.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")
    _add_owner_commands(commands)

    bot = commands.add_parser("bot", help="run as a Discord bot account (gateway + slash commands)")
    bot.add_argument("--config", type=Path, default=Path("config.json"))
    bot.add_argument("--reply-config", type=Path, default=Path("reply_config.py"))
    bot.add_argument(
        "-v", "--verbose", action="count", default=0, help="-v: debug logs; -vv: also discord.py"
    )
    bot.set_defaults(command=_bot)

    interactions = commands.add_parser(
        "interactions", help="serve the bot's slash commands over HTTP (Interactions Endpoint URL)"
    )
    interactions.add_argument("--config", type=Path, default=Path("config.json"))
    interactions.add_argument("--reply-config", type=Path, default=Path("reply_config.py"))
    interactions.add_argument("--host", default="127.0.0.1")
    interactions.add_argument("--port", type=int, default=8787)
    interactions.add_argument("-v", "--verbose", action="count", default=0, help="debug logs")
    interactions.set_defaults(command=_interactions)
    return parser


def _add_owner_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`away`, `drafts`, `history` and `chat`: when the relay speaks for you, and what it said."""
    away = commands.add_parser("away", help="switch away mode, or show it (talks to the server)")
    away.add_argument(
        "mode",
        choices=["on", "off", "auto", "status", "note"],
        help="on: reply as if away; off: as if present; auto: follow your Discord status; "
        "note TEXT: what replies may say about your absence",
    )
    away.add_argument("text", nargs="?", help="with note: the away note")
    away.add_argument("--note", help='with on: set the away note too, e.g. "back at 18:00"')
    away.add_argument("--clear", action="store_true", help="with note: remove the away note")
    away.add_argument("--config", type=Path, default=Path("config.json"))
    away.set_defaults(command=_away)

    drafts = commands.add_parser("drafts", help="list the drafts waiting, or send or discard one")
    drafts.add_argument("action", nargs="?", choices=["list", "send", "discard"], default="list")
    drafts.add_argument("id", nargs="?", help="the draft's id (from `drafts`)")
    drafts.add_argument("--config", type=Path, default=Path("config.json"))
    drafts.set_defaults(command=_drafts)

    past = commands.add_parser("history", help="what the relay said for you, and what it skipped")
    past.add_argument("--since", default="24h", help="how far back: 90s, 30m, 2h, 1d, 1w")
    past.add_argument("--pair", nargs=2, metavar=("USER", "CHANNEL"))
    past.add_argument("--json", action="store_true", help="print JSON instead of a table")
    past.add_argument("--config", type=Path, default=Path("config.json"))
    past.set_defaults(command=_history)

    chat = commands.add_parser("chat", help="try a rule or a persona in the terminal")
    chat.add_argument("--user", help="play this user (the rule for --user and --channel is used)")
    chat.add_argument("--channel", help="in this channel")
    chat.add_argument("--persona", help="system prompt to try instead of the rule's")
    chat.add_argument("--keep", action="store_true", help="keep the memory in DATABASE")
    chat.add_argument("--config", type=Path, default=Path("config.json"))
    chat.add_argument("--reply-config", type=Path, default=Path("reply_config.py"))
    chat.set_defaults(command=_chat)

    style = commands.add_parser("style", help="learn, show, set or reset your writing style")
    style.add_argument("action", choices=["learn", "show", "set", "reset"])
    style.add_argument("--from", dest="package", type=Path, help="learn: Discord's data package")
    style.add_argument("--file", type=Path, help="set: a file holding the profile")
    style.add_argument("--config", type=Path, default=Path("config.json"))
    style.set_defaults(command=_style)


def _setup_logging(settings: Settings, verbosity: int) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    log_redaction.install(settings.secret_values(), [handler])
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("server").setLevel(logging.DEBUG if verbosity >= 1 else logging.INFO)
    logging.getLogger("websockets").setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    for noisy in ("httpx2", "httpcore2", "openai", "g4f"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("discord").setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    _setup_logging(settings, args.verbose)
    app = App(
        settings,
        args.reply_config,
        allow_remote=args.allow_remote,
        config_dir=args.config.resolve().parent,
    )
    try:
        event_loop.run(_run_until_signal(app))
    except OSError as exc:
        where = f"{settings.WEBSOCKET_HOST}:{settings.WEBSOCKET_PORT}"
        log.error("cannot listen on %s: %s", where, exc.strerror or exc)
        return 1
    except KeyboardInterrupt:
        # Windows: asyncio.run turned Ctrl-C into a cancel of the main task, whose `finally`
        # has already stopped the app; it re-raises the interrupt only to say so.
        pass
    return 0


async def _run_until_signal(app: _Service) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Windows has no loop signal handlers: there Ctrl-C cancels this task (see `_serve`).
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    await app.start()
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await app.stop()


def _memory(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if args.action == "reset" and args.all == bool(args.user and args.channel):
        print("discord-auto-reply: error: give USER CHANNEL, or --all", file=sys.stderr)
        return 2
    return asyncio.run(_run_memory_command(ConversationStore(settings.DATABASE), args))


async def _run_memory_command(store: ConversationStore, args: argparse.Namespace) -> int:
    await store.open()
    try:
        if args.action == "list":
            return await memory_commands.list_pairs(store)
        if args.action == "show":
            return await memory_commands.show(store, (args.user, args.channel))
        if args.action == "reset":
            pair = None if args.all else (args.user, args.channel)
            return await memory_commands.reset(store, pair)
        pair = tuple(args.pair) if args.pair else None
        return await memory_commands.export(store, pair, args.output)
    finally:
        await store.close()


def _away(args: argparse.Namespace) -> int:
    note: str | None = args.note
    if args.mode == "note":
        if args.clear == bool(args.text):
            print("away note: give the note text, or --clear to remove it", file=sys.stderr)
            return 2
        note = "" if args.clear else args.text
    elif args.text is not None or args.clear:
        print(
            f"away {args.mode}: unexpected {args.text or '--clear'}; see away note", file=sys.stderr
        )
        return 2
    settings = load_settings(args.config)
    return asyncio.run(owner_commands.away(settings, args.mode, note=note))


def _drafts(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if (args.action == "list") != (args.id is None):
        print(
            "discord-auto-reply: error: give `drafts`, or `drafts send|discard ID`", file=sys.stderr
        )
        return 2
    return asyncio.run(_run_drafts_command(settings, args))


async def _run_drafts_command(settings: Settings, args: argparse.Namespace) -> int:
    store = ConversationStore(settings.DATABASE)
    await store.open()
    try:
        records = OwnerStore(store)
        if args.action == "list":
            return await owner_commands.list_drafts(records)
        return await owner_commands.act_on_draft(settings, records, args.id, args.action)
    finally:
        await store.close()


def _history(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    span = history.parse_span(args.since)
    return asyncio.run(_run_history_command(settings, span, args))


async def _run_history_command(settings: Settings, span: float, args: argparse.Namespace) -> int:
    store = ConversationStore(settings.DATABASE)
    await store.open()
    try:
        pair = (args.pair[0], args.pair[1]) if args.pair else None
        return await history.history(OwnerStore(store), span, pair, json_output=args.json)
    finally:
        await store.close()


def _style(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log_redaction.install(settings.secret_values(), logging.getLogger().handlers)
    return asyncio.run(style_commands.run(settings, args.action, args.file, args.package))


def _chat(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if (args.user is None) != (args.channel is None) or (args.user is None and not args.persona):
        print(
            "discord-auto-reply: error: give --user ID --channel ID, or --persona TEXT",
            file=sys.stderr,
        )
        return 2
    rules = load_rules(args.reply_config) if args.user else RuleSet("", ())
    rule = chat_rule(rules, (args.user or "0", args.channel or "0"), args.persona)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log_redaction.install(settings.secret_values(), logging.getLogger().handlers)
    return run_chat(settings, rules, rule, keep=args.keep)


def _init(args: argparse.Namespace) -> int:
    write_initial_config(args.config)
    print(f"wrote {args.config} with a new random WEBSOCKET_SECRET")
    print("next: list who gets replies in reply_config.py, install the plugin with")
    print("      `discord-auto-reply plugin install`, and start `discord-auto-reply serve`")
    return 0


def _plugin_install(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if not settings.WEBSOCKET_SECRET:
        raise ConfigError(
            f"{args.config}: WEBSOCKET_SECRET is empty; run `discord-auto-reply init` first "
            "so the plugin and the server share a secret"
        )
    directory = args.dir or default_plugin_dir()
    check_install_target(directory)
    path = install_plugin(
        directory,
        host=settings.WEBSOCKET_HOST,
        port=settings.WEBSOCKET_PORT,
        secret=settings.WEBSOCKET_SECRET,
    )
    print(f"installed {path}")
    print("next: in Discord open Settings > Plugins, enable DiscordAutoReply,")
    print("      then start the server with `discord-auto-reply serve` (or `make run`);")
    print("      the plugin connects by itself")
    return 0


def _check(args: argparse.Namespace) -> int:
    """Print the report of `health_check`; 0 only when the configured path works."""
    handler = logging.StreamHandler()
    secrets: list[str] = []
    with contextlib.suppress(ConfigError):  # the report itself names a broken config
        secrets = load_settings(args.config).secret_values()
    log_redaction.install(secrets, [handler])
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)
    results = asyncio.run(health_check.run_checks(args.config, args.reply_config))
    if args.json:
        print(health_check.render_json(results))
    else:
        print(health_check.render_table(results, unicode=_can_print("✔✘")))
    return 0 if health_check.path_works(results) else 1


def _can_print(text: str) -> bool:
    """Whether stdout's encoding has these characters (a Windows console may not)."""
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except UnicodeEncodeError:
        return False
    return True


BOT_EXTRA_MISSING = (
    "bot-account mode needs the `bot` extra: pip install 'discord-auto-reply[bot]' "
    "(or `make run EXTRAS=g4f,bot`)"
)


def _bot(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    require(settings, "bot", BOT_KEYS)
    try:
        from server.bot.app import Bot, BotError  # noqa: PLC0415 -- the optional `bot` extra
    except ImportError:
        raise ConfigError(BOT_EXTRA_MISSING) from None
    _setup_logging(settings, args.verbose)
    bot = Bot(settings, args.reply_config)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # Windows has no signal handlers
                loop.add_signal_handler(signum, lambda: asyncio.ensure_future(bot.close()))
        await bot.run()
        log.info("shutting down")

    try:
        event_loop.run(run())
    except BotError as exc:
        log.error("%s", exc)
        return 1
    return 0


def _interactions(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    require(settings, "interactions", INTERACTIONS_KEYS)
    try:
        from server.bot.app import BotError, InteractionsServer  # noqa: PLC0415
    except ImportError:
        raise ConfigError(BOT_EXTRA_MISSING) from None
    _setup_logging(settings, args.verbose)
    server = InteractionsServer(settings, args.reply_config, host=args.host, port=args.port)
    try:
        event_loop.run(_run_until_signal(server))
    except BotError as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, exc.strerror or exc)
        return 1
    return 0
