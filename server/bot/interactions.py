"""`POST /interactions`: Discord's "Interactions Endpoint URL", for a bot without a gateway.

Every request is checked against the application's Ed25519 public key (Discord signs
timestamp + body); a PING is answered with a PONG; a slash command with a deferral
(`{"type": 5}`) at once, its answer following with `PATCH .../messages/@original`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from server.bot.commands import (
    CommandReply,
    Invocation,
    SlashCommands,
    ephemeral,
    read_interaction,
)
from server.bot.webhooks import EPHEMERAL, NO_PINGS, DiscordRestError, InteractionWebhooks
from server.delivery.splitter import split_message

log = logging.getLogger(__name__)

PING, APPLICATION_COMMAND = 1, 2
PONG, CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE = 1, 4, 5
DISCORD_MESSAGE_LIMIT = 2000
MAX_BODY = 1 << 20


def signature_is_valid(public_key: VerifyKey, signature: str, timestamp: str, body: bytes) -> bool:
    """True if `signature` (hex) is the key's Ed25519 signature of `timestamp` + `body`."""
    try:
        public_key.verify(timestamp.encode() + body, bytes.fromhex(signature))
    except (BadSignatureError, ValueError):
        return False
    return True


def _message(reply: CommandReply) -> dict[str, Any]:
    data: dict[str, Any] = {"content": reply.content, "allowed_mentions": NO_PINGS}
    if reply.ephemeral:
        data["flags"] = EPHEMERAL
    return data


class InteractionsEndpoint:
    """The aiohttp application serving `POST /interactions`."""

    def __init__(
        self, *, public_key: str, commands: SlashCommands, webhooks: InteractionWebhooks
    ) -> None:
        self._key = VerifyKey(bytes.fromhex(public_key))
        self._commands = commands
        self._webhooks = webhooks
        self._answers: set[asyncio.Task[None]] = set()

    def application(self) -> web.Application:
        """The web application; run it with aiohttp's runner."""
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/interactions", self._interaction)
        app.on_cleanup.append(self._finish_answers)
        return app

    async def _interaction(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        signature = request.headers.get("X-Signature-Ed25519", "")
        timestamp = request.headers.get("X-Signature-Timestamp", "")
        if (
            not signature
            or not timestamp
            or not signature_is_valid(self._key, signature, timestamp, body)
        ):
            log.debug("refused an interaction from %s: bad or missing signature", request.remote)
            return web.Response(status=401, text="invalid request signature")
        try:
            payload = json.loads(body)
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        kind = payload.get("type") if isinstance(payload, dict) else None
        if kind == PING:
            return web.json_response({"type": PONG})
        invocation = read_interaction(payload) if kind == APPLICATION_COMMAND else None
        if invocation is None or not isinstance(payload.get("token"), str):
            return web.json_response({"error": "unsupported interaction"}, status=400)
        refusal = self._commands.check(invocation)
        if refusal is not None:
            return web.json_response({"type": CHANNEL_MESSAGE, "data": _message(refusal)})
        deferral = {"type": DEFERRED_CHANNEL_MESSAGE, "data": {}}
        if ephemeral(invocation):
            deferral["data"] = {"flags": EPHEMERAL}
        # Send the deferral before the answer starts, so Discord has it before the PATCH.
        response = web.json_response(deferral)
        await response.prepare(request)
        await response.write_eof()
        task = asyncio.create_task(self._answer(payload["token"], invocation))
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)
        return response

    async def _answer(self, token: str, invocation: Invocation) -> None:
        """Run the command and edit its answer into the deferred message."""
        try:
            reply = await self._commands.run(invocation)
            first, *rest = split_message(reply.content, DISCORD_MESSAGE_LIMIT)
            await self._webhooks.edit_original(token, first)
            for part in rest:
                await self._webhooks.follow_up(token, part, ephemeral=reply.ephemeral)
        except DiscordRestError as exc:
            log.error("/%s in channel %s: %s", invocation.name, invocation.channel_id, exc)
        except Exception:
            log.exception("/%s in channel %s failed", invocation.name, invocation.channel_id)

    async def _finish_answers(self, _app: web.Application) -> None:
        """On shutdown, let answers in progress finish (each is bounded by its timeouts)."""
        await asyncio.gather(*self._answers, return_exceptions=True)
