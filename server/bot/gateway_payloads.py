"""Gateway events as a Discord-compatible server really sends them, made safe for discord.py.

discord.py parses each dispatch in a parser of its connection state; an exception there ends the
client. Spacebar sends `"guild_id": null` in DMs (discord.py then raises `TypeError`) and
interactions with a `channel_id` but no `channel` object. `normalise` repairs what a small change
makes usable; `PayloadGuard` wraps every parser so that any other payload it cannot read is
logged once per event type and skipped, and the connection goes on.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from typing import Any

log = logging.getLogger(__name__)

DM_CHANNEL = 1
NESTED_MESSAGES = ("referenced_message", "message")
"""Where an event carries another message whose `guild_id` discord.py reads too."""
REMEMBERED_INTERACTIONS = 256
INTERACTION_DEFAULTS = {"version": 1, "attachment_size_limit": 10 * 1024 * 1024}

Parser = Callable[[Any], Any]


def normalise(event: str, data: object) -> None:
    """Repair `data` in place where it differs from Discord only in form.

    A null `guild_id` is dropped (Discord leaves the key out in DMs), at the top and in the
    messages it carries; an INTERACTION_CREATE with only `channel_id` gets the `channel` object
    discord.py reads its channel from (in a DM its type; in a guild only the id, which discord.py
    looks up in the guild's channels), and defaults for the fields discord.py requires.
    """
    if not isinstance(data, dict):
        return
    _drop_null_guild(data)
    for key in NESTED_MESSAGES:
        nested = data.get(key)
        if isinstance(nested, dict):
            _drop_null_guild(nested)
    if event == "INTERACTION_CREATE":
        _complete_interaction(data)


def _complete_interaction(data: dict[str, Any]) -> None:
    # Fields discord.py requires that are newer than some Discord-compatible servers.
    for key, value in INTERACTION_DEFAULTS.items():
        data.setdefault(key, value)
    if data.get("channel") is None:
        channel_id = data.get("channel_id")
        if isinstance(channel_id, str | int):
            channel: dict[str, Any] = {"id": str(channel_id)}
            if "guild_id" not in data:
                channel["type"] = DM_CHANNEL
            data["channel"] = channel


def _drop_null_guild(data: dict[str, Any]) -> None:
    if "guild_id" in data and data["guild_id"] is None:
        del data["guild_id"]


class PayloadGuard:
    """Wraps discord.py's parsers: normalise first, and survive whatever cannot be parsed.

    Also remembers each interaction's raw `channel_id`, so an interaction discord.py could not
    place in a channel is still answered from the ids (`interaction_channel`).
    """

    def __init__(self) -> None:
        self.skipped: dict[str, int] = {}
        """Event type → how many such events could not be parsed."""
        self._interaction_channels: OrderedDict[str, str] = OrderedDict()

    def install(self, parsers: MutableMapping[str, Parser]) -> None:
        """Replace each parser in `parsers` (discord.py's `ConnectionState.parsers`) in place."""
        for event, parse in list(parsers.items()):
            parsers[event] = self._guarded(event, parse)

    def interaction_channel(self, interaction_id: int) -> str | None:
        """The `channel_id` the interaction arrived with, if any (asked once per interaction)."""
        return self._interaction_channels.pop(str(interaction_id), None)

    def _guarded(self, event: str, parse: Parser) -> Parser:
        def guarded(data: Any) -> None:
            try:
                normalise(event, data)
                if event == "INTERACTION_CREATE":
                    self._remember_channel(data)
                parse(data)
            except Exception as exc:  # any payload at all: it must not end the bot
                self._skipped(event, exc)

        return guarded

    def _remember_channel(self, data: object) -> None:
        if not isinstance(data, dict):
            return
        interaction_id, channel_id = data.get("id"), data.get("channel_id")
        if interaction_id is None or channel_id is None:
            return
        self._interaction_channels[str(interaction_id)] = str(channel_id)
        while len(self._interaction_channels) > REMEMBERED_INTERACTIONS:
            self._interaction_channels.popitem(last=False)

    def _skipped(self, event: str, exc: Exception) -> None:
        """Log the first unreadable event of each type as a warning, later ones at debug level;
        the event's content is never logged above debug level."""
        count = self.skipped[event] = self.skipped.get(event, 0) + 1
        if count == 1:
            log.warning(
                "skipped a %s event the gateway sent that could not be read (%s); "
                "the connection goes on (further ones are logged at debug level)",
                event,
                describe(exc),
            )
        log.debug("unreadable %s event (%d so far)", event, count, exc_info=exc)


def describe(exc: Exception) -> str:
    """The exception's type and its first line, cut short: enough to report, no payload."""
    first = str(exc).split("\n", 1)[0][:160]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
