"""Command line: `discord-auto-reply serve | init | plugin install | check | memory | away |
drafts | history | chat | style | rules | bot | interactions`.

The parser is built from the standard library alone and each command imports what it uses when
it runs, so the commands that do not call a model answer at once (see tests/test_cli_speed.py).
"""

# ruff: noqa: PLC0415 -- imports inside the commands are the point of this module

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from server import __version__

if TYPE_CHECKING:
    from server.config import Settings
    from server.config_file import OwnerSettings
    from server.storage.conversations import ConversationStore

    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

# The errors a command reports in one line (exit 2) instead of a traceback, by qualified name:
# matching names, not classes, leaves their modules (pydantic, rich, websockets) unloaded here.
USER_ERRORS = frozenset(
    {
        "server.config_file.ConfigError",
        "server.conversation.rules.RulesError",
        "server.storage.database.DatabaseError",
        "server.cli.plugin_installer.InstallError",
        "server.cli.control_client.ControlError",
        "server.owner.history.SpanError",
        "server.owner.style_profile.PackageError",
    }
)

BOT_EXTRA_MISSING = (
    "bot-account mode needs the `bot` extra: pip install 'discord-auto-reply[bot]' "
    "(or `make run EXTRAS=g4f,bot`)"
)

STARTED = time.perf_counter()
"""When the command line was loaded: `serve` says how long it took to be ready."""
DESCRIPTION_WIDTH = 78
Handler = Callable[[argparse.Namespace], int]


class _Service(Protocol):
    """Something that starts listening and stops: the relay `App`, the interactions server."""

    async def start(self) -> int: ...

    async def stop(self) -> None: ...


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of `python -m server`."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.command
    try:
        return handler(args)
    except Exception as exc:
        if not is_user_error(exc):
            raise
        print(f"discord-auto-reply: error: {exc}", file=sys.stderr)
        return 2


def is_user_error(exc: BaseException) -> bool:
    """Whether `exc` is one of USER_ERRORS (or a subclass): a mistake to report, not a bug."""
    return any(f"{kind.__module__}.{kind.__qualname__}" in USER_ERRORS for kind in type(exc).mro())


def add_command(
    commands: Commands, name: str, summary: str, description: str, examples: Sequence[str] = ()
) -> argparse.ArgumentParser:
    """A subcommand whose --help holds `description` and, as its epilog, `examples`."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples) if examples else None
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=textwrap.fill(description, DESCRIPTION_WIDTH),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _add_config(parser: argparse.ArgumentParser, *, reply_config: bool = False) -> None:
    parser.add_argument(
        "--config", type=Path, default=Path("config.json"), help="settings file (config.json)"
    )
    if reply_config:
        parser.add_argument(
            "--reply-config",
            type=Path,
            default=Path("reply_config.py"),
            help="who gets replies, and how (reply_config.py)",
        )


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; building it imports nothing beyond the standard library."""
    parser = argparse.ArgumentParser(
        prog="discord-auto-reply",
        description=textwrap.fill(
            "Personal auto-reply relay for Discord: a BetterDiscord plugin forwards the "
            "messages you choose to this local server, an LLM writes the reply, and it is "
            "posted (or kept as a draft) on your behalf.",
            DESCRIPTION_WIDTH,
        ),
        epilog="first time: `discord-auto-reply init`, then `discord-auto-reply serve`.\n"
        "`discord-auto-reply COMMAND --help` describes each command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    _add_server_commands(commands)
    _add_setup_commands(commands)
    _add_memory_command(commands)
    _add_owner_commands(commands)
    _add_rules_command(commands)
    _add_bot_commands(commands)
    return parser


def _add_server_commands(commands: Commands) -> None:
    """`serve` and `check`."""
    serve = add_command(
        commands,
        "serve",
        "run the relay server",
        "Run the relay: listen for the plugin on WEBSOCKET_HOST:WEBSOCKET_PORT, reply to the "
        "pairs listed in the reply config through the LLM backends of LLM_BACKENDS. "
        "The rules file is re-read when it changes; Ctrl-C stops.",
        ["discord-auto-reply serve", "discord-auto-reply serve -v --config ~/dar/config.json"],
    )
    _add_config(serve, reply_config=True)
    serve.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback WEBSOCKET_HOST"
    )
    serve.add_argument(
        "-v", "--verbose", action="count", default=0, help="-v: debug logs; -vv: also websockets"
    )
    serve.set_defaults(command=_serve)

    check = add_command(
        commands,
        "check",
        "try every part of the configured path once and report (exit 0 = ready)",
        "Try each part once (config, rules, database, LLM backends, Discord, plugin, "
        "notifications) and print one row per part; exit 0 when replies can go out.",
        ["discord-auto-reply check", "discord-auto-reply check --json"],
    )
    _add_config(check, reply_config=True)
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(command=_check)


