"""A local fake of an OpenAI-compatible chat-completions server, faithful to OpenAI's wire format.

Serves `POST /v1/chat/completions` (JSON or SSE streaming) and `GET /v1/models` on 127.0.0.1, with
OpenAI's error bodies, and lets tests inject latency and failures and inspect what was received.
Run standalone for the plugin tests: `python -m tests.fakes.openai_api [--port N] [--delay S]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import re
import signal
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web

JSONDict = dict[str, Any]
ReplyFn = Callable[[list[JSONDict]], str]

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
FINGERPRINT = "fp_fake0001"

# status -> (error.type, error.code, error.message), as OpenAI words them.
FAILURES: dict[int, tuple[str, str | None, str]] = {
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1. "
        "Please try again later.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def reply(messages: list[JSONDict]) -> str:
    """Default reply: echo the last user message and count the non-system turns."""
    turns = [m for m in messages if m.get("role") not in ("system", "developer")]
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    last = text_of(last_user) if last_user is not None else ""
    return f"echo: {last} [turns={len(turns)}]"


def text_of(message: JSONDict) -> str:
    """The text of a message whose content is a string or a list of content parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> JSONDict:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def mask_key(key: str) -> str:
    """Mask a key the way OpenAI does in its 401 message, never showing all of it."""
    if len(key) < 16:
        return "*" * len(key)
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1 with a random free port (or a chosen one).

    Tests may set `delay` (seconds before the first byte of every response), `reply_fn` (messages
    -> reply text), and `require_key` (False accepts any or no key, like a keyless llama.cpp), and
    read `requests`: the JSON bodies received on /v1/chat/completions, refused ones included.
    """

    API_KEY = "sk-fake-test-key-0123456789abcdef"
    MODEL = "fake-gpt"

    def __init__(self, *, port: int = 0, require_key: bool = True) -> None:
        self.port = port
        self.require_key = require_key
        self.delay = 0.0
        self.reply_fn: ReplyFn = reply
        self.requests: list[JSONDict] = []
        self._failures: deque[tuple[int, float]] = deque()
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """The URL to give an OpenAI client, e.g. `http://127.0.0.1:8080/v1`."""
        return f"http://127.0.0.1:{self.port}/v1"

    def fail_next(self, status: int, count: int = 1, *, retry_after: float = 1.0) -> None:
        """Answer the next `count` chat requests with `status` and OpenAI's error body for it.

        A 429 carries `retry-after` (whole seconds) and `retry-after-ms` headers from `retry_after`.
        """
        self._failures.extend([(status, retry_after)] * count)

    async def start(self) -> None:
        """Start listening; `base_url` is valid afterwards."""
        app = web.Application(middlewares=[self._openai_errors])
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._models)
        app.on_response_prepare.append(add_request_id)
        # A short grace period: stop() must not wait out a long injected delay.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _openai_errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Delay every response, and word routing errors like OpenAI."""
        await asyncio.sleep(self.delay)
        try:
            return await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            message = f"Invalid URL ({request.method} {request.path})"
            return web.json_response(error_body(message, "invalid_request_error", None), status=404)

    def _auth_error(self, request: web.Request) -> web.Response | None:
        if not self.require_key:
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() == "bearer" and key == self.API_KEY:
            return None
        if not key:
            message = (
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
            return web.json_response(error_body(message, "invalid_request_error", None), status=401)
        message = (
            f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        return web.json_response(
            error_body(message, "invalid_request_error", "invalid_api_key"), status=401
        )

    def _injected_failure(self) -> web.Response | None:
        if not self._failures:
            return None
        status, retry_after = self._failures.popleft()
        default = (
            "server_error" if status >= 500 else "invalid_request_error",
            None,
            HTTPStatus(status).phrase,
        )
        type_, code, message = FAILURES.get(status, default)
        headers = {}
        if status == 429:
            headers = {
                "retry-after": str(math.ceil(retry_after)),
                "retry-after-ms": str(round(retry_after * 1000)),
            }
        return web.json_response(error_body(message, type_, code), status=status, headers=headers)

    async def _models(self, request: web.Request) -> web.Response:
        refused = self._auth_error(request)
        if refused is not None:
            return refused
        model = {"id": self.MODEL, "object": "model", "created": 1700000000, "owned_by": "fake"}
        return web.json_response({"object": "list", "data": [model]})

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.read())
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = None
        if isinstance(body, dict):
            self.requests.append(body)
        refused = self._auth_error(request) or self._injected_failure()
        if refused is not None:
            return refused
        if not isinstance(body, dict):
            message = "We could not parse the JSON body of your request."
            return web.json_response(error_body(message, "invalid_request_error", None), status=400)
        invalid = validate(body)
        if invalid is not None:
            return web.json_response(invalid, status=400)

        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        pieces = re.findall(r"\s*\S+", self.reply_fn(body["messages"]))
        finish_reason = "stop"
        if limit is not None and len(pieces) > limit:
            pieces, finish_reason = pieces[:limit], "length"
        prompt_tokens = sum(len(text_of(m).split()) for m in body["messages"])
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(pieces),
            "total_tokens": prompt_tokens + len(pieces),
        }
        head = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": FINGERPRINT,
        }
        if body.get("stream"):
            options = body.get("stream_options") or {}
            return await stream(
                request,
                head,
                pieces,
                finish_reason,
                usage if options.get("include_usage") else None,
            )
        answer = {"role": "assistant", "content": "".join(pieces), "refusal": None}
        choice = {"index": 0, "message": answer, "logprobs": None, "finish_reason": finish_reason}
        return web.json_response(
            {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
        )


async def add_request_id(_request: web.Request, response: web.StreamResponse) -> None:
    """Tag every response with an `x-request-id`, as OpenAI does (the SDK reads it)."""
    response.headers["x-request-id"] = f"req_{uuid.uuid4().hex}"


def validate(body: JSONDict) -> JSONDict | None:
    """OpenAI's 400 error body for a malformed chat request, or None when it is acceptable."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return error_body("you must provide a model parameter", "invalid_request_error", None)
    messages = body.get("messages")
    if messages is None:
        return error_body(
            "Missing required parameter: 'messages'.",
            "invalid_request_error",
            "missing_required_parameter",
            "messages",
        )
    if not isinstance(messages, list) or not messages:
        return error_body(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            "invalid_request_error",
            "empty_array",
            "messages",
        )
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            return error_body(
                f"Invalid value: {role!r}. Supported values are: {', '.join(ROLES)}.",
                "invalid_request_error",
                "invalid_value",
                f"messages[{index}].role",
            )
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or value < 1):
            return error_body(
                f"Invalid '{name}': integer below minimum value. Expected a value >= 1, "
                f"but got {value!r} instead.",
                "invalid_request_error",
                "integer_below_min_value",
                name,
            )
    return None


async def stream(
    request: web.Request,
    head: JSONDict,
    pieces: list[str],
    finish_reason: str,
    usage: JSONDict | None,
) -> web.StreamResponse:
    """Answer as OpenAI streams: a role chunk, one chunk per piece, a finish chunk, [DONE]."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    extra = {"usage": None} if usage is not None else {}

    async def send(delta: JSONDict, finish: str | None) -> None:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        chunk = {**head, "object": "chat.completion.chunk", "choices": [choice], **extra}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

    await send({"role": "assistant", "content": "", "refusal": None}, None)
    for piece in pieces:
        await send({"content": piece}, None)
    await send({}, finish_reason)
    if usage is not None:
        chunk = {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def serve(port: int, delay: float) -> None:
    """Serve until SIGTERM or SIGINT, after printing the base URL as the only line on stdout."""
    fake = FakeOpenAI(port=port)
    fake.delay = delay
    await fake.start()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C interrupts asyncio.run
            loop.add_signal_handler(sig, stopped.set)
    print(fake.base_url, flush=True)
    try:
        await stopped.wait()
    finally:
        await fake.stop()


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: random)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each response")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.delay))


if __name__ == "__main__":
    main()
