"""`discord-auto-reply check`: does each part of the configured path work, right now?

Each check does the real thing once (a one-line prompt to every LLM backend, the token against
Discord, a status request to the running server as a command-line client, the GUI macro's
imports on the desktop) and is reduced to a `CheckResult`. Whether the whole path works, and the
table or JSON that says so, are decided by pure functions at the bottom.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import httpx2

from server.app import check_settings, describe_backend
from server.bot.commands import COMMANDS
from server.bot.endpoints import bot_api_base
from server.bot.registration import name_commands
from server.cli import control_client
from server.config import BackendName, ConfigError, Settings, load_settings
from server.conversation.rules import RulesError
from server.conversation.rules_file import load_rules
from server.llm.base import ChatMessage, GenerationOptions, LLMError
from server.llm.chain import build_backend, skip_reason
from server.log_redaction import SecretRedactor
from server.messengers.rest import USER_AGENT, first_field_error
from server.owner.notifier import Notice, Notifier, describe_url

Kind = Literal["config", "rules", "llm", "server", "plugin", "messenger", "notify", "bot"]

# The one-line prompt each backend is asked; with a system turn, as the relay sends them.
PROMPT = [
    ChatMessage("system", "You are checking that a chat relay works. Answer in a few words."),
    ChatMessage("user", "Say hello."),
]
DISCORD_TIMEOUT_SECONDS = 15.0
MACRO_TIMEOUT_SECONDS = 15.0
# Importing pyautogui connects to the display; pyperclip.paste() needs a working clipboard tool.
MACRO_PROBE = "import pyautogui, pyperclip; pyperclip.paste()"


@dataclass(frozen=True)
class CheckResult:
    """One row of the report: a part, whether it works, and why (never a secret)."""

    part: str
    ok: bool
    detail: str
    kind: Kind
    # False for one LLM backend among several: the chain needs only one of them to answer.
    needed: bool = True


async def run_checks(
    config: Path, reply_config: Path, env: Mapping[str, str] = os.environ
) -> list[CheckResult]:
    """Load and validate both files, then check every part the configured path uses."""
    loaded = await asyncio.to_thread(check_files, config, reply_config, env)
    if loaded.settings is None:
        return loaded.results
    settings = loaded.settings
    messenger = settings.messenger_name()
    names = list(dict.fromkeys(settings.LLM_BACKENDS))
    bot_commands = settings.DISCORD_BOT_TOKEN and not settings.OWNER_BOT
    owner_bot = asyncio.create_task(
        _check_owner_bot(settings) if settings.OWNER_BOT else _nothing()
    )
    llm, (server, plugin), token, macro, notify, commands = await asyncio.gather(
        asyncio.gather(*(_check_backend(settings, name, loaded.folder) for name in names)),
        _check_server(settings),
        _check_token(settings) if messenger == "rest" else _nothing(),
        _check_macro(env) if messenger == "macro" else _nothing(),
        _check_notifications(settings),
        # The owner's bot registers its own commands (a bulk overwrite would replace them).
        _check_bot_commands(settings) if bot_commands else _nothing(),
    )
    owner = await owner_bot
    results = [*loaded.results, *llm]
    if not llm:
        results.append(CheckResult("LLM", False, "LLM_BACKENDS is empty", "llm"))
    results += [server, plugin]
    if messenger == "plugin":
        detail = "posts through the connected plugin" if plugin.ok else "needs a connected plugin"
        results.append(CheckResult("messenger plugin", plugin.ok, detail, "messenger"))
    results += [r for r in (token, macro, commands, owner) if r is not None]
    results += notify
    redactor = SecretRedactor(settings.secret_values())
    return [replace(r, detail=redactor.redact(r.detail)) for r in results]


async def _check_notifications(settings: Settings) -> list[CheckResult]:
    """A test notification to each of NOTIFY_URLS (none configured: no rows)."""
    if not settings.NOTIFY_URLS:
        return []
    notifier = Notifier(settings)
    try:
        await notifier.start()
    except ConfigError as exc:
        await notifier.aclose()
        return [CheckResult("notifications", False, str(exc), "notify")]
    test = Notice("failure", "discord-auto-reply", "A test notification from `check`.")
    try:
        errors = await notifier.send(test)
    finally:
        await notifier.aclose()
    return [
        CheckResult(
            f"notify {describe_url(url)}",
            error is None,
            "test notification sent" if error is None else error,
            "notify",
        )
        for url, error in zip(settings.NOTIFY_URLS, errors, strict=True)
    ]


async def _check_owner_bot(settings: Settings) -> CheckResult:
    """The owner's bot (OWNER_BOT) logs in and sends OWNER_ID a test DM; not needed for replies."""
    from server.owner.remote.reachability import check_owner_bot  # noqa: PLC0415

    ok, detail = await check_owner_bot(settings)
    return CheckResult("owner bot", ok, detail, "bot", needed=False)


