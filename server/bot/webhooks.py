"""REST calls of the HTTP interactions endpoint: answers after the deferral, command registration.

The `interactions` process never opens a gateway, so it has no discord.py client; it makes its
few Discord calls with one `httpx2` client (the project's HTTP client, already loaded for the
LLM), and honours 429s with the REST messenger's parsing of Discord's rate-limit answers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx2

from server import __version__
from server.messengers.rest import backoff_delay
from server.messengers.rest_rate_limit import (
    parse_rate_limit_headers,
    parse_rate_limited_body,
    rate_limit_wait,
)

log = logging.getLogger(__name__)

RETRIED_STATUSES = frozenset({500, 502, 503, 504, 524})
USER_AGENT = f"DiscordBot (discord-auto-reply, {__version__})"
NO_PINGS = {"parse": [], "replied_user": False}
EPHEMERAL = 1 << 6


class DiscordRestError(Exception):
    """Discord refused a request or could not be reached; the text names the route, no token.

    `status` is Discord's HTTP status when it refused (None when it could not be reached).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class InteractionWebhooks:
    """Edits `@original`, posts follow-ups, and overwrites the application's commands."""

    def __init__(
        self,
        *,
        api_base: str,
        application_id: str,
        bot_token: str = "",
        timeout: float = 15.0,
        max_attempts: int = 5,
        retry_backoff: float = 1.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._api_base = api_base.rstrip("/")
        self._application_id = application_id
        self._bot_token = bot_token
        self._max_attempts = max_attempts
        self._retry_backoff = retry_backoff
        self._client = httpx2.AsyncClient(headers={"User-Agent": USER_AGENT}, timeout=timeout)

    def __repr__(self) -> str:
        return f"InteractionWebhooks(api_base={self._api_base!r})"

    async def edit_original(self, token: str, content: str) -> None:
        """Put `content` in the interaction's first answer (its deferred "thinking" message)."""
        path = f"/webhooks/{self._application_id}/{token}/messages/@original"
        body = {"content": content, "allowed_mentions": NO_PINGS}
        await self._request("PATCH", path, body, route="PATCH /webhooks/…/messages/@original")

    async def follow_up(self, token: str, content: str, *, ephemeral: bool) -> None:
        """Post one more message in answer to the interaction."""
        path = f"/webhooks/{self._application_id}/{token}"
        body: dict[str, Any] = {"content": content, "allowed_mentions": NO_PINGS}
        if ephemeral:
            body["flags"] = EPHEMERAL
        await self._request("POST", path, body, route="POST /webhooks/… (follow-up)")

    async def overwrite_commands(self, commands: list[dict[str, Any]]) -> None:
        """Replace the application's global commands with `commands` (needs the bot token)."""
        path = f"/applications/{self._application_id}/commands"
        await self._request(
            "PUT", path, commands, route=f"PUT {path}", authorization=f"Bot {self._bot_token}"
        )

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()

    async def _request(
        self, method: str, path: str, body: object, *, route: str, authorization: str = ""
    ) -> None:
        """Send within Discord's rate limits, retrying 429s, 5xx and lost connections."""
        headers = {"Authorization": authorization} if authorization else {}
        for attempt in range(1, self._max_attempts + 1):
            wait = backoff_delay(self._retry_backoff, attempt - 1)
            try:
                response = await self._client.request(
                    method, self._api_base + path, json=body, headers=headers
                )
            except httpx2.TransportError as exc:
                problem = f"{type(exc).__name__} reaching Discord"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return
                answer = _json(response)
                if status == 401:
                    raise DiscordRestError(f"{route}: Discord refused the bot token (401)", 401)
                if status == 429:
                    limit = rate_limit_wait(
                        parse_rate_limited_body(answer), parse_rate_limit_headers(response.headers)
                    )
                    if limit is None:
                        raise DiscordRestError(
                            f"{route}: 429 without a retry time; not retrying", 429
                        )
                    problem, wait = "rate limited by Discord", limit.seconds
                elif status in RETRIED_STATUSES:
                    problem = f"HTTP {status} from Discord"
                else:
                    raise DiscordRestError(_refusal(route, status, answer), status)
            if attempt < self._max_attempts:
                log.warning("%s: %s; retrying in %.2f s", route, problem, wait)
                await asyncio.sleep(wait)
        raise DiscordRestError(f"{route}: gave up after {self._max_attempts} attempts: {problem}")


def _refusal(route: str, status: int, body: object) -> str:
    """Name the route, the status and Discord's error code and message."""
    text = f"{route}: Discord answered HTTP {status}"
    if isinstance(body, dict):
        if body.get("code") is not None:
            text += f", code {body['code']}"
        if isinstance(body.get("message"), str):
            text += f": {body['message']}"
    return text


def _json(response: httpx2.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None
