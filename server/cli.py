"""Command line: `discord-auto-reply serve | init | plugin install | bot | interactions`."""

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

from server import __version__, log_redaction
from server.app import App
from server.bot.keys import BOT_KEYS, INTERACTIONS_KEYS, require
from server.config import ConfigError, Settings, load_settings, write_initial_config
from server.plugin_installer import default_plugin_dir, install_plugin
from server.rules import RulesError

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
    except (ConfigError, RulesError) as exc:
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
    app = App(settings, args.reply_config, allow_remote=args.allow_remote)
    try:
        asyncio.run(_run_until_signal(app))
    except OSError as exc:
        where = f"{settings.WEBSOCKET_HOST}:{settings.WEBSOCKET_PORT}"
        log.error("cannot listen on %s: %s", where, exc.strerror or exc)
        return 1
    return 0


async def _run_until_signal(app: _Service) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows has no signal handlers
            loop.add_signal_handler(signum, stop.set)
    await app.start()
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await app.stop()


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
    path = install_plugin(
        directory,
        host=settings.WEBSOCKET_HOST,
        port=settings.WEBSOCKET_PORT,
        secret=settings.WEBSOCKET_SECRET,
    )
    print(f"installed {path}")
    print("next: in Discord open Settings > Plugins, enable DiscordAutoReply,")
    print("      then start the server with `make run` (the plugin connects by itself)")
    return 0


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
        asyncio.run(run())
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
        asyncio.run(_run_until_signal(server))
    except BotError as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, exc.strerror or exc)
        return 1
    return 0
