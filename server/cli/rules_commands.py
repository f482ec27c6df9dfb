"""`discord-auto-reply rules [list | add | remove]`: the chats that get replies, from the terminal.

With the server running, every action goes through its control connection, so the plugins hear
of a change at once; with it stopped, the database and `reply_config.py` are read and written
directly (and the output says so). Only the standard library is imported here at first: what a
command needs is imported when it runs.
"""

# ruff: noqa: PLC0415 -- imports inside the functions keep `--help` and the parser light

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from server.config_file import OwnerSettings
    from server.owner.chosen_chats import RuleResult

    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

SAVED_OFFLINE = "(server not running: saved to the database; it applies when the server starts)"
REMOVED_OFFLINE = (
    "(server not running: removed from the database; it applies when the server starts)"
)
LISTED_OFFLINE = "(server not running: the rules as it will load them)"
NO_RULES = (
    "no rules yet: add pairs to REPLY_TO in reply_config.py, right-click a chat in Discord > "
    "Auto-reply, or run `discord-auto-reply rules add USER CHANNEL`"
)
COLUMNS = ("SOURCE", "USER", "CHANNEL", "LABEL", "PERSONA", "MODE", "WHEN", "LAST REPLY")
_WIDTH = 78
_EXAMPLES = (
    "discord-auto-reply rules",
    'discord-auto-reply rules add 123456789012345678 @dms --label "Sam (DMs)"',
    "discord-auto-reply rules add 123456789012345678 987654321098765432 --persona friendly --draft",
    'discord-auto-reply rules add "*" 987654321098765432 --always --label "#help · My Server"',
    "discord-auto-reply rules remove 123456789012345678 @dms",
)
_IDS = (
    'USER is a Discord user id or "*" (anyone); CHANNEL a channel id or "@dms" (every DM and '
    "group DM with you, never a server channel). Ids: Developer Mode, then right-click > Copy ID."
)


def add_parser(commands: Commands) -> None:
    """Add `rules` and its actions to the command line (standard library only)."""
    rules = _parser(
        commands,
        "rules",
        "list, add or remove the chats that get replies",
        "The chats the relay answers: the rules of reply_config.py (edit the file to change "
        "them) and the chats chosen from Discord (right-click > Auto-reply) or added here. "
        "With the server running the change reaches Discord at once; with it stopped it is "
        "saved to the database and applies when the server starts.",
        _EXAMPLES,
    )
    rules.set_defaults(command=run, action="list", json=False)
    actions = rules.add_subparsers(metavar="ACTION")

    listing = _parser(
        actions,
        "list",
        "every rule, one per line (the default action)",
        "Every rule, file rules first: where it is set, who, where, its label, persona, mode, "
        "when it replies and when it last did (a setting shown as default follows MODE, "
        "REPLY_WHEN or CONTEXT_MESSAGE).",
        ("discord-auto-reply rules list", "discord-auto-reply rules list --json"),
    )
    listing.add_argument("--json", action="store_true", help="print the rules as JSON")

    add = _parser(
        actions,
        "add",
        "auto-reply to USER in CHANNEL (or change that rule)",
        "Auto-reply to USER in CHANNEL, replacing the settings of an earlier `rules add` for "
        "the same pair. Pairs set in reply_config.py are refused: edit the file. " + _IDS,
        _EXAMPLES[1:4],
    )
    add.add_argument("user", metavar="USER", help='a Discord user id, or "*" for anyone')
    add.add_argument("channel", metavar="CHANNEL", help='a channel id, or "@dms" for all DMs')
    add.add_argument("--persona", metavar="NAME", help="a name from PERSONAS (default: none)")
    add.add_argument("--draft", action="store_true", help="keep each reply for you to approve")
    add.add_argument(
        "--always", action="store_true", help="reply even while you are present (not just away)"
    )
    add.add_argument("--label", metavar="TEXT", help='what to call the chat, e.g. "Sam (DMs)"')
    add.set_defaults(action="add")

    remove = _parser(
        actions,
        "remove",
        "stop auto-replying to USER in CHANNEL",
        "Remove a rule added from Discord or with `rules add`; rules of reply_config.py are "
        "removed by editing the file. " + _IDS,
        _EXAMPLES[4:],
    )
    remove.add_argument("user", metavar="USER")
    remove.add_argument("channel", metavar="CHANNEL")
    remove.set_defaults(action="remove")