@dataclass(frozen=True)
class LoadedFiles:
    """The outcome of reading config.json and reply_config.py."""

    settings: Settings | None  # None when config.json cannot be used
    folder: Path  # the folder of config.json, where g4f keeps its files
    results: list[CheckResult]


def check_files(config: Path, reply_config: Path, env: Mapping[str, str]) -> LoadedFiles:
    """Read and validate config.json (and the environment) and reply_config.py."""
    folder = config.resolve().parent
    try:
        settings = load_settings(config, env)
        check_settings(settings, allow_remote=True)
    except ConfigError as exc:
        return LoadedFiles(None, folder, [CheckResult(config.name, False, str(exc), "config")])
    names = ", ".join(dict.fromkeys(settings.LLM_BACKENDS)) or "[]"
    read = "read" if config.exists() else "not found: defaults and the environment used"
    detail = f"{config} {read}: messenger {settings.messenger_name()}, LLM_BACKENDS {names}"
    results = [CheckResult(config.name, True, detail, "config"), _check_rules(reply_config)]
    return LoadedFiles(settings, folder, results)


async def _nothing() -> None:
    return None


def _check_rules(path: Path) -> CheckResult:
    try:
        rules = load_rules(path)
    except RulesError as exc:
        return CheckResult(path.name, False, str(exc), "rules")
    count = len(rules.rules)
    detail = f"{count} pair(s) in REPLY_TO" if count else "valid, REPLY_TO is empty"
    detail += " (chats chosen in Discord: see the server row)"
    return CheckResult(path.name, True, detail, "rules")


async def _check_backend(settings: Settings, name: BackendName, config_dir: Path) -> CheckResult:
    """Ask backend `name` the one-line prompt; its model, latency or failure."""
    part = f"LLM {name}"
    described = describe_backend(settings, name)
    reason = skip_reason(settings, name)
    if reason is not None:
        return CheckResult(part, False, f"skipped: {reason}", "llm", needed=False)
    try:
        backend = build_backend(settings, name, config_dir)
    except ConfigError as exc:
        return CheckResult(part, False, str(exc), "llm", needed=False)
    started = time.monotonic()
    try:
        await backend.complete(PROMPT, GenerationOptions(max_tokens=settings.MAX_TOKENS))
    except LLMError as exc:
        return CheckResult(part, False, str(exc), "llm", needed=False)
    finally:
        await backend.aclose()
    took = time.monotonic() - started
    return CheckResult(part, True, f"{described} answered in {took:.2f} s", "llm", needed=False)


@dataclass(frozen=True)
class ServerStatus:
    """What the running server says about itself."""

    url: str
    version: str
    plugins: int
    transports: dict[str, int]
    """How many plugins are connected over each transport ("websocket", "http")."""
    watching: int
    messenger: str


async def ask_server(settings: Settings) -> ServerStatus:
    """Ask the running server, as a command-line client, for its status."""
    status = await control_client.ask(
        settings,
        {"type": "status"},
        lambda frame: frame.get("type") == "status",
        timeout=settings.HELLO_TIMEOUT_SECONDS,
    )
    return ServerStatus(
        url=control_client.server_url(settings),
        version=str(status.get("server_version", "?")),
        plugins=int(status.get("plugins", 0)),
        transports={
            str(name): int(count) for name, count in dict(status.get("transports") or {}).items()
        },
        watching=int(status.get("watching", 0)),
        messenger=str(status.get("messenger", "?")),
    )


