"""A local fake of Discord's REST API (v9 and v10): create message, typing, the current user,
rate limits and error shapes; and its CDN: attachments at signed URLs (`ex`, `is`, `hm`) that
expire, as `cdn.discordapp.com` serves them.

The bot routes (login, gateway URL, commands, interactions) are in `discord_bot_api.py`.
Run standalone for other test suites: `python -m tests.fakes.discord_api [--port N]` prints
`http://127.0.0.1:PORT/api/v9` once listening, then serves until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import math
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Literal

from aiohttp import web

DISCORD_EPOCH_MS = 1_420_070_400_000
# Discord serves both API versions: the REST messenger speaks v9, discord.py v10.
API_PREFIXES = ("/api/v9", "/api/v10")
MAX_CONTENT_LENGTH = 2000
MAX_NONCE_LENGTH = 25
MESSAGES_ROUTE = "POST /channels/{channel_id}/messages"
TYPING_ROUTE = "POST /channels/{channel_id}/typing"
ME_ROUTE = "GET /users/@me"
# Fields of which at least one makes a message non-empty.
MESSAGE_PAYLOAD_FIELDS = ("embeds", "sticker_ids", "components", "attachments", "files", "poll")
FAILURE_BODIES: dict[int, dict[str, Any]] = {
    401: {"message": "401: Unauthorized", "code": 0},
    403: {"message": "Missing Permissions", "code": 50013},
    404: {"message": "Unknown Channel", "code": 10003},
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Which server the fake behaves like where Discord-compatible servers differ (see FakeDiscord).
Flavour = Literal["discord", "spacebar"]
Route = tuple[str, str, Handler]
"""(method, path under the API prefix, handler)."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake answered."""

    method: str
    path: str
    status: int
    headers: dict[str, str]
    json: Any


@dataclass
class _Failure:
    status: int
    count: int
    retry_after: float
    is_global: bool
    channel_id: str | None


@dataclass
class _Window:
    reset_at: float
    used: int = 0


def _ceil_ms(seconds: float) -> float:
    return math.ceil(max(0.0, seconds) * 1000) / 1000


def _bucket_hash(route: str) -> str:
    return hashlib.md5(route.encode()).hexdigest()


def _error(status: int, message: str, code: int, **extra: Any) -> web.Response:
    return web.json_response({"message": message, "code": code, **extra}, status=status)


def _field_error(code: str, message: str) -> dict[str, Any]:
    return {"_errors": [{"code": code, "message": message}]}