def _add_setup_commands(commands: Commands) -> None:
    """`init` and `plugin install`."""
    init = add_command(
        commands,
        "init",
        "write config.json: a random secret and the LLM to use",
        "Write the settings file with a random WEBSOCKET_SECRET. In a terminal it asks which "
        "LLM to use: OpenAI (checks the key with one request), a local OpenAI-compatible "
        "server found on this machine (Ollama, LM Studio, llama.cpp, vLLM) or g4f (no key), "
        "then offers to install the plugin. Without a terminal, the flags decide; with none, "
        "the defaults are written. An existing file is never replaced without --force (or a "
        "yes when asked).",
        [
            "discord-auto-reply init",
            "discord-auto-reply init --llm local --yes",
            "discord-auto-reply init --llm local --base-url http://127.0.0.1:11434/v1 "
            "--model llama3.1",
            "OPENAI_API_KEY=sk-... discord-auto-reply init --llm openai --model gpt-4o-mini",
            "discord-auto-reply init --llm g4f --force --no-plugin",
        ],
    )
    _add_config(init)
    init.add_argument(
        "--llm",
        choices=["openai", "local", "g4f", "none"],
        help="the LLM to set up: OpenAI's API, a local OpenAI-compatible server, g4f, or none "
        "(keep the defaults); asked in a terminal when not given",
    )
    init.add_argument(
        "--api-key",
        help="OpenAI's API key (implies --llm openai; default: $OPENAI_API_KEY; asked in a "
        "terminal)",
    )
    init.add_argument(
        "--base-url",
        help="the server's URL: with --llm local e.g. http://127.0.0.1:11434/v1 (default: "
        "look on --probe-ports); with --llm openai another OpenAI-compatible service",
    )
    init.add_argument("--model", help="the model to ask (default: the first the server lists)")
    init.add_argument(
        "--probe-ports",
        default="11434,1234,8080,8000",
        metavar="PORTS",
        help="ports where local servers are looked for, comma-separated "
        "(default: Ollama 11434, LM Studio 1234, llama.cpp 8080, vLLM 8000)",
    )
    init.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="ask nothing: the LLM from --llm (or implied by "
        "--api-key / --base-url; else the defaults), and install the plugin",
    )
    init.add_argument(
        "--force",
        action="store_true",
        help="update an existing settings file's LLM keys (every other key is kept)",
    )
    plugin_choice = init.add_mutually_exclusive_group()
    plugin_choice.add_argument(
        "--plugin", dest="plugin", action="store_true", default=None, help="install the plugin"
    )
    plugin_choice.add_argument(
        "--no-plugin", dest="plugin", action="store_false", help="do not install the plugin"
    )
    init.add_argument(
        "--plugin-dir", type=Path, help="plugins folder to install into (default: BetterDiscord's)"
    )
    init.set_defaults(command=_init)

    plugin = add_command(
        commands,
        "plugin",
        "manage the BetterDiscord plugin",
        "The BetterDiscord plugin that forwards messages to the server and posts its replies.",
        ["discord-auto-reply plugin install"],
    )
    plugin_commands = plugin.add_subparsers(required=True, metavar="ACTION")
    install = add_command(
        plugin_commands,
        "install",
        "copy the plugin into BetterDiscord's plugins folder",
        "Write the plugin into BetterDiscord's plugins folder with this config's host, port "
        "and secret baked in; replaces an older copy. Then enable it in Discord "
        "(Settings → Plugins).",
        [
            "discord-auto-reply plugin install",
            "discord-auto-reply plugin install --dir ~/.config/BetterDiscord/plugins",
        ],
    )
    install.add_argument("--dir", type=Path, default=None, help="plugins folder to install into")
    _add_config(install)
    install.set_defaults(command=_plugin_install)


