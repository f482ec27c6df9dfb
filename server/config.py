"""`config.json`: the server's settings, validated with pydantic, overridable by environment.

server/config_file.py reads the file and the environment; the owner's light commands read their
few keys there alone, without this module.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from server.config_file import (
    MAX_REPLY_AFTER_SECONDS,
    OWNER_DEFAULTS,
    SECRET_KEYS,
    database_path,
    environment_values,
    read_config_file,
)

# Re-exported (explicitly, for mypy): the relay's modules import these from here.
from server.config_file import ConfigError as ConfigError  # noqa: PLC0414
from server.config_file import ReplyMode as ReplyMode  # noqa: PLC0414
from server.config_file import ReplyWhen as ReplyWhen  # noqa: PLC0414
from server.conversation.memory import MAX_MEMORY_LENGTH
from server.owner.away_schedule import AwaySchedule, parse_schedule, parse_window, zone_named

DEFAULT_ORIGINS = (
    "https://discord.com",
    "https://ptb.discord.com",
    "https://canary.discord.com",
)

BackendName = Literal["openai", "g4f"]
DEFAULT_BACKENDS: tuple[BackendName, ...] = ("openai", "g4f")
MessengerName = Literal["auto", "rest", "plugin", "macro"]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("must be an http(s) URL such as http://127.0.0.1:11434/v1")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
HttpUrlOrEmpty = Annotated[str, AfterValidator(lambda value: value and _http_url(value))]


def _snowflake_or_empty(value: str) -> str:
    if value and not re.fullmatch(r"[0-9]{1,25}", value):
        raise ValueError("must be the application's id (digits), from the Developer Portal")
    return value


def _public_key_or_empty(value: str) -> str:
    if value and not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise ValueError("must be the application's public key: 64 hexadecimal characters")
    return value


SnowflakeOrEmpty = Annotated[str, AfterValidator(_snowflake_or_empty)]


def _user_id_or_empty(value: str) -> str:
    if value and not re.fullmatch(r"[0-9]{1,25}", value):
        raise ValueError("must be your Discord user id (digits: Copy User ID in Developer Mode)")
    return value


UserIdOrEmpty = Annotated[str, AfterValidator(_user_id_or_empty)]


def _host_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.-]+|\[?[0-9A-Fa-f:]+\]?", value):
        raise ValueError("must be a host name such as cdn.discordapp.com (no scheme, port or path)")
    return value.lower().strip("[]")


HostName = Annotated[str, AfterValidator(_host_name)]
"""A host attachments may be downloaded from (any port)."""
DEFAULT_ATTACHMENT_HOSTS = ("cdn.discordapp.com", "media.discordapp.net")


def _away_window(value: str) -> str:
    parse_window(value)
    return value


def _time_zone(value: str) -> str:
    zone_named(value)
    return value


AwayWindow = Annotated[str, AfterValidator(_away_window)]
"""One window of away hours, e.g. "mon-fri 22:00-08:00" (server/away_schedule.py)."""
TimeZoneName = Annotated[str, AfterValidator(_time_zone)]
"""An IANA time zone name such as "Europe/Berlin"; "" = this machine's local time."""
PublicKeyOrEmpty = Annotated[str, AfterValidator(_public_key_or_empty)]

NoticeKind = Literal["draft", "urgent", "failure", "summary", "reply"]
DEFAULT_NOTIFY_ON: tuple[NoticeKind, ...] = ("draft", "urgent", "failure", "summary")
DEFAULT_URGENT_WORDS = ("urgent", "asap", "emergency", "call me")


def _apprise_url(value: str) -> str:
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://\S", value):
        raise ValueError("must be an Apprise URL such as ntfys://ntfy.sh/my-topic")
    return value


AppriseUrl = Annotated[str, AfterValidator(_apprise_url)]


