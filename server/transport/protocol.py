"""Websocket protocol v1: the frames the plugin and the server exchange (see docs/protocol.md).

Parsing is pure: text in, a typed frame or a `ProtocolError` out. Ids are strings.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

# Re-exported (explicitly, for mypy): the gateway uses them as protocol.X.
from server.transport.wire import CLOSE_BAD_SECRET as CLOSE_BAD_SECRET  # noqa: PLC0414
from server.transport.wire import CLOSE_NO_HELLO as CLOSE_NO_HELLO  # noqa: PLC0414
from server.transport.wire import PROTOCOL_VERSION as PROTOCOL_VERSION  # noqa: PLC0414
from server.transport.wire import encode as encode  # noqa: PLC0414

FRAME_TYPES = (
    "hello",
    "message",
    "sent",
    "opened",
    "activity",
    "status",
    "presence",
    "away",
    "draft_action",
    "rules",
    "rule_set",
    "rule_remove",
)
# How much of a bad value an error text quotes: enough to recognise it, never a flood.
MAX_QUOTED = 40
# A surrogate escape (or character) may leave half a UTF-16 pair in a string, which nothing
# downstream can encode (logs, the LLM request, Discord, the database): such frames are refused.
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")
_SNOWFLAKE = re.compile(r"[0-9]{1,25}")


class ProtocolError(Exception):
    """A frame that is not valid JSON or not a valid v1 frame; the text says what is wrong."""


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True, populate_by_name=True)


class Hello(_Frame):
    """First frame of a connection: authenticates the client.

    `role`: "plugin" (the default, for compatibility) forwards messages and posts replies;
    "cli" (e.g. `discord-auto-reply check`) may only ask for `status`, and is never sent
    `send`/`typing` frames or requests.
    """

    type: Literal["hello"]
    secret: str = ""
    client: str = ""
    version: str = ""
    self_id: str | None = None
    role: Literal["plugin", "cli"] = "plugin"


class Author(_Frame):
    """The author of a forwarded message; `display_name` is the name Discord shows (the server
    nickname in guilds, else the global name; "" from plugins that do not send it)."""

    id: str
    username: str = ""
    bot: bool = False
    display_name: str = ""

    @property
    def name(self) -> str:
        """The name to call them by: the display name, else the username, else the id."""
        return self.display_name or self.username or self.id


class Attachment(_Frame):
    """A file attached to a message, as Discord describes it (the URL is signed and expires)."""

    filename: str = "file"
    content_type: str | None = None
    size: int = Field(default=0, ge=0)
    url: str = ""
    width: int | None = None
    height: int | None = None
    voice: bool = False
    """The message is a voice message (flag IS_VOICE_MESSAGE) and this is its recording."""
    duration: float | None = None
    """A voice message's length in seconds (`duration_secs`)."""


class Embed(_Frame):
    """A link embed, shortened by the plugin."""

    title: str = ""
    description: str = ""
    url: str = ""


class Quoted(_Frame):
    """Another message inside this one: the one it replies to, or one it forwards (no author)."""

    author: str = ""
    content: str = ""
    attachments: list[str] = Field(default_factory=list)
    """The file names of its attachments."""


class IncomingMessage(_Frame):
    """A Discord message forwarded by the plugin. Everything after `nonce` is optional, so that
    older plugins, which send text only, still work."""

    type: Literal["message"]
    id: str = Field(min_length=1)
    channel: str = Field(min_length=1)
    guild: str | None = None
    author: Author
    content: str
    timestamp: str = ""
    is_self: bool = Field(default=False, alias="self")
    nonce: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    stickers: list[str] = Field(default_factory=list)
    embeds: list[Embed] = Field(default_factory=list)
    reference: Quoted | None = None
    """The message this one replies to, when Discord sent it."""
    forwarded: list[Quoted] = Field(default_factory=list)
    """Messages forwarded in this one (`message_snapshots`)."""

    def has_substance(self) -> bool:
        """Whether there is anything to answer: text, an attachment, a sticker or a forward."""
        return bool(self.content.strip() or self.attachments or self.stickers or self.forwarded)


class Sent(_Frame):
    """The plugin's answer to a `send` frame."""

    type: Literal["sent"]
    nonce: str
    ok: bool
    error: str | None = None


class Opened(_Frame):
    """The plugin's answer to an `open_channel` frame: what Discord shows, and whether it has focus.

    `channel` is the channel Discord shows now (None if none); `ok` is true when it is the one
    asked for; `focused` is true when the Discord window has keyboard focus.
    """

    type: Literal["opened"]
    nonce: str
    channel: str | None = None
    ok: bool
    focused: bool
    error: str | None = None