def _add_memory_command(commands: Commands) -> None:
    """`memory list | show | reset | export`."""
    memory = add_command(
        commands,
        "memory",
        "read or reset the stored conversations",
        "The conversations the relay remembers, one per (user, channel) pair, in DATABASE.",
        [
            "discord-auto-reply memory list",
            "discord-auto-reply memory show 123456789012345678 987654321098765432",
            "discord-auto-reply memory reset --all",
            "discord-auto-reply memory export -o memory.json",
        ],
    )
    memory_actions = memory.add_subparsers(required=True, metavar="ACTION")
    for name, help_text, example in (
        ("list", "each pair: turns, last activity, takeover pause", "memory list"),
        ("show", "one pair's conversation since its last reset", "memory show USER CHANNEL"),
        ("reset", "start a pair (or --all) afresh", "memory reset USER CHANNEL"),
        ("export", "write stored turns as JSON", "memory export --pair USER CHANNEL -o out.json"),
    ):
        action = add_command(
            memory_actions, name, help_text, help_text, [f"discord-auto-reply {example}"]
        )
        _add_config(action)
        action.set_defaults(command=_memory, action=name)
        if name in ("show", "reset"):
            action.add_argument("user", nargs="?" if name == "reset" else None, help="user id")
            action.add_argument(
                "channel", nargs="?" if name == "reset" else None, help="channel id"
            )
        if name == "reset":
            action.add_argument("--all", action="store_true", help="reset every pair")
        if name == "export":
            action.add_argument("--pair", nargs=2, metavar=("USER", "CHANNEL"))
            action.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")


def _add_rules_command(commands: Commands) -> None:
    """`rules`: its module imports only the standard library until the command runs."""
    from server.cli import rules_commands

    rules_commands.add_parser(commands)


def _add_owner_commands(commands: Commands) -> None:
    """`away`, `drafts`, `history`, `chat` and `style`: when the relay speaks for you, and how."""
    away = add_command(
        commands,
        "away",
        "switch away mode, or show it (talks to the server)",
        'Whether the relay replies for you (with REPLY_WHEN "away"): `on` and `off` override '
        "your Discord status until you switch back to `auto`. Asks the running server.",
        [
            "discord-auto-reply away status",
            'discord-auto-reply away on --note "back at 18:00"',
            "discord-auto-reply away auto",
            "discord-auto-reply away note --clear",
        ],
    )
    away.add_argument(
        "mode",
        choices=["on", "off", "auto", "status", "note"],
        help="on: reply as if away; off: as if present; auto: follow your Discord status; "
        "note TEXT: what replies may say about your absence",
    )
    away.add_argument("text", nargs="?", help="with note: the away note")
    away.add_argument("--note", help='with on: set the away note too, e.g. "back at 18:00"')
    away.add_argument("--clear", action="store_true", help="with note: remove the away note")
    _add_config(away)
    away.set_defaults(command=_away)

    drafts = add_command(
        commands,
        "drafts",
        "list the drafts waiting, or send or discard one",
        'With MODE "draft" replies wait for you: list them (from the database), send one '
        "(through the running server) or discard it.",
        ["discord-auto-reply drafts", "discord-auto-reply drafts send 42"],
    )
    drafts.add_argument("action", nargs="?", choices=["list", "send", "discard"], default="list")
    drafts.add_argument("id", nargs="?", help="the draft's id (from `drafts`)")
    _add_config(drafts)
    drafts.set_defaults(command=_drafts)

    past = add_command(
        commands,
        "history",
        "what the relay said for you, and what it skipped",
        "Each message the relay handled: the reply sent, the draft, or why it stayed silent.",
        [
            "discord-auto-reply history",
            "discord-auto-reply history --since 2h --pair USER CHANNEL",
            "discord-auto-reply history --since 1w --json",
        ],
    )
    past.add_argument("--since", default="24h", help="how far back: 90s, 30m, 2h, 1d, 1w")
    past.add_argument("--pair", nargs=2, metavar=("USER", "CHANNEL"))
    past.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_config(past)
    past.set_defaults(command=_history)

    chat = add_command(
        commands,
        "chat",
        "try a rule or a persona in the terminal",
        "Talk to the configured LLM as a user would: the rule for --user and --channel (or a "
        "--persona) answers each line you type. Nothing is sent to Discord.",
        [
            "discord-auto-reply chat --user 123456789012345678 --channel 987654321098765432",
            'discord-auto-reply chat --persona "You are my terse assistant."',
        ],
    )
    chat.add_argument("--user", help="play this user (the rule for --user and --channel is used)")
    chat.add_argument("--channel", help="in this channel")
    chat.add_argument("--persona", help="system prompt to try instead of the rule's")
    chat.add_argument("--keep", action="store_true", help="keep the memory in DATABASE")
    _add_config(chat, reply_config=True)
    chat.set_defaults(command=_chat)

    style = add_command(
        commands,
        "style",
        "learn, show, set or reset your writing style",
        "A profile of how you write, for replies to sound like you (with STYLE true). `learn` "
        "sends a capped sample of your own messages to the configured LLM.",
        [
            "discord-auto-reply style learn",
            "discord-auto-reply style learn --from ~/Downloads/package",
            "discord-auto-reply style show",
            "discord-auto-reply style set --file profile.txt",
        ],
    )
    style.add_argument("action", choices=["learn", "show", "set", "reset"])
    style.add_argument("--from", dest="package", type=Path, help="learn: Discord's data package")
    style.add_argument("--file", type=Path, help="set: a file holding the profile")
    _add_config(style)
    style.set_defaults(command=_style)


