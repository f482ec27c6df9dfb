"""The bot side of the fake Discord REST API: login, gateway URL, commands and interactions.

`FakeDiscordBot` is `FakeDiscord` (messages, typing, rate limits) plus the routes discord.py and
the HTTP interactions endpoint call: `GET /users/@me`, `GET /oauth2/applications/@me`,
`GET /gateway/bot`, `PUT /applications/{id}/commands` (bulk overwrite),
`POST /interactions/{id}/{token}/callback`, `PATCH /webhooks/{app}/{token}/messages/@original`
and `POST /webhooks/{app}/{token}` (follow-ups). It also plays the people who write to the bot
(`post_as_user`) and creates interactions (`new_interaction`), signing them with the
application's Ed25519 key when it delivers them over HTTP like Discord does (`deliver`).

With `flavour="spacebar"` it is as rude as Spacebar (spacebarchat/server 74df883): the bulk
overwrite is refused with 400/50035 "must NOT have additional properties" when an option has
`max_length` (`refused_option_keys`), interactions carry `channel_id` but no `channel` object,
and DMs carry `"guild_id": null` (the fake gateway sends them so).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from nacl.signing import SigningKey

from tests.fakes.discord_api import FakeDiscord, Route, _error, _form_errors

APPLICATION_COMMAND = 2
PONG, CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE = 1, 4, 5
EPHEMERAL, LOADING = 1 << 6, 1 << 7
CHAT_INPUT_COMMAND_MESSAGE = 20
GUILD_TEXT, DM = 0, 1
PERMISSIONS = "2248473465835073"
JOINED_AT = "2026-01-01T00:00:00.000000+00:00"
INTERACTION_WINDOW = 3.0
"""Seconds Discord gives the first response to an interaction."""
COMMAND_NAME = re.compile(r"^[-_a-z0-9]{1,32}$")
OPTION_TYPES = range(1, 12)
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
SPACEBAR_REFUSED_OPTION_KEYS = frozenset({"max_length"})
"""Option fields Spacebar's command schema lacks (it has `additionalProperties: false`)."""


def _user(user_id: str, name: str, *, bot: bool = False) -> dict[str, Any]:
    user: dict[str, Any] = {
        "id": user_id,
        "username": name,
        "global_name": None if bot else name.title(),
        "avatar": None,
        "discriminator": "0",
        "public_flags": 0,
        "flags": 0,
    }
    if bot:
        user["bot"] = True
    return user


def _text_channel(channel_id: str, guild_id: str) -> dict[str, Any]:
    return {
        "id": channel_id,
        "type": GUILD_TEXT,
        "guild_id": guild_id,
        "name": f"channel-{channel_id[-4:]}",
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "flags": 0,
    }


def _member(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "user": user,
        "roles": [],
        "joined_at": JOINED_AT,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "nick": None,
        "avatar": None,
        "premium_since": None,
    }


def _command_errors(commands: object) -> dict[str, Any] | None:
    """Discord's 50035 `errors` for a bulk overwrite the fake checks, or None if valid."""
    if not isinstance(commands, list):
        return {"_errors": [{"code": "BASE_TYPE_ARRAY", "message": "Must be an array."}]}
    errors: dict[str, Any] = {}
    for index, command in enumerate(commands):
        problem = _command_problem(command, top_level=True)
        if problem is not None:
            errors[str(index)] = {"_errors": [{"code": "INVALID_COMMAND", "message": problem}]}
    return errors or None


def _extra_property_errors(commands: list[Any], refused: frozenset[str]) -> dict[str, Any] | None:
    """Spacebar's 50035 `errors` for options carrying a field its schema lacks, or None."""
    errors: dict[str, Any] = {}

    def check(options: object, path: dict[str, Any]) -> None:
        for index, option in enumerate(options if isinstance(options, list) else []):
            if not isinstance(option, dict):
                continue
            here: dict[str, Any] = {}
            if refused & option.keys():
                here["_errors"] = [
                    {"code": "BASE_TYPE_INVALID", "message": "must NOT have additional properties"}
                ]
            check(option.get("options"), here.setdefault("options", {}))
            if not here["options"]:
                del here["options"]
            if here:
                path[str(index)] = here

    for index, command in enumerate(commands):
        found: dict[str, Any] = {}
        if isinstance(command, dict):
            check(command.get("options"), found)
        if found:
            errors[str(index)] = {"options": found}
    return errors or None