class Activity(_Frame):
    """The person used the keyboard or mouse in the Discord window at `at` (ms since the epoch)."""

    type: Literal["activity"]
    at: float = Field(ge=0)


class StatusRequest(_Frame):
    """A client asks how the server is doing (answered with a `status` frame)."""

    type: Literal["status"]


class PresenceReport(_Frame):
    """The owner's own Discord status and custom status text, reported by the plugin at each
    welcome and on change (`custom_status` None: a plugin that does not report it)."""

    type: Literal["presence"]
    status: Literal["online", "idle", "dnd", "invisible", "offline"]
    custom_status: str | None = None
    name: str | None = None
    """The owner's display name (None: a plugin that does not report it)."""


class AwayRequest(_Frame):
    """Set the away switch (`mode`) and/or the away note (`note`, "" clears it), or just ask for
    the away status (neither)."""

    type: Literal["away"]
    mode: Literal["on", "off", "auto"] | None = None
    note: str | None = None


class DraftAction(_Frame):
    """The owner sends (optionally with edited text) or discards a draft."""

    type: Literal["draft_action"]
    id: str = Field(min_length=1)
    action: Literal["send", "discard"]
    content: str | None = None


def _rule_user(value: str) -> str:
    if value != "*" and not _SNOWFLAKE.fullmatch(value):
        raise ValueError(f'must be a Discord user id (digits) or "*", got {_quoted(value)}')
    return value


def _rule_channel(value: str) -> str:
    if value not in ("*", "@dms") and not _SNOWFLAKE.fullmatch(value):
        raise ValueError(f'must be a Discord channel id (digits) or "@dms", got {_quoted(value)}')
    return value


RuleUser = Annotated[str, AfterValidator(_rule_user)]
"""A rule's user: a Discord id, or "*" for anyone."""
RuleChannel = Annotated[str, AfterValidator(_rule_channel)]
"""A rule's channel: a Discord id, "*" (anywhere) or "@dms" (any DM with the owner)."""


class RulesRequest(_Frame):
    """Ask for every effective rule (answered with a `rules` frame)."""

    type: Literal["rules"]


class RuleSetRequest(_Frame):
    """Create or replace the Discord rule for (user, channel): the whole desired state."""

    type: Literal["rule_set"]
    user: RuleUser
    channel: RuleChannel
    persona: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    """A PERSONAS name; None: CONTEXT_MESSAGE."""
    mode: Literal["send", "draft"] | None = None
    reply_when: Literal["away", "always"] | None = None
    label: Annotated[str, Field(max_length=200)] | None = None
    """What the plugin calls the chat, e.g. "Sam (DM)"."""


class RuleRemoveRequest(_Frame):
    """Remove the Discord rule for (user, channel)."""

    type: Literal["rule_remove"]
    user: RuleUser
    channel: RuleChannel


OwnerFrame = (
    PresenceReport | AwayRequest | DraftAction | RulesRequest | RuleSetRequest | RuleRemoveRequest
)
"""Frames through which the owner steers the relay; the App answers them."""
ClientFrameType = (
    Hello
    | IncomingMessage
    | Sent
    | Opened
    | Activity
    | StatusRequest
    | PresenceReport
    | AwayRequest
    | DraftAction
    | RulesRequest
    | RuleSetRequest
    | RuleRemoveRequest
)
ClientFrame = Annotated[ClientFrameType, Field(discriminator="type")]
_client_frame: TypeAdapter[ClientFrameType] = TypeAdapter(ClientFrame)


def _quoted(text: str) -> str:
    """`text` quoted for an error message, cut to MAX_QUOTED characters."""
    return repr(text if len(text) <= MAX_QUOTED else text[:MAX_QUOTED] + "…")


def _is_valid_unicode(data: object) -> bool:
    """Whether every string in decoded JSON can be encoded (no unpaired surrogate)."""
    try:
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def _may_hold_surrogate(text: str) -> bool:
    """A quick first look: only text with a \\u escape or a non-ASCII character can hold one."""
    return "\\u" in text or not text.isascii()