def _add_bot_commands(commands: Commands) -> None:
    """`bot` and `interactions`: a Discord bot account instead of the plugin."""
    bot = add_command(
        commands,
        "bot",
        "run as a Discord bot account (gateway + slash commands)",
        "Reply as a bot account (DISCORD_BOT_TOKEN, DISCORD_APPLICATION_ID) over Discord's "
        "gateway, with slash commands; needs the `bot` extra.",
        ["discord-auto-reply bot", "discord-auto-reply bot -v"],
    )
    _add_config(bot, reply_config=True)
    bot.add_argument(
        "-v", "--verbose", action="count", default=0, help="-v: debug logs; -vv: also discord.py"
    )
    bot.set_defaults(command=_bot)

    interactions = add_command(
        commands,
        "interactions",
        "serve the bot's slash commands over HTTP (Interactions Endpoint URL)",
        "Answer the bot's slash commands over HTTP (DISCORD_PUBLIC_KEY verifies each request), "
        "for an Interactions Endpoint URL behind a tunnel or reverse proxy.",
        ["discord-auto-reply interactions --port 8787"],
    )
    _add_config(interactions, reply_config=True)
    interactions.add_argument("--host", default="127.0.0.1", help="address to listen on")
    interactions.add_argument("--port", type=int, default=8787, help="port to listen on")
    interactions.add_argument("-v", "--verbose", action="count", default=0, help="debug logs")
    interactions.set_defaults(command=_interactions)


def _setup_logging(settings: Settings, verbosity: int) -> None:
    import logging

    from server import log_redaction

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


def _quiet_logging(settings: Settings) -> None:
    """Warnings only, secrets redacted: for the commands that print their own output."""
    import logging

    from server import log_redaction

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log_redaction.install(settings.secret_values(), logging.getLogger().handlers)


def _serve(args: argparse.Namespace) -> int:
    import logging

    from server import event_loop
    from server.app import App
    from server.config import load_settings

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
        logging.getLogger("server").error("cannot listen on %s: %s", where, exc.strerror or exc)
        return 1
    except KeyboardInterrupt:
        # Windows: asyncio.run turned Ctrl-C into a cancel of the main task, whose `finally`
        # has already stopped the app; it re-raises the interrupt only to say so.
        pass
    return 0


async def _run_until_signal(app: _Service) -> None:
    import asyncio
    import contextlib
    import logging
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Windows has no loop signal handlers: there Ctrl-C cancels this task (see `_serve`).
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    await app.start()
    started = time.perf_counter() - STARTED
    logging.getLogger("server").info("ready (started in %.2f s); Ctrl-C stops", started)
    try:
        await stop.wait()
    finally:
        logging.getLogger("server").info("shutting down")
        await app.stop()


def _memory(args: argparse.Namespace) -> int:
    import asyncio

    from server.config_file import load_owner_settings
    from server.storage.conversations import ConversationStore

    settings = load_owner_settings(args.config)
    if args.action == "reset" and args.all == bool(args.user and args.channel):
        print("discord-auto-reply: error: give USER CHANNEL, or --all", file=sys.stderr)
        return 2
    return asyncio.run(_run_memory_command(ConversationStore(settings.DATABASE), args))


async def _run_memory_command(store: ConversationStore, args: argparse.Namespace) -> int:
    from server.cli import memory_commands

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
    import asyncio

    from server.cli import owner_commands
    from server.config_file import load_owner_settings

    settings = load_owner_settings(args.config)
    return asyncio.run(owner_commands.away(settings, args.mode, note=note))


def _drafts(args: argparse.Namespace) -> int:
    import asyncio

    from server.config_file import load_owner_settings

    settings = load_owner_settings(args.config)
    if (args.action == "list") != (args.id is None):
        print(
            "discord-auto-reply: error: give `drafts`, or `drafts send|discard ID`", file=sys.stderr
        )
        return 2
    return asyncio.run(_run_drafts_command(settings, args))


