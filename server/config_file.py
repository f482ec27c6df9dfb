"""`config.json` as a file: reading it and its environment overrides, with the standard library.

`load_settings` (server/config.py) validates every key of what is read here with pydantic; the
owner's commands that call no model (`away`, `drafts`, `history`, `memory`, `rules`,
`plugin install`) read only the few keys they use, as `OwnerSettings`, and answer at once.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

ReplyWhen = Literal["away", "always"]
ReplyMode = Literal["send", "draft"]

MAX_REPLY_AFTER_SECONDS = 3600.0
"""The longest grace period (REPLY_AFTER_SECONDS): the owner's messages are kept this long."""

# Settings that hold secrets: never logged, never echoed back in errors.
SECRET_KEYS = (
    "OPENAI_API_KEY",
    "DISCORD_AUTHORIZATION",
    "WEBSOCKET_SECRET",
    "DISCORD_BOT_TOKEN",
    "NOTIFY_URLS",  # Apprise URLs carry tokens and passwords
)


SETTING_NAMES = frozenset(
    {
        *("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "G4F_MODEL", "G4F_PROVIDER"),
        *("LLM_BACKENDS", "LLM_TIMEOUT_SECONDS", "LLM_MAX_RETRIES", "CONTEXT_TOKENS", "SUMMARIZE"),
        *("DISCORD_AUTHORIZATION", "DISCORD_API_BASE", "MESSENGER", "MACRO_IDLE_SECONDS"),
        *("WEBSOCKET_HOST", "WEBSOCKET_PORT", "WEBSOCKET_SECRET", "ALLOWED_ORIGINS"),
        *("HELLO_TIMEOUT_SECONDS", "SEND_TIMEOUT_SECONDS", "DATABASE", "RETENTION_DAYS"),
        *("MEMORY_LENGTH", "MAX_TOKENS", "REPLY_PREFIX", "FALLBACK_MESSAGE", "STYLE"),
        *("TYPING_INTERVAL_SECONDS", "TYPING_DELAY_SECONDS", "COALESCE_SECONDS"),
        *("REPLY_AFTER_SECONDS", "TAKEOVER_MINUTES", "REPLY_WITHIN_MINUTES"),
        *("MAX_REPLIES_PER_MINUTE", "MAX_REPLIES_PER_HOUR", "REPLY_WHEN", "MODE"),
        *("ATTACHMENT_HOSTS", "VISION", "TRANSCRIBE_MODEL", "TRANSCRIBE_BASE_URL"),
        *("DRAFT_EXPIRE_MINUTES", "AWAY_NOTE", "AWAY_SCHEDULE", "TIMEZONE"),
        *("NOTIFY_URLS", "NOTIFY_ON", "URGENT_WORDS", "NOTIFY_TEXT"),
        *("DISCORD_BOT_TOKEN", "DISCORD_APPLICATION_ID", "DISCORD_PUBLIC_KEY", "BOT_SHARDS"),
        *("OWNER_BOT", "OWNER_ID"),
    }
)
"""Every key `config.json` may hold (those of `Settings`; a test keeps the two alike), so the
owner's quick commands refuse a misspelt key as `serve` does, without loading pydantic."""


class ConfigError(Exception):
    """A setting is missing, unknown or of the wrong type; the text names the key and its source."""


def read_config_file(path: Path) -> tuple[dict[str, object], dict[str, int]]:
    """The settings in `path` and the line of each top-level key (a missing file: none).

    Raises `ConfigError` naming the file when it cannot be read, is not JSON or not an object.
    """
    if not path.exists():
        return {}, {}
    try:
        # utf-8-sig: Windows PowerShell 5 and older Notepads start UTF-8 files with a BOM.
        text = path.read_text(encoding="utf-8-sig")
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must hold a JSON object of settings")
    return raw, _key_lines(text)


def environment_values(
    keys: Iterable[str], text_keys: Collection[str], env: Mapping[str, str]
) -> dict[str, object]:
    """The overrides of `keys` set in `env`. Environment values are strings: those of
    `text_keys` stay so, the others are JSON-decoded when they can be (numbers, lists)."""
    return {key: _parse_env(env[key], as_text=key in text_keys) for key in keys if key in env}


def database_path(database: str, config_dir: Path) -> Path:
    """DATABASE, a relative path being taken from the config file's folder."""
    return config_dir / Path(database).expanduser()


@dataclass(frozen=True)
class OwnerSettings:
    """The keys of `config.json` that the owner's commands calling no model read, each checked.

    The file's other keys are not checked here (unknown ones are refused): `check` and `serve`
    validate everything. `Settings` takes its defaults for these keys from here.
    """

    WEBSOCKET_HOST: str = "127.0.0.1"
    WEBSOCKET_PORT: int = 8765
    WEBSOCKET_SECRET: str = ""
    DATABASE: str = "auto_reply.db"
    MODE: ReplyMode = "send"
    REPLY_WHEN: ReplyWhen = "away"
    SEND_TIMEOUT_SECONDS: float = 30.0


OWNER_DEFAULTS = OwnerSettings()
"""What a key of `OwnerSettings` (and of `Settings`) is when the file and environment omit it."""


def load_owner_settings(path: Path, env: Mapping[str, str] = os.environ) -> OwnerSettings:
    """The keys of `OwnerSettings` from `path` and environment overrides; DATABASE resolved
    against the file's folder, as `load_settings` does.

    Raises `ConfigError` naming the key and the file (with its line) or environment variable.
    """
    values, lines = read_config_file(path)
    unknown = [key for key in values if key not in SETTING_NAMES]
    if unknown:
        where = "; ".join(
            f"unknown key {key!r}" + (f" (line {lines[key]})" if key in lines else "")
            for key in unknown
        )
        raise ConfigError(f"{path}: {where}")
    checked = _checked({key: values[key] for key in _CHECKS if key in values}, str(path), lines)
    for key, value in environment_values(_CHECKS, _TEXT_KEYS, env).items():
        checked.update(_checked({key: value}, f"environment variable {key}", {}))
    settings = OwnerSettings(**checked)
    return replace(settings, DATABASE=str(database_path(settings.DATABASE, path.parent)))


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _file_name(value: object) -> str:
    name = _text(value)
    if not name:
        raise ValueError("must not be empty")
    return name


def _port(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise ValueError("must be a whole number from 0 to 65535")
    return value


def _positive_seconds(value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ValueError("must be a number of seconds greater than 0")
    return float(value)


def _one_of(choices: tuple[str, ...]) -> Callable[[object], str]:
    def check(value: object) -> str:
        if value not in choices:
            raise ValueError("must be " + " or ".join(f'"{choice}"' for choice in choices))
        return value

    return check


_CHECKS: dict[str, Callable[[object], object]] = {
    "WEBSOCKET_HOST": _text,
    "WEBSOCKET_PORT": _port,
    "WEBSOCKET_SECRET": _text,
    "DATABASE": _file_name,
    "MODE": _one_of(get_args(ReplyMode)),
    "REPLY_WHEN": _one_of(get_args(ReplyWhen)),
    "SEND_TIMEOUT_SECONDS": _positive_seconds,
}
# The keys whose environment value is the text itself, not JSON (as `Settings` reads them).
_TEXT_KEYS = frozenset({"WEBSOCKET_HOST", "WEBSOCKET_SECRET", "DATABASE", "MODE", "REPLY_WHEN"})


def _checked(values: Mapping[str, object], source: str, lines: Mapping[str, int]) -> dict[str, Any]:
    """`values` checked, or `ConfigError` naming `source` and each key at fault (with its line),
    as `load_settings` words it; a secret's value is never echoed."""
    checked: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in values.items():
        try:
            checked[key] = _CHECKS[key](value)
        except ValueError as exc:
            at = f" (line {lines[key]})" if key in lines else ""
            got = "" if key in SECRET_KEYS else f" (got {value!r})"
            problems.append(f"{key}{at}: {exc}{got}")
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    return checked


def _parse_env(text: str, *, as_text: bool) -> object:
    if as_text:
        return text
    try:
        value: object = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value


def _key_lines(text: str) -> dict[str, int]:
    """The line of each top-level key of a config file, for error messages."""
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        found = re.match(r'\s*"([A-Za-z0-9_]+)"\s*:', line)
        if found:
            lines.setdefault(found.group(1), number)
    return lines