def utf16_length(text: str) -> int:
    """`text.length` in JavaScript: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _form_errors(body: dict[str, Any]) -> dict[str, Any]:
    """Discord's nested `errors` for the create-message fields the fake checks.

    Discord's API is Python and counts code points (discord-api-docs#1315), so a content of
    2,000 emoji (4,000 UTF-16 units) is accepted.
    """
    errors: dict[str, Any] = {}
    content = body.get("content")
    if content is not None and not isinstance(content, str):
        errors["content"] = _field_error("BASE_TYPE_STRING", "Must be a string.")
    elif isinstance(content, str) and len(content) > MAX_CONTENT_LENGTH:
        errors["content"] = _field_error(
            "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT_LENGTH} or fewer in length."
        )
    nonce = body.get("nonce")
    if isinstance(nonce, str) and len(nonce) > MAX_NONCE_LENGTH:
        errors["nonce"] = _field_error(
            "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_NONCE_LENGTH} or fewer in length."
        )
    return errors


def _is_empty(body: dict[str, Any]) -> bool:
    content = body.get("content")
    has_content = isinstance(content, str) and content.strip() != ""
    return not has_content and not any(body.get(field) for field in MESSAGE_PAYLOAD_FIELDS)


async def _plain_json_type(_request: web.Request, response: web.StreamResponse) -> None:
    """Discord says `application/json` with no charset (discord.py compares the header exactly)."""
    if response.content_type == "application/json":
        response.headers["Content-Type"] = "application/json"


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown Error"


class FakeDiscord:
    """Discord's REST API on 127.0.0.1 (/api/v9 and /api/v10), accepting the user token `TOKEN`.

    `messages` holds each created message: the message object Discord returns, overlaid with the
    fields of the request body as received (`nonce`, `enforce_nonce`, `allowed_mentions`,
    `message_reference`…). Rate limits are per route and channel: `limit` requests per `window`
    seconds. `fail_next` injects failures and `delay` slows every answer.

    `flavour="spacebar"` answers where Spacebar (a JavaScript Discord-compatible server) differs:
    it measures content in UTF-16 units (`content.length`) and refuses an over-long one with
    400 "Content length over max character limit"; it refuses a wrong token with 400 and code
    40001 "Unauthorized" instead of 401 (a missing header is still 401). Each function in
    `message_listeners` is called with every created message (the fake gateway dispatches them).
    """

    TOKEN = "fake-user-token.abc"
    USER_ID = "1180000000000000001"
    USERNAME = "fake-user"
    GLOBAL_NAME = "Fake User"

    def __init__(
        self,
        *,
        limit: int = 5,
        window: float = 5.0,
        nonce_ttl: float = 300.0,
        port: int = 0,
        flavour: Flavour = "discord",
    ) -> None:
        self.flavour = flavour
        self.limit = limit
        self.window = window
        self.nonce_ttl = nonce_ttl
        self.delay = 0.0
        self.messages: list[dict[str, Any]] = []
        self.typing: list[str] = []
        self.requests: list[RecordedRequest] = []
        self.message_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._requested_port = port
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        self._failures: list[_Failure] = []
        self._windows: dict[tuple[str, str], _Window] = {}
        self._by_nonce: dict[str, tuple[float, dict[str, Any]]] = {}
        self._by_id: dict[str, dict[str, Any]] = {}
        self._increment = 0
        self._created = asyncio.Condition()
        self.cdn_delay = 0.0
        self.cdn_requests: list[str] = []
        self._files: dict[str, tuple[bytes, str]] = {}
        self._cdn_key = hashlib.sha256(str(time.time_ns()).encode()).digest()

    @property
    def base_url(self) -> str:
        """The API base the client uses, e.g. `http://127.0.0.1:PORT/api/v9`."""
        if self._port is None:
            raise RuntimeError("FakeDiscord is not started")
        return f"http://127.0.0.1:{self._port}/api/v9"

    async def start(self) -> None:
        """Listen on 127.0.0.1 (a free port unless one was given)."""

        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._record(request, handler)

        app = web.Application(middlewares=[record])
        for prefix in API_PREFIXES:
            for method, path, handler in self._routes():
                app.router.add_route(method, prefix + path, handler)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._cdn_file)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        app.on_response_prepare.append(_plain_json_type)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._requested_port)
        await site.start()
        self._port = self._runner.addresses[0][1]

    def add_attachment(
        self,
        channel_id: str,
        filename: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        *,
        expires_in: float = 86400.0,
    ) -> str:
        """Serve `data` on the fake CDN; its signed URL, valid for `expires_in` seconds."""
        if self._port is None:
            raise RuntimeError("FakeDiscord is not started")
        path = f"/attachments/{channel_id}/{self.snowflake()}/{filename}"
        self._files[path] = (data, content_type)
        issued = int(time.time())
        query = f"ex={int(issued + expires_in):x}&is={issued:x}"
        return f"http://127.0.0.1:{self._port}{path}?{query}&hm={self._signature(path, query)}&"

    def _signature(self, path: str, query: str) -> str:
        return hmac.new(self._cdn_key, f"{path}?{query}".encode(), hashlib.sha256).hexdigest()

    async def _cdn_file(self, request: web.Request) -> web.StreamResponse:
        """A CDN file, if its signature holds and it has not expired (Discord answers 404)."""
        self.cdn_requests.append(request.path)
        await asyncio.sleep(self.cdn_delay)
        ex, issued, signature = (request.query.get(key, "") for key in ("ex", "is", "hm"))
        stored = self._files.get(request.path)
        valid = hmac.compare_digest(
            signature, self._signature(request.path, f"ex={ex}&is={issued}")
        )
        try:
            live = int(ex, 16) > time.time()
        except ValueError:
            live = False
        if stored is None or not valid or not live:
            return web.Response(status=404, text="This content is no longer available.")
        data, content_type = stored
        return web.Response(body=data, content_type=content_type)

    def _routes(self) -> Sequence[Route]:
        """The routes served under each API prefix."""
        return [
            ("POST", "/channels/{channel_id}/messages", self._create_message),
            ("POST", "/channels/{channel_id}/typing", self._trigger_typing),
            ("GET", "/users/@me", self._current_user),
        ]

    def _author(self, request: web.Request) -> dict[str, Any] | None:
        """The user the request's `Authorization` logs in as; None for a bad or missing token."""
        if request.headers.get("Authorization") != self.TOKEN:
            return None
        return {
            "id": self.USER_ID,
            "username": self.USERNAME,
            "global_name": self.GLOBAL_NAME,
            "avatar": None,
            "discriminator": "0",
            "public_flags": 0,
            "flags": 0,
        }

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        retry_after: float = 0.05,
        is_global: bool = False,
        channel_id: str | None = None,
    ) -> None:
        """Answer the next `count` message POSTs (to `channel_id` only, if given) with `status`."""
        self._failures.append(_Failure(status, count, retry_after, is_global, channel_id))

    async def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least `count` messages were created; return all of them."""
        async with self._created:
            try:
                await asyncio.wait_for(
                    self._created.wait_for(lambda: len(self.messages) >= count), timeout
                )
            except TimeoutError:
                raise TimeoutError(
                    f"expected {count} messages within {timeout} s, got {len(self.messages)}"
                ) from None
        return list(self.messages)

    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        response = await handler(request)
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        self.requests.append(
            RecordedRequest(
                request.method, request.path, response.status, dict(request.headers), body
            )
        )
        return response

    async def _not_found(self, request: web.Request) -> web.Response:
        return _error(404, "404: Not Found", 0)

    async def _create_message(self, request: web.Request) -> web.Response:
        channel_id = request.match_info["channel_id"]
        failure = self._take_failure(channel_id)
        if failure is not None:
            return self._failure_response(failure)
        author = self._author(request)
        if author is None:
            return self._unauthorized(request)
        headers, allowed = self._spend(MESSAGES_ROUTE, channel_id)
        if not allowed:
            return self._too_many(headers, float(headers["X-RateLimit-Reset-After"]), False)
        response = await self._message_response(request, channel_id, author)
        response.headers.update(headers)
        return response

    async def _trigger_typing(self, request: web.Request) -> web.Response:
        channel_id = request.match_info["channel_id"]
        if self._author(request) is None:
            return self._unauthorized(request)
        headers, allowed = self._spend(TYPING_ROUTE, channel_id)
        if not allowed:
            return self._too_many(headers, float(headers["X-RateLimit-Reset-After"]), False)
        self.typing.append(channel_id)
        return web.Response(status=204, headers=headers)

    def _unauthorized(self, request: web.Request) -> web.Response:
        """The answer to a missing or wrong token, in the fake's flavour."""
        token = request.headers.get("Authorization")
        if self.flavour == "spacebar":
            if token is None:
                return _error(401, "Missing Authorization Header", 401, errors=None, data=None)
            message = "Unauthorized. Provide a valid token and try again"
            return _error(400, message, 40001, errors=None, data=None)
        return _error(401, "401: Unauthorized", 0)

    async def _current_user(self, request: web.Request) -> web.Response:
        """The account's own user object, with the private fields a user token can see."""
        author = self._author(request)
        if author is None:
            return self._unauthorized(request)
        headers, allowed = self._spend(ME_ROUTE, "@me")
        if not allowed:
            return self._too_many(headers, float(headers["X-RateLimit-Reset-After"]), False)
        user = {
            **author,
            "banner": None,
            "accent_color": None,
            "banner_color": None,
            "avatar_decoration_data": None,
            "mfa_enabled": False,
            "locale": "en-US",
            "premium_type": 0,
            "email": "fake-user@example.com",
            "verified": True,
            "phone": None,
            "nsfw_allowed": True,
            "bio": "",
        }
        return web.json_response(user, headers=headers)

    async def _message_response(
        self, request: web.Request, channel_id: str, author: dict[str, Any]
    ) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(400, "The request body contains invalid JSON.", 50109)
        content = body.get("content")
        spacebar = self.flavour == "spacebar"
        if spacebar and isinstance(content, str) and utf16_length(content) > MAX_CONTENT_LENGTH:
            message = "Content length over max character limit"
            return _error(400, message, 400, errors=None, data=None)
        errors = _form_errors(body)
        if errors:
            return _error(400, "Invalid Form Body", 50035, errors=errors)
        if _is_empty(body):
            return _error(400, "Cannot send an empty message", 50006)
        earlier = self._earlier_with_nonce(body)
        if earlier is not None:
            return web.json_response(earlier)
        message = self._new_message(channel_id, body, author)
        async with self._created:
            self.messages.append({**message, **body})
            self._created.notify_all()
        for listener in self.message_listeners:
            listener(message)
        return web.json_response(message)

    def _earlier_with_nonce(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The message this author sent with the same nonce recently, if `enforce_nonce`."""
        nonce = body.get("nonce")
        if body.get("enforce_nonce") is not True or nonce is None:
            return None
        seen = self._by_nonce.get(str(nonce))
        if seen is None or time.monotonic() - seen[0] > self.nonce_ttl:
            return None
        return seen[1]

    def _new_message(
        self, channel_id: str, body: dict[str, Any], author: dict[str, Any]
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": 0,
            "channel_id": channel_id,
            "content": body.get("content", ""),
            "attachments": [],
            "embeds": [],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": bool(body.get("tts", False)),
            "timestamp": datetime.now(UTC).isoformat(timespec="microseconds"),
            "edited_timestamp": None,
            "flags": 0,
            "components": [],
            "id": self.snowflake(),
            "author": author,
        }
        nonce = body.get("nonce")
        if nonce is not None:
            message["nonce"] = nonce
        reference = body.get("message_reference")
        if isinstance(reference, dict) and reference.get("message_id") is not None:
            message["type"] = 19
            message["message_reference"] = {
                "type": 0,
                "channel_id": str(reference.get("channel_id", channel_id)),
                "message_id": str(reference["message_id"]),
            }
            referenced = self._by_id.get(str(reference["message_id"]))
            if referenced is not None:
                message["referenced_message"] = referenced
        self._by_id[message["id"]] = message
        if body.get("enforce_nonce") is True and nonce is not None:
            self._by_nonce[str(nonce)] = (time.monotonic(), message)
        return message

    def snowflake(self) -> str:
        """A new unique Discord id with the current time in it."""
        self._increment += 1
        milliseconds = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return str((milliseconds << 22) | (1 << 17) | (1 << 12) | (self._increment % 4096))

    def _spend(self, route: str, channel_id: str) -> tuple[dict[str, str], bool]:
        """Count one request in its bucket; the headers to send and whether it is allowed."""
        now = time.monotonic()
        window = self._windows.get((route, channel_id))
        if window is None or now >= window.reset_at:
            window = self._windows[(route, channel_id)] = _Window(reset_at=now + self.window)
        allowed = window.used < self.limit
        if allowed:
            window.used += 1
        reset_after = _ceil_ms(window.reset_at - now)
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.limit - window.used),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": _bucket_hash(route),
        }
        return headers, allowed

    def _too_many(
        self, headers: dict[str, str], retry_after: float, is_global: bool
    ) -> web.Response:
        body = {
            "message": "You are being rate limited.",
            "retry_after": _ceil_ms(retry_after),
            "global": is_global,
        }
        headers = {
            **headers,
            "Retry-After": str(math.ceil(retry_after)),
            "X-RateLimit-Scope": "global" if is_global else "user",
            "Via": "1.1 google",
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        return web.json_response(body, status=429, headers=headers)

    def _take_failure(self, channel_id: str) -> _Failure | None:
        for failure in self._failures:
            if failure.channel_id in (None, channel_id):
                failure.count -= 1
                if failure.count <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _failure_response(self, failure: _Failure) -> web.Response:
        if failure.status == 429:
            headers: dict[str, str] = {}
            if not failure.is_global:
                reset_after = _ceil_ms(failure.retry_after)
                headers = {
                    "X-RateLimit-Limit": str(self.limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
                    "X-RateLimit-Reset-After": f"{reset_after:.3f}",
                    "X-RateLimit-Bucket": _bucket_hash(MESSAGES_ROUTE),
                }
            return self._too_many(headers, failure.retry_after, failure.is_global)
        body = FAILURE_BODIES.get(
            failure.status, {"message": f"{failure.status}: {_reason(failure.status)}", "code": 0}
        )
        return web.json_response(body, status=failure.status)


async def _serve(port: int, flavour: Flavour) -> None:
    fake = FakeDiscord(port=port, flavour=flavour)
    await fake.start()
    print(fake.base_url, flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C interrupts asyncio.run
            loop.add_signal_handler(signum, stopped.set)
    try:
        await stopped.wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve the fake until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.discord_api", description="Fake Discord REST API v9."
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: free)")
    parser.add_argument(
        "--flavour", choices=["discord", "spacebar"], default="discord", help="server to mimic"
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port, args.flavour))


if __name__ == "__main__":
    main()