class Settings(BaseModel):
    """Every key of `config.json`; see docs/configuration.md for what each one does."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    OPENAI_API_KEY: str = ""
    OPENAI_BASE_URL: HttpUrlOrEmpty = ""
    OPENAI_MODEL: str = "gpt-4o-mini"
    G4F_MODEL: str = ""
    LLM_BACKENDS: list[BackendName] = Field(default_factory=lambda: list(DEFAULT_BACKENDS))
    LLM_TIMEOUT_SECONDS: PositiveFloat = 60.0
    LLM_MAX_RETRIES: Annotated[int, Field(ge=0, le=10)] = 2
    DISCORD_AUTHORIZATION: str = ""
    DISCORD_API_BASE: HttpUrl = "https://discord.com/api/v9"
    # The keys the owner's light commands read too (server/config_file.py): their defaults.
    WEBSOCKET_HOST: str = OWNER_DEFAULTS.WEBSOCKET_HOST
    WEBSOCKET_PORT: Annotated[int, Field(ge=0, le=65535)] = OWNER_DEFAULTS.WEBSOCKET_PORT
    WEBSOCKET_SECRET: str = OWNER_DEFAULTS.WEBSOCKET_SECRET
    ALLOWED_ORIGINS: list[str] = Field(default_factory=lambda: list(DEFAULT_ORIGINS))
    MESSENGER: MessengerName = "auto"
    MEMORY_LENGTH: Annotated[int, Field(ge=0, le=MAX_MEMORY_LENGTH)] = 10
    MAX_TOKENS: Annotated[int, Field(gt=0)] = 500
    REPLY_PREFIX: Annotated[str, Field(max_length=200)] = "[auto-reply] "
    FALLBACK_MESSAGE: str = ""
    TYPING_INTERVAL_SECONDS: PositiveFloat = 8.0
    TYPING_DELAY_SECONDS: NonNegativeFloat = 0.5
    HELLO_TIMEOUT_SECONDS: PositiveFloat = 5.0
    SEND_TIMEOUT_SECONDS: PositiveFloat = OWNER_DEFAULTS.SEND_TIMEOUT_SECONDS
    # Conversations: the database, the memory window, bursts and owner takeover.
    DATABASE: Annotated[str, Field(min_length=1)] = OWNER_DEFAULTS.DATABASE
    RETENTION_DAYS: PositiveFloat = 30.0
    CONTEXT_TOKENS: Annotated[int, Field(ge=100, le=2_000_000)] = 3000
    SUMMARIZE: bool = False
    COALESCE_SECONDS: NonNegativeFloat = 2.0
    REPLY_AFTER_SECONDS: Annotated[float, Field(ge=0, le=MAX_REPLY_AFTER_SECONDS)] = 0.0
    TAKEOVER_MINUTES: NonNegativeFloat = 15.0
    # Exactly once and guard rails.
    REPLY_WITHIN_MINUTES: PositiveFloat = 10.0
    MAX_REPLIES_PER_MINUTE: Annotated[int, Field(ge=0)] = 4
    MAX_REPLIES_PER_HOUR: Annotated[int, Field(ge=0)] = 30
    # The GUI macro: how long the person must leave the Discord window alone before it types.
    MACRO_IDLE_SECONDS: Annotated[float, Field(ge=0)] = 20.0
    # g4f backend: which provider to use ("" = g4f chooses)
    G4F_PROVIDER: str = ""
    # Attachments: images for models that take them, voice notes transcribed, text files inlined.
    ATTACHMENT_HOSTS: list[HostName] = Field(default_factory=lambda: list(DEFAULT_ATTACHMENT_HOSTS))
    VISION: Literal["auto"] | bool = "auto"
    TRANSCRIBE_MODEL: str = ""
    TRANSCRIBE_BASE_URL: HttpUrlOrEmpty = ""
    # Away mode and drafts: when the relay speaks for the owner, and whether it asks first.
    REPLY_WHEN: ReplyWhen = OWNER_DEFAULTS.REPLY_WHEN
    MODE: ReplyMode = OWNER_DEFAULTS.MODE
    DRAFT_EXPIRE_MINUTES: PositiveFloat = 30.0
    AWAY_NOTE: Annotated[str, Field(max_length=500)] = ""
    STYLE: bool = False
    """The owner's style profile (`style learn`) joins the system prompt."""
    # Notifications through Apprise: what reaches the owner's phone, and whether texts go along.
    NOTIFY_URLS: list[AppriseUrl] = Field(default_factory=list)
    NOTIFY_ON: list[NoticeKind] = Field(default_factory=lambda: list(DEFAULT_NOTIFY_ON))
    URGENT_WORDS: list[str] = Field(default_factory=lambda: list(DEFAULT_URGENT_WORDS))
    NOTIFY_TEXT: bool = True
    # Away hours: windows in which the owner counts as away whatever their Discord status.
    AWAY_SCHEDULE: list[AwayWindow] = Field(default_factory=list)
    TIMEZONE: TimeZoneName = ""
    # Bot-account mode (`discord-auto-reply bot` and `interactions`)
    DISCORD_BOT_TOKEN: str = ""
    DISCORD_APPLICATION_ID: SnowflakeOrEmpty = ""
    DISCORD_PUBLIC_KEY: PublicKeyOrEmpty = ""
    # "auto": as many gateway connections as Discord recommends (it requires them from 2,500 guilds)
    BOT_SHARDS: Literal["auto"] | Annotated[int, Field(ge=1)] = "auto"
    # The owner's remote: that bot also DMs the owner drafts (with buttons), urgent messages and
    # failures, and takes /away, /drafts and /history from them alone.
    OWNER_BOT: bool = False
    OWNER_ID: UserIdOrEmpty = ""

    def messenger_name(self) -> Literal["rest", "plugin", "macro"]:
        """Resolve `MESSENGER: "auto"`: REST when a token is set, else the plugin."""
        if self.MESSENGER != "auto":
            return self.MESSENGER
        return "rest" if self.DISCORD_AUTHORIZATION else "plugin"

    def away_schedule(self) -> AwaySchedule:
        """AWAY_SCHEDULE in TIMEZONE (validated when the settings were)."""
        return parse_schedule(tuple(self.AWAY_SCHEDULE), self.TIMEZONE)

    def secret_values(self) -> list[str]:
        """The non-empty secret values, for log redaction (each URL of a list)."""
        values: list[str] = []
        for key in SECRET_KEYS:
            value = getattr(self, key)
            values.extend(value if isinstance(value, list) else [value])
        return [value for value in values if value]