def _parser(
    commands: Commands, name: str, summary: str, description: str, examples: tuple[str, ...]
) -> argparse.ArgumentParser:
    """A (sub)command with its description, its examples and --config / --reply-config."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=textwrap.fill(description, _WIDTH),
        epilog="examples:\n" + "\n".join(f"  {line}" for line in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_files(parser)
    return parser


def _add_files(parser: argparse.ArgumentParser) -> None:
    """--config and --reply-config, accepted before or after the action (so no defaults here,
    which an action's parser would put over the value given before it: see `run`)."""
    parser.add_argument(
        "--config", type=Path, default=argparse.SUPPRESS, help="settings file (config.json)"
    )
    parser.add_argument(
        "--reply-config",
        type=Path,
        default=argparse.SUPPRESS,
        help="the rules file (reply_config.py), read when the server is not running",
    )


def run(args: argparse.Namespace) -> int:
    """Carry out `rules` (list, add or remove); the exit code."""
    import asyncio

    from server.config_file import load_owner_settings

    config: Path = getattr(args, "config", Path("config.json"))
    reply_config: Path = getattr(args, "reply_config", Path("reply_config.py"))
    settings = load_owner_settings(config)
    frame = _frame(args)
    return asyncio.run(_run(settings, reply_config, frame, json_output=args.json, out=sys.stdout))


def _frame(args: argparse.Namespace) -> dict[str, Any]:
    """The owner frame for the action, unchecked: the running server checks it (and answers an
    error), or `_run_offline` as the server would."""
    if args.action == "list":
        return {"type": "rules"}
    frame: dict[str, Any] = {"type": "rule_remove", "user": args.user, "channel": args.channel}
    if args.action == "add":
        persona = None if args.persona in (None, "", "default") else args.persona
        frame.update(
            type="rule_set",
            persona=persona,
            mode="draft" if args.draft else None,
            reply_when="always" if args.always else None,
            label=args.label or None,
        )
    return frame


def _problem(frame: dict[str, Any]) -> str | None:
    """What is wrong with `frame`, as the server would say it (with pydantic); None: nothing."""
    from server.transport import protocol

    try:
        protocol.parse_client_frame(json.dumps(frame))
    except protocol.ProtocolError as exc:
        return str(exc)
    return None


async def _run(
    settings: OwnerSettings,
    reply_config: Path,
    frame: dict[str, Any],
    *,
    json_output: bool,
    out: TextIO,
) -> int:
    from server.cli.control_client import ServerNotRunning, ask

    wanted = "rules" if frame["type"] == "rules" else "rule_result"
    try:
        answer = await ask(settings, frame, lambda a: a.get("type") == wanted, timeout=10.0)
    except ServerNotRunning:
        return await _run_offline(settings, reply_config, frame, json_output=json_output, out=out)
    if frame["type"] == "rules":
        return print_rules(answer["rules"], json_output=json_output, out=out)
    return _print_result(bool(answer.get("ok")), str(answer.get("text")), None, out)


async def _run_offline(
    settings: OwnerSettings,
    reply_config: Path,
    frame: dict[str, Any],
    *,
    json_output: bool,
    out: TextIO,
) -> int:
    """The server is not running: the same action on the database and the rules file."""
    problem = None if frame["type"] == "rules" else _problem(frame)  # a listing has no fields
    if problem:
        print(f"discord-auto-reply: error: {problem}", file=sys.stderr)
        return 2
    from server.conversation.rules_file import load_rules
    from server.owner.chosen_chats import ChosenChats
    from server.storage.conversations import ConversationStore
    from server.storage.rule_store import RuleStore, StoredRule

    file_rules = load_rules(reply_config)
    store = ConversationStore(settings.DATABASE)
    await store.open()
    try:
        chosen = ChosenChats(
            RuleStore(store),
            lambda: file_rules,
            default_mode=settings.MODE,
            default_when=settings.REPLY_WHEN,
        )
        await chosen.load()
        if frame["type"] == "rules":
            code = print_rules(await chosen.rule_objects(), json_output=json_output, out=out)
            if not json_output:
                print(LISTED_OFFLINE, file=out)
            return code
        result: RuleResult
        if frame["type"] == "rule_set":
            fields = {key: frame[key] for key in ("persona", "mode", "reply_when", "label")}
            result = await chosen.set(StoredRule(frame["user"], frame["channel"], **fields))
            note = SAVED_OFFLINE
        else:
            result = await chosen.remove(frame["user"], frame["channel"])
            note = REMOVED_OFFLINE
        return _print_result(result.ok, result.text, note, out)
    finally:
        await store.close()


def _print_result(ok: bool, text: str, offline_note: str | None, out: TextIO) -> int:
    """The server's sentence: on stdout when done (with the offline note), else on stderr."""
    if not ok:
        print(f"discord-auto-reply: {text}", file=sys.stderr)
        return 1
    print(text, file=out)
    if offline_note:
        print(offline_note, file=out)
    return 0


def print_rules(rules: list[dict[str, Any]], *, json_output: bool, out: TextIO) -> int:
    """Print rule objects (of a `rules` frame) as aligned lines, or as JSON."""
    if json_output:
        print(json.dumps(rules, indent=2, ensure_ascii=False), file=out)
        return 0
    if not rules:
        print(NO_RULES, file=out)
        return 0
    rows = [COLUMNS, *(describe_rule(rule) for rule in rules)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]), file=out)
    return 0


def describe_rule(rule: dict[str, Any], now: float | None = None) -> tuple[str, ...]:
    """One rule's cells: where it is set, user, channel, label, persona, mode, when, last reply
    (a null setting follows the config: "default")."""
    return (
        str(rule.get("where") or rule.get("source")),
        str(rule["user"]),
        str(rule["channel"]),
        str(rule.get("label") or "-"),
        str(rule.get("persona") or "default"),
        str(rule.get("mode") or "default"),
        str(rule.get("reply_when") or "default"),
        _ago(rule.get("last_reply"), time.time() if now is None else now),
    )


def _ago(at: float | None, now: float) -> str:
    """When the relay last replied, as a person reads it: "never", "5 min ago", a date."""
    if at is None:
        return "never"
    seconds = max(0.0, now - at)
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h ago"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))