async def _run_drafts_command(settings: OwnerSettings, args: argparse.Namespace) -> int:
    from server.cli import owner_commands
    from server.storage.conversations import ConversationStore
    from server.storage.owner_store import OwnerStore

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
    import asyncio

    from server.config_file import load_owner_settings
    from server.owner import history

    settings = load_owner_settings(args.config)
    span = history.parse_span(args.since)
    return asyncio.run(_run_history_command(settings, span, args))


async def _run_history_command(
    settings: OwnerSettings, span: float, args: argparse.Namespace
) -> int:
    from server.owner import history
    from server.storage.conversations import ConversationStore
    from server.storage.owner_store import OwnerStore

    store = ConversationStore(settings.DATABASE)
    await store.open()
    try:
        pair = (args.pair[0], args.pair[1]) if args.pair else None
        return await history.history(OwnerStore(store), span, pair, json_output=args.json)
    finally:
        await store.close()


def _style(args: argparse.Namespace) -> int:
    import asyncio

    from server.cli import style_commands
    from server.config import load_settings

    settings = load_settings(args.config)
    _quiet_logging(settings)
    return asyncio.run(style_commands.run(settings, args.action, args.file, args.package))


def _chat(args: argparse.Namespace) -> int:
    from server.cli.chat_session import chat_rule, run_chat
    from server.config import load_settings
    from server.conversation.rules import RuleSet
    from server.conversation.rules_file import load_rules

    settings = load_settings(args.config)
    if (args.user is None) != (args.channel is None) or (args.user is None and not args.persona):
        print(
            "discord-auto-reply: error: give --user ID --channel ID, or --persona TEXT",
            file=sys.stderr,
        )
        return 2
    rules = load_rules(args.reply_config) if args.user else RuleSet("", ())
    rule = chat_rule(rules, (args.user or "0", args.channel or "0"), args.persona)
    _quiet_logging(settings)
    return run_chat(settings, rules, rule, keep=args.keep)


def _init(args: argparse.Namespace) -> int:
    from server.cli import init_command

    return init_command.run(args)


def _plugin_install(args: argparse.Namespace) -> int:
    from server.cli.plugin_installer import default_plugin_dir, install_for
    from server.config_file import ConfigError, load_owner_settings

    settings = load_owner_settings(args.config)
    if not settings.WEBSOCKET_SECRET:
        raise ConfigError(
            f"{args.config}: WEBSOCKET_SECRET is empty; run `discord-auto-reply init` first "
            "so the plugin and the server share a secret"
        )
    path = install_for(settings, args.dir or default_plugin_dir())
    print(f"installed {path}")
    print("next: in Discord open Settings > Plugins, enable DiscordAutoReply,")
    print("      then start the server with `discord-auto-reply serve` (or `make run`);")
    print("      the plugin connects by itself")
    return 0


def _check(args: argparse.Namespace) -> int:
    """Print the report of `health_check`; 0 only when the configured path works."""
    import asyncio
    import contextlib
    import logging

    from server import log_redaction
    from server.cli import health_check
    from server.config import ConfigError, load_settings

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
        print(health_check.render_table(results, unicode=can_print("✔✘")))
    return 0 if health_check.path_works(results) else 1


def can_print(text: str) -> bool:
    """Whether stdout's encoding has these characters (a Windows console may not)."""
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except UnicodeEncodeError:
        return False
    return True


def _bot(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib
    import logging
    import signal

    from server import event_loop
    from server.bot.keys import BOT_KEYS, require
    from server.config import ConfigError, load_settings

    settings = load_settings(args.config)
    require(settings, "bot", BOT_KEYS)
    try:
        from server.bot.app import Bot, BotError  # the optional `bot` extra
    except ImportError:
        raise ConfigError(BOT_EXTRA_MISSING) from None
    _setup_logging(settings, args.verbose)
    bot = Bot(settings, args.reply_config)
    log = logging.getLogger("server")

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
    import logging

    from server import event_loop
    from server.bot.keys import INTERACTIONS_KEYS, require
    from server.config import ConfigError, load_settings

    settings = load_settings(args.config)
    require(settings, "interactions", INTERACTIONS_KEYS)
    try:
        from server.bot.app import BotError, InteractionsServer
    except ImportError:
        raise ConfigError(BOT_EXTRA_MISSING) from None
    _setup_logging(settings, args.verbose)
    server = InteractionsServer(settings, args.reply_config, host=args.host, port=args.port)
    log = logging.getLogger("server")
    try:
        event_loop.run(_run_until_signal(server))
    except BotError as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, exc.strerror or exc)
        return 1
    return 0