TRANSPORT_NAMES = {"websocket": "WebSocket", "http": "HTTP (BdApi.Net.fetch)"}


def describe_plugins(status: ServerStatus) -> str:
    """ "1 plugin(s) connected over WebSocket", or per transport when there are several."""
    over = " and ".join(
        f"{count} over {TRANSPORT_NAMES.get(name, name)}"
        for name, count in sorted(status.transports.items())
    )
    return f"{status.plugins} plugin(s) connected" + (f" ({over})" if over else "")


async def _check_server(settings: Settings) -> tuple[CheckResult, CheckResult]:
    """The server row and the plugin row (messages reach the relay only through a plugin)."""
    try:
        status = await ask_server(settings)
    except control_client.ControlError as exc:
        unknown = "unknown: the server could not be asked"
        return (
            CheckResult("server", False, str(exc), "server"),
            CheckResult("plugin", False, unknown, "plugin"),
        )
    configured = settings.messenger_name()
    detail = (
        f"running at {status.url} (version {status.version}), watching {status.watching} "
        f"pair(s), messenger {status.messenger}"
    )
    server_ok = status.messenger == configured
    if not server_ok:
        detail += f", but config.json says {configured}: restart the server to apply it"
    plugin = (
        CheckResult("plugin", True, describe_plugins(status), "plugin")
        if status.plugins
        else CheckResult(
            "plugin",
            False,
            "none connected: open Discord and enable DiscordAutoReply (Settings > Plugins)",
            "plugin",
        )
    )
    return CheckResult("server", server_ok, detail, "server"), plugin