_TEXT_KEYS = frozenset(
    key
    for key, field in Settings.model_fields.items()
    if field.annotation in (str, MessengerName, ReplyWhen, ReplyMode)
)
"""The keys whose environment value is the text itself (the others' are JSON-decoded)."""


def load_settings(path: Path, env: Mapping[str, str] = os.environ) -> Settings:
    """Read `path` (missing file = all defaults) and apply environment overrides.

    Raises `ConfigError` naming the key and the file (or environment variable) at fault.
    """
    values, lines = read_config_file(path)
    if values:
        _validate(values, source=str(path), lines=lines)
    from_env = environment_values(Settings.model_fields, _TEXT_KEYS, env)
    for key, value in from_env.items():
        _validate({**values, key: value}, source=f"environment variable {key}", only=key)
    settings = _validate({**values, **from_env}, source=str(path), lines=lines)
    database = database_path(settings.DATABASE, path.parent)
    return settings.model_copy(update={"DATABASE": str(database)})


def write_initial_config(
    path: Path, values: Mapping[str, object] | None = None, *, replace: bool = False
) -> None:
    """Write `path` with every default, `values` over them, and a random `WEBSOCKET_SECRET`.

    An existing file is kept (`ConfigError`) unless `replace`; then `values` go over its own
    (every other key and the secret stay, so an installed plugin still connects). Raises
    `ConfigError` for invalid `values`, or an existing file whose keys are not valid.
    """
    existing = _existing_values(path) if replace else {}
    secret = existing.get("WEBSOCKET_SECRET") or secrets.token_urlsafe(32)
    settings = _validate(
        {**existing, **(values or {}), "WEBSOCKET_SECRET": secret},
        source=f"the settings for {path}",
    )
    text = json.dumps(settings.model_dump(), indent=2) + "\n"
    if replace:
        _replace_privately(path, text)
        return
    try:
        with path.open("x", encoding="utf-8") as file:
            os.chmod(path, 0o600)  # POSIX only: on Windows the file takes the folder's ACL
            file.write(text)
    except FileExistsError as exc:
        raise ConfigError(f"{path} already exists; not overwriting it") from exc


def _existing_values(path: Path) -> dict[str, object]:
    """The settings in the config file at `path`, or none when it cannot be read as settings."""
    try:
        return read_config_file(path)[0]
    except ConfigError:
        return {}


def _replace_privately(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step, readable by the owner alone (POSIX)."""
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temp_name, 0o600)
        os.replace(temp_name, path)
    except OSError as exc:
        Path(temp_name).unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot be written ({exc.strerror or exc})") from exc


def _validate(
    values: dict[str, object],
    *,
    source: str,
    only: str | None = None,
    lines: Mapping[str, int] | None = None,
) -> Settings:
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = [
            _describe(error, lines or {})
            for error in exc.errors()
            if only is None or (error["loc"] and error["loc"][0] == only)
        ]
        raise ConfigError(f"{source}: " + "; ".join(problems or [str(exc)])) from None


def _describe(error: Mapping[str, object], lines: Mapping[str, int]) -> str:
    loc = error.get("loc")
    key = ".".join(str(part) for part in loc) if isinstance(loc, tuple) and loc else "?"
    top = str(loc[0]) if isinstance(loc, tuple) and loc else ""
    at = f" (line {lines[top]})" if top in lines else ""
    if error.get("type") == "extra_forbidden":
        return f"unknown key {key!r}{at}"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    key += at
    if top in SECRET_KEYS:
        return f"{key}: {message}"
    return f"{key}: {message} (got {error.get('input')!r})"
