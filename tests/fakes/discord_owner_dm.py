"""The fake Discord REST API with what the owner's bot uses on top of bot mode: DM channels,
messages with buttons and their edits, button presses and modals.

`FakeDiscordOwnerBot` adds `POST /users/@me/channels` (a DM channel object, type 1),
`PATCH /channels/{channel_id}/messages/{message_id}` (only the author may edit; `content`,
`components` and `allowed_mentions` replaced as sent), messages keeping their `components`,
MESSAGE_COMPONENT (type 3) and MODAL_SUBMIT (type 5) interactions shaped as Discord sends them,
and the component responses DEFERRED_UPDATE_MESSAGE (6), UPDATE_MESSAGE (7) and MODAL (9), each
checked against Discord's rules (a modal only answers a command or a component, never a modal
submit; a modal's title and labels at most 45 characters, 1 to 5 rows of one text input). A user
in `refused_dm_users` cannot be written to: 403 with code 50007, as Discord answers when the bot
shares no server with them or they closed their DMs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.discord_api import Route, _error
from tests.fakes.discord_bot_api import (
    CHANNEL_MESSAGE,
    DEFERRED_CHANNEL_MESSAGE,
    DM,
    EPHEMERAL,
    FakeDiscordBot,
    FakeInteraction,
    _user,
)

MESSAGE_COMPONENT, MODAL_SUBMIT = 3, 5
DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE, MODAL = 6, 7, 9
ACTION_ROW, BUTTON, TEXT_INPUT = 1, 2, 4
CANNOT_DM = 50007


@dataclass
class ModalShown:
    """A modal the application opened in answer to an interaction."""

    interaction: FakeInteraction
    data: dict[str, Any]


def _modal_problem(data: object) -> str | None:
    """Why Discord would refuse this MODAL data, or None."""
    if not isinstance(data, dict):
        return "data must be an object"
    if not isinstance(data.get("custom_id"), str) or not 1 <= len(data["custom_id"]) <= 100:
        return "custom_id must be 1 to 100 characters"
    if not isinstance(data.get("title"), str) or not 1 <= len(data["title"]) <= 45:
        return "title must be 1 to 45 characters"
    rows = data.get("components")
    if not isinstance(rows, list) or not 1 <= len(rows) <= 5:
        return "components must hold 1 to 5 rows"
    for row in rows:
        inputs = row.get("components") if isinstance(row, dict) else None
        if row.get("type") != ACTION_ROW or not isinstance(inputs, list) or len(inputs) != 1:
            return "each row must be an action row with one text input"
        field = inputs[0]
        if field.get("type") != TEXT_INPUT or field.get("style") not in (1, 2):
            return "a modal row holds a text input (type 4, style 1 or 2)"
        if not isinstance(field.get("label"), str) or not 1 <= len(field["label"]) <= 45:
            return "a text input's label must be 1 to 45 characters"
        if len(str(field.get("value", ""))) > 4000:
            return "a text input's value must be 4000 or fewer in length"
    return None


class FakeDiscordOwnerBot(FakeDiscordBot):
    """`FakeDiscordBot` plus DMs opened by the bot, message edits, buttons and modals."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dm_channels: dict[str, str] = {}
        """User id → the DM channel the bot opened with them."""
        self.refused_dm_users: set[str] = set()
        self.edits: list[dict[str, Any]] = []
        """Each accepted message edit: the body, with `id` and `channel_id`."""
        self.modals: list[ModalShown] = []

    def _routes(self) -> Sequence[Route]:
        return [
            *super()._routes(),
            ("POST", "/users/@me/channels", self._open_dm),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self._edit_message),
        ]

    def message(self, message_id: str) -> dict[str, Any]:
        """A message as it stands now (edits applied)."""
        return self._by_id[message_id]

    def dm_messages(self, user_id: str) -> list[dict[str, Any]]:
        """The messages in the bot's DM with `user_id`, oldest first, as they stand now."""
        channel = self.dm_channels.get(user_id)
        return [self._by_id[m["id"]] for m in self.messages if m["channel_id"] == channel]

    async def _open_dm(self, request: web.Request) -> web.Response:
        if self._author(request) != self.bot_user:
            return _error(401, "401: Unauthorized", 0)
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error(400, "The request body contains invalid JSON.", 50109)
        recipient = body.get("recipient_id") if isinstance(body, dict) else None
        if not isinstance(recipient, str | int) or not str(recipient).isdigit():
            return _error(400, "Invalid Form Body", 50035)
        channel_id = self.dm_channels.setdefault(str(recipient), self.snowflake())
        return web.json_response(
            {
                "id": channel_id,
                "type": DM,
                "last_message_id": None,
                "flags": 0,
                "recipients": [_user(str(recipient), f"user{str(recipient)[-4:]}")],
            }
        )

    async def _create_message(self, request: web.Request) -> web.Response:
        channel_id = request.match_info["channel_id"]
        refused = {self.dm_channels.get(user) for user in self.refused_dm_users}
        if channel_id in refused and self._author(request) == self.bot_user:
            return _error(403, "Cannot send messages to this user", CANNOT_DM)
        return await super()._create_message(request)

    def _new_message(
        self, channel_id: str, body: dict[str, Any], author: dict[str, Any]
    ) -> dict[str, Any]:
        message = super()._new_message(channel_id, body, author)
        if isinstance(body.get("components"), list):
            message["components"] = body["components"]
        return message

    async def _edit_message(self, request: web.Request) -> web.Response:
        author = self._author(request)
        if author is None:
            return self._unauthorized(request)
        message = self._by_id.get(request.match_info["message_id"])
        if message is None or message["channel_id"] != request.match_info["channel_id"]:
            return _error(404, "Unknown Message", 10008)
        if message["author"]["id"] != author["id"]:
            return _error(403, "Cannot edit a message authored by another user", 50005)
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error(400, "The request body contains invalid JSON.", 50109)
        if not isinstance(body, dict):
            return _error(400, "Invalid Form Body", 50035)
        for key in ("content", "components", "allowed_mentions"):
            if key in body:
                message[key] = body[key]
        message["edited_timestamp"] = datetime.now(UTC).isoformat(timespec="microseconds")
        self.edits.append({**body, "id": message["id"], "channel_id": message["channel_id"]})
        return web.json_response(message)

    # Presses and modals.

    def press(self, user_id: str, message: dict[str, Any], custom_id: str) -> FakeInteraction:
        """`user_id` presses the button `custom_id` on `message` (a MESSAGE_COMPONENT)."""
        data = {"custom_id": custom_id, "component_type": BUTTON}
        return self._component_interaction(MESSAGE_COMPONENT, data, user_id, message)

    def submit_modal(
        self, user_id: str, message: dict[str, Any], custom_id: str, values: dict[str, str]
    ) -> FakeInteraction:
        """`user_id` submits the modal `custom_id` (opened from a button on `message`) with
        `values` by text input custom_id, in action rows as Discord sends them."""
        rows = [
            {
                "type": ACTION_ROW,
                "components": [{"type": TEXT_INPUT, "custom_id": key, "value": value}],
            }
            for key, value in values.items()
        ]
        data = {"custom_id": custom_id, "components": rows}
        return self._component_interaction(MODAL_SUBMIT, data, user_id, message)

    def _component_interaction(
        self, kind: int, data: dict[str, Any], user_id: str, message: dict[str, Any]
    ) -> FakeInteraction:
        interaction = self.new_interaction("_", user_id, message["channel_id"])
        payload = interaction.payload
        payload["type"] = kind
        payload["data"] = data
        payload["message"] = dict(self._by_id.get(message["id"], message))
        return interaction

    async def _callback(self, request: web.Request) -> web.Response:
        interaction = self.interactions.get(request.match_info["token"])
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        kind = body.get("type") if isinstance(body, dict) else None
        if interaction is None or kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            return await super()._callback(request)
        if interaction.acknowledged.is_set():
            return _error(400, "Interaction has already been acknowledged.", 40060)
        assert isinstance(body, dict)
        own_type = interaction.payload["type"]
        if kind in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE) and own_type in (
            MESSAGE_COMPONENT,
            MODAL_SUBMIT,
        ):
            if kind == UPDATE_MESSAGE:
                message = self._by_id[interaction.payload["message"]["id"]]
                for key in ("content", "components"):
                    if key in (body.get("data") or {}):
                        message[key] = body["data"][key]
        elif kind == MODAL and own_type != MODAL_SUBMIT:
            problem = _modal_problem(body.get("data"))
            if problem is not None:
                return _error(400, "Invalid Form Body", 50035, errors={"data": problem})
            self.modals.append(ModalShown(interaction, body["data"]))
        else:
            return _error(400, "Interaction response type not valid for this interaction", 50035)
        interaction.callback = body
        interaction.acknowledged.set()
        interaction.changed.set()
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        answer: dict[str, Any] = {"interaction": {"id": interaction.id, "type": own_type}}
        if kind in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE):
            answer["interaction"]["response_message_id"] = interaction.payload["message"]["id"]
            answer["resource"] = {"type": kind}
            if kind == UPDATE_MESSAGE:
                answer["resource"]["message"] = self._by_id[interaction.payload["message"]["id"]]
        return web.json_response(answer)

    def _interaction_message(
        self, interaction: FakeInteraction, data: dict[str, Any], flags: int
    ) -> dict[str, Any]:
        payload = interaction.payload
        if "name" in payload["data"]:
            return super()._interaction_message(interaction, data, flags)
        # A component's or modal's interaction has no command name: metadata without one.
        named = {**payload, "data": {**payload["data"], "name": ""}}
        shadow = FakeInteraction(interaction.id, interaction.token, named, interaction.created_at)
        message = super()._interaction_message(shadow, data, flags)
        del message["interaction_metadata"]["name"]
        message["interaction_metadata"]["type"] = payload["type"]
        return message


__all__ = ["EPHEMERAL", "FakeDiscordOwnerBot", "ModalShown"]