def parse_client_frame(text: str | bytes) -> ClientFrameType:
    """Parse one frame from the plugin, or raise `ProtocolError` saying what is wrong.

    Whatever the input, only `ProtocolError` is raised, and its text stays short.
    """
    if isinstance(text, bytes):
        raise ProtocolError("binary frames are not part of protocol v1; send JSON text")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise ProtocolError("not acceptable JSON: nested too deeply") from None
    except ValueError:  # an integer of more digits than Python converts (4300)
        raise ProtocolError("not acceptable JSON: a number has too many digits") from None
    if _may_hold_surrogate(text) and _SURROGATE.search(text) and not _is_valid_unicode(data):
        raise ProtocolError("a string holds an unpaired surrogate (\\ud800-\\udfff), not text")
    if not isinstance(data, dict):
        raise ProtocolError("a frame must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(f'a frame needs a string "type" ({", ".join(FRAME_TYPES[:6])}, …)')
    if kind not in FRAME_TYPES:
        raise ProtocolError(f"unknown frame type {_quoted(kind)}")
    try:
        return _client_frame.validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'][1:]) or kind}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        raise ProtocolError(f"invalid {kind} frame: {problems}") from None


def welcome(server_version: str, watch: list[dict[str, str]], messenger: str) -> dict[str, Any]:
    """The answer to a good hello."""
    return {
        "type": "welcome",
        "server_version": server_version,
        "protocol": PROTOCOL_VERSION,
        "watch": watch,
        "messenger": messenger,
    }


def watch(patterns: list[dict[str, str]]) -> dict[str, Any]:
    """Sent whenever the rules change."""
    return {"type": "watch", "watch": patterns}


def ack(message_id: str) -> dict[str, Any]:
    """The server accepted (or deliberately ignored) a message; the client may forget it."""
    return {"type": "ack", "id": message_id}


def error(text: str) -> dict[str, Any]:
    """A frame was malformed or unknown; the connection stays open."""
    return {"type": "error", "error": text}


def send(nonce: str, channel: str, content: str, reply_to: str | None) -> dict[str, Any]:
    """Ask the plugin to post a message through Discord's own client."""
    return {
        "type": "send",
        "nonce": nonce,
        "channel": channel,
        "content": content,
        "reply_to": reply_to,
    }


def typing(channel: str) -> dict[str, Any]:
    """Ask the plugin to show the typing indicator."""
    return {"type": "typing", "channel": channel}


def open_channel(nonce: str, channel: str) -> dict[str, Any]:
    """Ask the plugin to show `channel` in Discord; answered by an `opened` frame with `nonce`."""
    return {"type": "open_channel", "nonce": nonce, "channel": channel}


def status(
    server_version: str,
    plugins: int,
    watching: int,
    messenger: str,
    transports: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The answer to a `status` request: connected plugins (and how many over each transport,
    "websocket" and "http"), watched pairs, the messenger."""
    return {
        "type": "status",
        "server_version": server_version,
        "plugins": plugins,
        "transports": transports or {},
        "watching": watching,
        "messenger": messenger,
    }


def away_status(
    *,
    switch: str,
    presence: str | None,
    away: bool,
    reply_when: str,
    replying: bool,
    always_rules: int,
    schedule: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The away switch, the last reported Discord status and whether replies go out now;
    `schedule` (AWAY_SCHEDULE set): the window in force and its end, or the next start."""
    return {
        "type": "away_status",
        "switch": switch,
        "presence": presence,
        "away": away,
        "reply_when": reply_when,
        "replying": replying,
        "always_rules": always_rules,
        "schedule": schedule,
    }


def draft(
    *,
    draft_id: int,
    user: str,
    author: str,
    channel: str,
    guild: str | None,
    message_id: str,
    question: str,
    content: str,
    expires_at: float,
) -> dict[str, Any]:
    """A reply kept for the owner to send, edit or discard (`draft_action`)."""
    return {
        "type": "draft",
        "id": str(draft_id),
        "user": user,
        "author": author,
        "channel": channel,
        "guild": guild,
        "message_id": message_id,
        "question": question,
        "content": content,
        "expires_at": expires_at,
    }


def draft_done(draft_id: str, status: str, error: str | None = None) -> dict[str, Any]:
    """What became of a draft: sent, discarded, expired, or failed (still pending, `error`)."""
    return {"type": "draft_done", "id": draft_id, "status": status, "error": error}


def rule_result(ok: bool, text: str, rule: dict[str, Any] | None) -> dict[str, Any]:
    """The answer to `rule_set` / `rule_remove`: `text` is a sentence for a toast."""
    return {"type": "rule_result", "ok": ok, "text": text, "rule": rule}


def rules(
    rule_objects: list[dict[str, Any]], personas: list[str], defaults: dict[str, str]
) -> dict[str, Any]:
    """Every effective rule (file rules first), the PERSONAS names and `defaults` (MODE and
    REPLY_WHEN, what a rule's null mode or reply_when means); sent after the welcome, on every
    change, and as the answer to `rules`."""
    return {"type": "rules", "rules": rule_objects, "personas": personas, "defaults": defaults}


def summary(
    since: float, chats: list[dict[str, Any]], drafts: list[dict[str, Any]]
) -> dict[str, Any]:
    """What the relay said while the owner was away, per chat, and the drafts still waiting."""
    return {"type": "summary", "since": since, "chats": chats, "drafts": drafts}