async def _check_token(settings: Settings) -> CheckResult:
    """`GET /users/@me` with DISCORD_AUTHORIZATION: whose account it is, never the token."""
    part = "messenger rest"
    url = settings.DISCORD_API_BASE.rstrip("/") + "/users/@me"
    headers = {"Authorization": settings.DISCORD_AUTHORIZATION, "User-Agent": USER_AGENT}
    try:
        async with httpx2.AsyncClient(headers=headers, timeout=DISCORD_TIMEOUT_SECONDS) as http:
            response = await http.get(url)
    except httpx2.TransportError as exc:
        return CheckResult(
            part, False, f"cannot reach {url}: {type(exc).__name__}: {exc}", "messenger"
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    status = response.status_code
    if status == 200:
        name = body.get("global_name") or body.get("username") or "?"
        detail = f"token accepted by Discord: signed in as {name} (@{body.get('username', '?')})"
        return CheckResult(part, True, detail, "messenger")
    if status == 401:
        detail = "Discord refused DISCORD_AUTHORIZATION (HTTP 401): copy the token again"
    elif status == 429:
        detail = f"rate limited by Discord: try again in {body.get('retry_after', '?')} s"
    else:
        detail = f"Discord answered HTTP {status}: {body.get('message', response.reason_phrase)}"
    return CheckResult(part, False, detail, "messenger")


async def _check_bot_commands(settings: Settings) -> CheckResult:
    """Register the bot's slash commands as `bot` does at start (a bulk overwrite: the same
    commands again change nothing). A refusal is ✘ but not needed: the bot answers messages
    without its commands, and keeps trying to register them."""
    part = "bot slash commands"
    api = bot_api_base(settings.DISCORD_API_BASE)
    headers = {"Authorization": f"Bot {settings.DISCORD_BOT_TOKEN}", "User-Agent": USER_AGENT}
    try:
        async with httpx2.AsyncClient(headers=headers, timeout=DISCORD_TIMEOUT_SECONDS) as http:
            application = settings.DISCORD_APPLICATION_ID
            if not application:
                asked = await http.get(f"{api}/oauth2/applications/@me")
                application = str(_json_object(asked).get("id", "")) if asked.is_success else ""
                if not application:
                    detail = f"the application's id could not be had (HTTP {asked.status_code})"
                    return CheckResult(part, False, detail, "bot", needed=False)
            response = await http.put(f"{api}/applications/{application}/commands", json=COMMANDS)
    except httpx2.TransportError as exc:
        detail = f"cannot reach {api}: {type(exc).__name__}: {exc}"
        return CheckResult(part, False, detail, "bot", needed=False)
    names = ", ".join(f"/{command['name']}" for command in COMMANDS)
    if response.is_success:
        return CheckResult(part, True, f"{names} registered", "bot")
    body = _json_object(response)
    said = f"HTTP {response.status_code}, code {body.get('code', '?')}: {body.get('message', '')}"
    if (field := first_field_error(body.get("errors"))) is not None:
        said += f"; In {field}"
    detail = (
        f"the server refused them ({name_commands(said, COMMANDS)}); "
        "the bot still answers messages and tries again"
    )
    return CheckResult(part, False, detail, "bot", needed=False)


def _json_object(response: httpx2.Response) -> dict[str, object]:
    """The response's JSON object, or {} for anything else."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def _check_macro(env: Mapping[str, str]) -> CheckResult:
    """Import pyautogui (which opens the display) and read the clipboard, in a child process."""
    part = "messenger macro"
    if sys.platform not in ("win32", "darwin") and not env.get("DISPLAY"):
        return CheckResult(part, False, "no desktop session: $DISPLAY is not set", "messenger")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        MACRO_PROBE,
        env=dict(env),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), MACRO_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        return CheckResult(part, False, "the desktop session did not answer", "messenger")
    if process.returncode == 0:
        where = env.get("DISPLAY") or "this desktop"
        detail = f"pyautogui reaches {where}, and the clipboard works"
        return CheckResult(part, True, detail, "messenger")
    lines = stderr.decode(errors="replace").strip().splitlines()
    last = lines[-1] if lines else f"exit status {process.returncode}"
    if "No module named" in last:
        last = f"{last}: pip install 'discord-auto-reply[macro]'"
    return CheckResult(part, False, last, "messenger")


# --- Pure: the verdict and how it is shown.


def problems(results: Sequence[CheckResult]) -> list[str]:
    """The parts that stop the configured path: every needed part that fails, and the LLM
    backends together when none of them answered."""
    blocking = [r.part for r in results if r.needed and not r.ok]
    llm = [r for r in results if r.kind == "llm"]
    if llm and not any(r.ok for r in llm) and not any(r.needed for r in llm):
        blocking.append(" and ".join(r.part for r in llm) + " (none answered)")
    return blocking


def path_works(results: Sequence[CheckResult]) -> bool:
    """True when every needed part works and at least one LLM backend answered."""
    return not problems(results) and any(r.ok for r in results if r.kind == "llm")


def render_table(results: Sequence[CheckResult], *, unicode: bool = True) -> str:
    """One row per part (mark, part, reason), and a last line with the verdict."""
    good, bad = ("✔", "✘") if unicode else ("OK", "FAIL")
    width = max(len(r.part) for r in results)
    mark_width = max(len(good), len(bad))
    another_answered = any(r.ok for r in results if r.kind == "llm")
    lines = []
    for result in results:
        mark = good if result.ok else bad
        spared = not (result.ok or result.needed) and another_answered
        optional = " (another backend answers)" if spared else ""
        lines.append(f"{mark:<{mark_width}}  {result.part:<{width}}  {result.detail}{optional}")
    blocking = problems(results)
    if blocking:
        lines.append(f"not ready: fix {', '.join(blocking)}")
    else:
        lines.append("ready: messages can be answered and the replies posted")
    return "\n".join(lines)


def render_json(results: Sequence[CheckResult]) -> str:
    """The same report as JSON: `{"ok": bool, "checks": [{part, ok, detail, kind, needed}]}`."""
    report = {"ok": path_works(results), "checks": [asdict(r) for r in results]}
    return json.dumps(report, ensure_ascii=False, indent=2)
