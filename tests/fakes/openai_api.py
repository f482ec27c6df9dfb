"""A local fake of an OpenAI-compatible chat-completions server, faithful to OpenAI's wire format.

Serves `POST /v1/chat/completions` (JSON or SSE streaming) and `GET /v1/models` on 127.0.0.1, with
OpenAI's error bodies, and lets tests inject latency and failures and inspect what was received.
Each model name can be given a `ModelProfile` that refuses what a real model family refuses, with
the error body its real server sends (OpenAI's reasoning models, Gemma on vLLM or llama.cpp,
servers that cannot stream). Run standalone for the plugin tests:
`python -m tests.fakes.openai_api [--port N] [--delay S]`.
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
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

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


@dataclass(frozen=True)
class ModelProfile:
    """What one model refuses, and how its server words the refusal.

    `max_tokens`: False answers OpenAI's 400 `unsupported_parameter` (o-series, gpt-5 family).
    `temperature`: "unsupported_parameter" (o3-mini: any temperature), "default_only" (o1, gpt-5:
    anything but 1 is an `unsupported_value`). `stream`: "rejected" (o1's 400 on `stream: true`),
    "ignored" (a server that answers plain JSON anyway), "malformed" (an SSE body that is not
    JSON). `system_role`: "openai" (o1-mini's 400 on `messages[0].role`), "vllm" (a chat template
    raising "System role not supported", HTTP 400), "llamacpp" (the same through llama-server
    --jinja, HTTP 500).
    """

    max_tokens: bool = True
    images: bool = True
    """False: a text-only model, refusing image content parts with OpenAI's 400."""
    temperature: Literal["any", "unsupported_parameter", "default_only"] = "any"
    stream: Literal["yes", "rejected", "ignored", "malformed"] = "yes"
    system_role: Literal["yes", "openai", "vllm", "llamacpp"] = "yes"


# The model families the backend is tested against, as their servers behaved when checked.
GPT_4O = ModelProfile()
O1_MINI = ModelProfile(max_tokens=False, temperature="default_only", system_role="openai")
O1 = ModelProfile(max_tokens=False, temperature="default_only", stream="rejected")
O3_MINI = ModelProfile(max_tokens=False, temperature="unsupported_parameter")
GPT_5 = ModelProfile(max_tokens=False, temperature="default_only")
GEMMA_ON_VLLM = ModelProfile(system_role="vllm")
GEMMA_ON_LLAMA_CPP = ModelProfile(system_role="llamacpp")
NO_STREAMING = ModelProfile(stream="ignored")
TEXT_ONLY = ModelProfile(images=False)
BROKEN_STREAMING = ModelProfile(stream="malformed")

LLAMA_CPP_TEMPLATE_ERROR = (
    "\n------------\nWhile executing CallExpression at line 2, column 30 in source:\n"
    "...{%- if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
    "supported') }}...\n                             ^\n"
    "Error: Jinja Exception: System role not supported"
)


def refusal(profile: ModelProfile, body: JSONDict) -> web.Response | None:
    """The error a model with `profile` answers to `body`, as its server words it; or None."""
    if not profile.images:
        for index, message in enumerate(body["messages"]):
            parts = message.get("content")
            for number, part in enumerate(parts if isinstance(parts, list) else []):
                if part.get("type") == "image_url":
                    return web.json_response(
                        error_body(
                            "Invalid content type. image_url is only supported by certain models.",
                            "invalid_request_error",
                            None,
                            f"messages.[{index}].content.[{number}].type",
                        ),
                        status=400,
                    )
    if not profile.max_tokens and "max_tokens" in body:
        return web.json_response(
            error_body(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "invalid_request_error",
                "unsupported_parameter",
                "max_tokens",
            ),
            status=400,
        )
    temperature = body.get("temperature")
    if temperature is not None and profile.temperature == "unsupported_parameter":
        return web.json_response(
            error_body(
                "Unsupported parameter: 'temperature' is not supported with this model.",
                "invalid_request_error",
                "unsupported_parameter",
                "temperature",
            ),
            status=400,
        )
    if temperature not in (None, 1) and profile.temperature == "default_only":
        return web.json_response(
            error_body(
                f"Unsupported value: 'temperature' does not support {json.dumps(temperature)} "
                "with this model. Only the default (1) value is supported.",
                "invalid_request_error",
                "unsupported_value",
                "temperature",
            ),
            status=400,
        )
    if body.get("stream") and profile.stream == "rejected":
        return web.json_response(
            error_body(
                "Unsupported value: 'stream' does not support true with this model. "
                "Supported values are: false.",
                "invalid_request_error",
                "unsupported_value",
                "stream",
            ),
            status=400,
        )
    return _template_refusal(profile, body["messages"])


def _template_refusal(profile: ModelProfile, messages: list[JSONDict]) -> web.Response | None:
    system = next((i for i, m in enumerate(messages) if m.get("role") == "system"), None)
    if system is None or profile.system_role == "yes":
        return None
    if profile.system_role == "openai":
        return web.json_response(
            error_body(
                f"Unsupported value: 'messages[{system}].role' does not support 'system' with "
                "this model.",
                "invalid_request_error",
                "unsupported_value",
                f"messages[{system}].role",
            ),
            status=400,
        )
    if profile.system_role == "vllm":  # vLLM's flat error object, not OpenAI's envelope
        flat = {
            "object": "error",
            "message": "System role not supported",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
        return web.json_response(flat, status=400)
    error = {"code": 500, "message": LLAMA_CPP_TEMPLATE_ERROR, "type": "server_error"}
    return web.json_response({"error": error}, status=500)


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

    Tests may set `delay` (seconds before the first byte of every response), `chunk_delay` (seconds
    before each streamed piece of text: a server that trickles tokens), `reply_fn` (messages
    -> reply text), `require_key` (False accepts any or no key, like a keyless llama.cpp) and
    `models` (model name -> `ModelProfile`; other names accept everything), `reasoning` (text
    sent in a separate `reasoning_content` field before the reply, as DeepSeek's API, vLLM's
    reasoning parsers and llama.cpp do), and read `requests`: the JSON bodies received on
    /v1/chat/completions, refused ones included.
    """

    API_KEY = "sk-fake-test-key-0123456789abcdef"
    MODEL = "fake-gpt"

    def __init__(self, *, port: int = 0, require_key: bool = True) -> None:
        self.port = port
        self.require_key = require_key
        self.delay = 0.0
        self.chunk_delay = 0.0
        self.reply_fn: ReplyFn = reply
        self.reasoning = ""
        self.transcript = "this is the voice message"
        self.transcriptions: list[JSONDict] = []
        self._transcription_failures = 0
        self.models: dict[str, ModelProfile] = {}
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
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
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

    def fail_transcriptions(self, count: int = 1) -> None:
        """Answer the next `count` transcription requests with a 500, as an overloaded server."""
        self._transcription_failures += count

    async def _transcriptions(self, request: web.Request) -> web.Response:
        """`POST /v1/audio/transcriptions`: multipart `file` and `model` (whisper-1 and local
        servers alike); answers `{"text": transcript}`. Received forms go to `transcriptions`:
        model, filename, content_type, size."""
        refused = self._auth_error(request)
        if refused is not None:
            return refused
        if not request.content_type.startswith("multipart/form-data"):
            message = "Invalid Content-Type header, expected multipart/form-data."
            return web.json_response(error_body(message, "invalid_request_error", None), status=400)
        form = await request.post()
        upload, model = form.get("file"), form.get("model")
        if not isinstance(model, str) or not model:
            return web.json_response(
                error_body(
                    "Missing required parameter: 'model'.",
                    "invalid_request_error",
                    "missing_required_parameter",
                    "model",
                ),
                status=400,
            )
        if not isinstance(upload, web.FileField):
            return web.json_response(
                error_body(
                    "Missing required parameter: 'file'.",
                    "invalid_request_error",
                    "missing_required_parameter",
                    "file",
                ),
                status=400,
            )
        data = upload.file.read()
        self.transcriptions.append(
            {
                "model": model,
                "filename": upload.filename,
                "content_type": upload.content_type,
                "size": len(data),
            }
        )
        if self._transcription_failures:
            self._transcription_failures -= 1
            type_, code, message = FAILURES[500]
            return web.json_response(error_body(message, type_, code), status=500)
        return web.json_response({"text": self.transcript})

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
        profile = self.models.get(body["model"], GPT_4O)
        refused = refusal(profile, body)
        if refused is not None:
            return refused

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
        if body.get("stream") and profile.stream == "malformed":
            return await malformed_stream(request, head)
        if body.get("stream") and profile.stream == "yes":
            options = body.get("stream_options") or {}
            return await stream(
                request,
                head,
                pieces,
                finish_reason,
                usage if options.get("include_usage") else None,
                chunk_delay=self.chunk_delay,
                reasoning=re.findall(r"\s*\S+", self.reasoning),
            )
        answer = {"role": "assistant", "content": "".join(pieces), "refusal": None}
        if self.reasoning:
            answer["reasoning_content"] = self.reasoning
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
        invalid = _invalid_content(index, message)
        if invalid is not None:
            return invalid
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


_DATA_URL = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/]+=*$")


def _invalid_content(index: int, message: JSONDict) -> JSONDict | None:
    """OpenAI's 400 for a message whose content is neither text nor a list of valid parts: text
    parts (`{"type": "text", "text": ...}`, any role) and, in user messages, image parts
    (`{"type": "image_url", "image_url": {"url": https or a base64 data URL}}`)."""
    content = message.get("content")
    if isinstance(content, str):
        return None
    if not isinstance(content, list) or not content:
        return error_body(
            f"Invalid type for 'messages[{index}].content': expected one of a string or an "
            "array of objects, but got something else instead.",
            "invalid_request_error",
            "invalid_type",
            f"messages[{index}].content",
        )
    for number, part in enumerate(content):
        where = f"messages[{index}].content[{number}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        image = part.get("image_url") if kind == "image_url" else None
        url = image.get("url") if isinstance(image, dict) else None
        if message.get("role") == "user" and isinstance(url, str):
            if url.startswith("https://") or _DATA_URL.match(url):
                continue
            return error_body(
                f"Invalid '{where}.image_url.url'. Expected a base64-encoded data URL with an "
                "image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got "
                "a value that does not look like one.",
                "invalid_request_error",
                "invalid_value",
                f"{where}.image_url.url",
            )
        return error_body(
            f"Invalid value: '{kind}'. Supported values are: 'text', 'image_url', "
            "'input_audio', 'refusal', 'audio', and 'file'.",
            "invalid_request_error",
            "invalid_value",
            f"{where}.type",
        )
    return None


async def stream(
    request: web.Request,
    head: JSONDict,
    pieces: list[str],
    finish_reason: str,
    usage: JSONDict | None,
    *,
    chunk_delay: float = 0.0,
    reasoning: list[str] | None = None,
) -> web.StreamResponse:
    """Answer as OpenAI streams: a role chunk, one chunk per piece (each `chunk_delay` seconds
    after the last), a finish chunk, [DONE]. `reasoning` pieces come first, each in a delta's
    `reasoning_content` with `content` null, as reasoning servers stream them."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    extra = {"usage": None} if usage is not None else {}

    async def send(delta: JSONDict, finish: str | None) -> None:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        chunk = {**head, "object": "chat.completion.chunk", "choices": [choice], **extra}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

    try:
        await send({"role": "assistant", "content": "", "refusal": None}, None)
        for thought in reasoning or []:
            await send({"content": None, "reasoning_content": thought}, None)
        for piece in pieces:
            if chunk_delay > 0:
                await asyncio.sleep(chunk_delay)
            await send({"content": piece}, None)
        await send({}, finish_reason)
        if usage is not None:
            chunk = {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
    except ConnectionResetError:  # the client gave up on the stream: stop, as a server does
        pass
    return response


async def malformed_stream(request: web.Request, head: JSONDict) -> web.StreamResponse:
    """An SSE answer whose second event is cut off mid-JSON, as a broken proxy can send."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
    await response.prepare(request)
    choice = {"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": None}
    chunk = {**head, "object": "chat.completion.chunk", "choices": [choice]}
    await response.write(f"data: {json.dumps(chunk)}\n\ndata: {{broken\n\n".encode())
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