def _command_problem(command: object, *, top_level: bool) -> str | None:
    if not isinstance(command, dict):
        return "Must be an object."
    name = command.get("name")
    if not isinstance(name, str) or not COMMAND_NAME.match(name):
        return f"Invalid name {name!r}."
    description = command.get("description")
    if not isinstance(description, str) or not 1 <= len(description) <= 100:
        return f"Description of {name!r} must be 1 to 100 characters."
    if not top_level and command.get("type") not in OPTION_TYPES:
        return f"Invalid option type for {name!r}."
    options = command.get("options") or []
    if len(options) > 25:
        return "Must be 25 or fewer options."
    required_after_optional = False
    seen_optional = False
    for option in options:
        problem = _command_problem(option, top_level=False)
        if problem is not None:
            return problem
        if option.get("required"):
            required_after_optional |= seen_optional
        else:
            seen_optional = True
    if required_after_optional:
        return "Required options must be placed before non-required options."
    return None


@dataclass
class FakeInteraction:
    """One APPLICATION_COMMAND interaction and what the application answered to it."""

    id: str
    token: str
    payload: dict[str, Any]
    created_at: float
    callback: dict[str, Any] | None = None
    """The initial response: `{"type": ..., "data": ...}` as the application sent it."""
    original: dict[str, Any] | None = None
    """The message at `@original`, as it stands now."""
    edits: list[dict[str, Any]] = field(default_factory=list)
    followups: list[dict[str, Any]] = field(default_factory=list)
    acknowledged: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class FakeDiscordBot(FakeDiscord):
    """The REST API for a bot application whose token is `BOT_TOKEN` (the user token still works).

    `gateway_url` is what `GET /gateway/bot` returns (the fake gateway sets it). `commands` holds
    the last bulk overwrite; `interactions` every interaction by token.
    """

    BOT_TOKEN = "ODk2.fake-bot-token.ZmFrZQ"
    BOT_ID = "1180000000000000042"
    APPLICATION_ID = BOT_ID
    OWNER_ID = "1180000000000000007"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gateway_url = ""
        self.signing_key = SigningKey.generate()
        self.commands: list[dict[str, Any]] = []
        self.command_overwrites = 0
        self.refused_overwrites = 0
        self.recommended_shards = 1
        """The shard count `GET /gateway/bot` recommends (Discord's: one per 1,000 guilds)."""
        self.overwrite_times: list[float] = []
        """When each bulk overwrite arrived (time.monotonic), accepted or not."""
        self.interactions: dict[str, FakeInteraction] = {}
        self.guilds: dict[str, list[str]] = {}
        """Guild id → its text channels' ids: the guilds the bot is in."""
        self.channel_guilds: dict[str, str] = {}
        """Channel id → guild id; any other channel is a DM with the bot."""
        self.refused_option_keys: frozenset[str] = (
            SPACEBAR_REFUSED_OPTION_KEYS if self.flavour == "spacebar" else frozenset()
        )
        """Command option fields a bulk overwrite is refused for (400/50035)."""

    @property
    def public_key(self) -> str:
        """The application's public key in hex, as the Developer Portal shows it."""
        return bytes(self.signing_key.verify_key).hex()

    @property
    def bot_user(self) -> dict[str, Any]:
        """The bot's user object."""
        return _user(self.BOT_ID, "fake-bot", bot=True)

    def _routes(self) -> Sequence[Route]:
        return [
            *super()._routes(),
            ("GET", "/oauth2/applications/@me", self._current_application),
            ("GET", "/gateway/bot", self._gateway_bot),
            ("PUT", "/applications/{application_id}/commands", self._overwrite_commands),
            ("POST", "/interactions/{interaction_id}/{token}/callback", self._callback),
            (
                "PATCH",
                "/webhooks/{application_id}/{token}/messages/@original",
                self._edit_original,
            ),
            ("POST", "/webhooks/{application_id}/{token}", self._follow_up),
        ]

    def _author(self, request: web.Request) -> dict[str, Any] | None:
        if request.headers.get("Authorization") == f"Bot {self.BOT_TOKEN}":
            return self.bot_user
        return super()._author(request)

    def add_guild(self, guild_id: str, *channel_ids: str) -> None:
        """The bot is in guild `guild_id`, which has these text channels (before it connects)."""
        self.guilds[guild_id] = list(channel_ids)
        self.channel_guilds.update(dict.fromkeys(channel_ids, guild_id))

    def guild_create(self, guild_id: str) -> dict[str, Any]:
        """The GUILD_CREATE payload of a guild the bot is in."""
        return {
            "id": guild_id,
            "name": f"guild-{guild_id[-4:]}",
            "icon": None,
            "owner_id": self.OWNER_ID,
            "unavailable": False,
            "large": False,
            "member_count": 2,
            "joined_at": JOINED_AT,
            "features": [],
            "roles": [
                {
                    "id": guild_id,
                    "name": "@everyone",
                    "permissions": PERMISSIONS,
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                }
            ],
            "channels": [_text_channel(channel, guild_id) for channel in self.guilds[guild_id]],
            "members": [_member(self.bot_user)],
            "threads": [],
            "voice_states": [],
            "presences": [],
            "emojis": [],
            "stickers": [],
        }

    # The people on the other side.

    def post_as_user(
        self,
        author_id: str,
        channel_id: str,
        content: str,
        *,
        mentions_bot: bool = False,
        reply_to: str | None = None,
        author_is_bot: bool = False,
        attachments: list[dict[str, Any]] | None = None,
        flags: int = 0,
        stickers: list[str] | None = None,
    ) -> dict[str, Any]:
        """Someone writes in a channel (a guild's, or else a DM with the bot); listeners see it.
        `attachments` as Discord describes them (see `attachment`), `flags` the message's
        (IS_VOICE_MESSAGE 1 << 13), `stickers` by name."""
        author = _user(author_id, f"user{author_id[-4:]}", bot=author_is_bot)
        body: dict[str, Any] = {"content": content}
        if reply_to is not None:
            body["message_reference"] = {"message_id": reply_to, "channel_id": channel_id}
        message = self._new_message(channel_id, body, author)
        message["attachments"] = attachments or []
        message["flags"] = flags
        message["sticker_items"] = [
            {"id": self.snowflake(), "name": name, "format_type": 1} for name in stickers or []
        ]
        if mentions_bot:
            message["mentions"] = [self.bot_user]
        for listener in self.message_listeners:
            listener(message)
        return message

    def attachment(
        self,
        channel_id: str,
        filename: str,
        data: bytes,
        content_type: str,
        *,
        duration_secs: float | None = None,
    ) -> dict[str, Any]:
        """An attachment object as MESSAGE_CREATE carries it, its file served on the fake CDN."""
        url = self.add_attachment(channel_id, filename, data, content_type)
        attachment: dict[str, Any] = {
            "id": self.snowflake(),
            "filename": filename,
            "content_type": content_type,
            "size": len(data),
            "url": url,
            "proxy_url": url,
        }
        if duration_secs is not None:
            attachment["duration_secs"] = duration_secs
            attachment["waveform"] = "AAAA"
        return attachment

    def new_interaction(
        self,
        name: str,
        user_id: str,
        channel_id: str,
        *,
        options: dict[str, str] | None = None,
        subcommand: str | None = None,
    ) -> FakeInteraction:
        """Someone runs `/name [subcommand] options…` in a channel; the interaction is created."""
        values = [{"type": 3, "name": k, "value": v} for k, v in (options or {}).items()]
        if subcommand is not None:
            values = [{"type": SUB_COMMAND, "name": subcommand, "options": values}]
        registered = next((c for c in self.commands if c["name"] == name), None)
        token = "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(48)
        user = _user(user_id, f"user{user_id[-4:]}")
        payload: dict[str, Any] = {
            "id": self.snowflake(),
            "application_id": self.APPLICATION_ID,
            "type": APPLICATION_COMMAND,
            "data": {
                "id": registered["id"] if registered else self.snowflake(),
                "name": name,
                "type": 1,
                "options": values,
            },
            "channel_id": channel_id,
            "token": token,
            "version": 1,
            "app_permissions": PERMISSIONS,
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": 10_485_760,
        }
        guild_id = self.channel_guilds.get(channel_id)
        if guild_id is not None:
            payload["guild_id"] = guild_id
            payload["guild_locale"] = "en-US"
            payload["context"] = 0
            payload["authorizing_integration_owners"] = {"0": guild_id}
            payload["channel"] = {
                **_text_channel(channel_id, guild_id),
                "permissions": PERMISSIONS,
            }
            payload["member"] = {**_member(user), "permissions": PERMISSIONS}
        else:
            payload["context"] = 1
            payload["authorizing_integration_owners"] = {"0": self.OWNER_ID}
            payload["channel"] = {
                "id": channel_id,
                "type": DM,
                "recipients": [user],
                "last_message_id": None,
                "flags": 0,
            }
            payload["user"] = user
        if self.flavour == "spacebar":
            # Only the ids: no channel object, and every column spread, null or not.
            del payload["channel"]
            payload.setdefault("guild_id", None)
        interaction = FakeInteraction(payload["id"], token, payload, time.monotonic())
        self.interactions[token] = interaction
        return interaction

    async def deliver(
        self,
        url: str,
        interaction: FakeInteraction,
        session: aiohttp.ClientSession,
    ) -> tuple[int, Any]:
        """POST the interaction to an Interactions Endpoint URL, signed as Discord signs it.

        A 200 answer is taken as the initial response; returns the status and the JSON body.
        """
        body = json.dumps(interaction.payload).encode()
        timestamp = str(int(time.time()))
        signature = self.signing_key.sign(timestamp.encode() + body).signature.hex()
        headers = {
            "Content-Type": "application/json",
            "X-Signature-Ed25519": signature,
            "X-Signature-Timestamp": timestamp,
            "User-Agent": "Discord-Interactions/1.0 (+https://discord.com)",
        }
        async with session.post(url, data=body, headers=headers) as response:
            answer = await response.json(content_type=None) if response.status == 200 else None
            if answer is not None:
                self._acknowledge(interaction, answer)
            return response.status, answer

    async def wait_for_answer(
        self, interaction: FakeInteraction, timeout: float = 5.0
    ) -> dict[str, Any]:
        """Wait until `@original` holds content (no longer loading); return that message."""

        def answered() -> bool:
            original = interaction.original
            return original is not None and not original["flags"] & LOADING

        await _wait_until(interaction, answered, timeout)
        assert interaction.original is not None
        return interaction.original

    async def wait_for_followups(
        self, interaction: FakeInteraction, count: int, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Wait until the interaction has `count` follow-up messages; return them."""
        await _wait_until(interaction, lambda: len(interaction.followups) >= count, timeout)
        return interaction.followups

    # Login and gateway.

    async def _current_user(self, request: web.Request) -> web.Response:
        author = self._author(request)
        if author is None:
            return _error(401, "401: Unauthorized", 0)
        if author.get("bot"):
            return web.json_response(
                {**author, "verified": True, "mfa_enabled": False, "locale": "en-US"}
            )
        return web.json_response(author)

    async def _current_application(self, request: web.Request) -> web.Response:
        if self._author(request) != self.bot_user:
            return _error(401, "401: Unauthorized", 0)
        return web.json_response(
            {
                "id": self.APPLICATION_ID,
                "name": "Fake Persona",
                "icon": None,
                "description": "",
                "bot_public": False,
                "bot_require_code_grant": False,
                "verify_key": self.public_key,
                "flags": 1 << 19,  # GATEWAY_MESSAGE_CONTENT_LIMITED
                "owner": _user(self.OWNER_ID, "owner"),
                "team": None,
                "bot": self.bot_user,
                "interactions_endpoint_url": None,
            }
        )

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        if self._author(request) != self.bot_user:
            return _error(401, "401: Unauthorized", 0)
        return web.json_response(
            {
                "url": self.gateway_url,
                "shards": self.recommended_shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    # Commands.

    async def _overwrite_commands(self, request: web.Request) -> web.Response:
        self.overwrite_times.append(time.monotonic())
        if self._author(request) != self.bot_user:
            return _error(401, "401: Unauthorized", 0)
        if request.match_info["application_id"] != self.APPLICATION_ID:
            return _error(403, "Missing Access", 50001)
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error(400, "The request body contains invalid JSON.", 50109)
        errors = _command_errors(body)
        if errors is None and self.refused_option_keys:
            errors = _extra_property_errors(body, self.refused_option_keys)
        if errors is not None:
            self.refused_overwrites += 1
            return _error(400, "Invalid Form Body", 50035, errors=errors)
        self.commands = [
            {
                **command,
                "id": self.snowflake(),
                "application_id": self.APPLICATION_ID,
                "version": self.snowflake(),
                "default_member_permissions": None,
            }
            for command in body
        ]
        self.command_overwrites += 1
        return web.json_response(self.commands)

    # Interactions.

    async def _callback(self, request: web.Request) -> web.Response:
        interaction = self.interactions.get(request.match_info["token"])
        if interaction is None or interaction.id != request.match_info["interaction_id"]:
            return _error(404, "Unknown interaction", 10062)
        if time.monotonic() - interaction.created_at > INTERACTION_WINDOW:
            return _error(404, "Unknown interaction", 10062)
        if interaction.acknowledged.is_set():
            return _error(400, "Interaction has already been acknowledged.", 40060)
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error(400, "The request body contains invalid JSON.", 50109)
        if not isinstance(body, dict) or body.get("type") not in (
            CHANNEL_MESSAGE,
            DEFERRED_CHANNEL_MESSAGE,
        ):
            return _error(400, "Invalid Form Body", 50035)
        errors = _form_errors(body.get("data") or {})
        if errors:
            return _error(400, "Invalid Form Body", 50035, errors=errors)
        self._acknowledge(interaction, body)
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        assert interaction.original is not None
        flags = interaction.original["flags"]
        return web.json_response(
            {
                "interaction": {
                    "id": interaction.id,
                    "type": APPLICATION_COMMAND,
                    "response_message_id": interaction.original["id"],
                    "response_message_loading": bool(flags & LOADING),
                    "response_message_ephemeral": bool(flags & EPHEMERAL),
                },
                "resource": {"type": body["type"], "message": interaction.original},
            }
        )

    def _acknowledge(self, interaction: FakeInteraction, response: dict[str, Any]) -> None:
        """Record the initial response and create the message it makes."""
        interaction.callback = response
        data = response.get("data") or {}
        flags = int(data.get("flags") or 0) & EPHEMERAL
        if response.get("type") == DEFERRED_CHANNEL_MESSAGE:
            flags |= LOADING
        if response.get("type") in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            interaction.original = self._interaction_message(interaction, data, flags)
        interaction.acknowledged.set()
        interaction.changed.set()

    def _interaction_message(
        self, interaction: FakeInteraction, data: dict[str, Any], flags: int
    ) -> dict[str, Any]:
        payload = interaction.payload
        return {
            "id": self.snowflake(),
            "type": CHAT_INPUT_COMMAND_MESSAGE,
            "channel_id": payload["channel_id"],
            "content": data.get("content", ""),
            "author": self.bot_user,
            "attachments": [],
            "embeds": [],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": datetime.now(UTC).isoformat(timespec="microseconds"),
            "edited_timestamp": None,
            "flags": flags,
            "components": [],
            "webhook_id": self.APPLICATION_ID,
            "application_id": self.APPLICATION_ID,
            "allowed_mentions": data.get("allowed_mentions"),
            "interaction_metadata": {
                "id": interaction.id,
                "type": APPLICATION_COMMAND,
                "name": payload["data"]["name"],
                "user": (payload.get("member") or payload)["user"],
            },
        }

    async def _webhook_interaction(self, request: web.Request) -> FakeInteraction | web.Response:
        """The interaction a webhook route names, once its initial response has arrived."""
        interaction = self.interactions.get(request.match_info["token"])
        if interaction is None or request.match_info["application_id"] != self.APPLICATION_ID:
            return _error(404, "Unknown Webhook", 10015)
        # Discord has the endpoint's HTTP answer before any request made after it.
        try:
            await asyncio.wait_for(interaction.acknowledged.wait(), INTERACTION_WINDOW)
        except TimeoutError:
            return _error(404, "Unknown Message", 10008)
        headers, allowed = self._spend("webhooks", interaction.token)
        if not allowed:
            return self._too_many(headers, float(headers["X-RateLimit-Reset-After"]), False)
        return interaction

    async def _webhook_request(
        self, request: web.Request
    ) -> tuple[FakeInteraction, dict[str, Any]] | web.Response:
        """The interaction a webhook request names and its valid JSON body, or Discord's error."""
        found = await self._webhook_interaction(request)
        if isinstance(found, web.Response):
            return found
        body = await _json_object(request)
        if body is None:
            return _error(400, "The request body contains invalid JSON.", 50109)
        errors = _form_errors(body)
        if errors:
            return _error(400, "Invalid Form Body", 50035, errors=errors)
        return found, body

    async def _edit_original(self, request: web.Request) -> web.Response:
        checked = await self._webhook_request(request)
        if isinstance(checked, web.Response):
            return checked
        found, body = checked
        if found.original is None:
            return _error(404, "Unknown Message", 10008)
        found.edits.append(body)
        found.original = {
            **found.original,
            "content": body.get("content", found.original["content"]),
            "flags": found.original["flags"] & ~LOADING,
            "allowed_mentions": body.get("allowed_mentions"),
            "edited_timestamp": datetime.now(UTC).isoformat(timespec="microseconds"),
        }
        found.changed.set()
        return web.json_response(found.original)

    async def _follow_up(self, request: web.Request) -> web.Response:
        checked = await self._webhook_request(request)
        if isinstance(checked, web.Response):
            return checked
        found, body = checked
        flags = int(body.get("flags") or 0) & EPHEMERAL
        message = {**self._interaction_message(found, body, flags), "type": 0}
        found.followups.append({**message, **body})
        found.changed.set()
        if request.query.get("wait") in ("1", "true", "True"):
            return web.json_response(message)
        return web.Response(status=204)


async def _wait_until(
    interaction: FakeInteraction, condition: Callable[[], bool], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        interaction.changed.clear()
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"/{interaction.payload['data']['name']}: still waiting")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(interaction.changed.wait(), left)


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    """The request's JSON object body, or None."""
    try:
        body = json.loads(await request.read())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
