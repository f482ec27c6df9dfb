"""LLM backend for OpenAI and any OpenAI-compatible server (Ollama, llama.cpp, vLLM, LM Studio)."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx2

from server.llm.base import ChatMessage, GenerationOptions, LLMError
from server.llm.model_quirks import (
    Lesson,
    ModelQuirks,
    Rejection,
    RequestShape,
    known_quirks,
    learn,
    learn_from_broken_stream,
    shape_request,
)

if TYPE_CHECKING:
    import openai

log = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
# Local servers ignore the key, but the SDK refuses to start without one.
PLACEHOLDER_KEY = "not-needed"
# Longest excerpt of a server's error message kept in an LLMError.
MAX_DETAIL = 200
CHAT_PATH = "/chat/completions"
# One request, plus one retry per thing a model can refuse (token parameter, temperature,
# streaming, system role, images).
MAX_ATTEMPTS = 6
# As many requests at once as there are pairs waiting (the SDK's own cap), but at most ten idle
# connections kept, not the SDK's hundred: before each request httpx probes every idle
# connection it holds (a poll() each), which after a burst of replies cost more than the rest of
# the request.
CONNECTION_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=10)


class MalformedAnswer(Exception):
    """Not what an OpenAI-style server answers: a broken or empty stream, or text, not JSON."""


class OpenAIBackend:
    """Chat completions over the OpenAI SDK, streamed and joined into one reply.

    Each model is asked the way it accepts (see `model_quirks`): known families from a table,
    the rest learned from the server's refusals and remembered per model for this backend's life.
    `timeout` bounds each connect and each read, as the SDK does, and also the whole completion,
    the SDK's retries and the stream included: a server trickling tokens cannot hold a reply
    forever. The SDK retries connection errors, timeouts, 408, 409, 429 and 5xx up to
    `max_retries` times.
    """

    name = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        model: str,
        timeout: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        url = base_url or OPENAI_BASE_URL
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "openai: base_url must be an http(s) URL, e.g. http://127.0.0.1:8080/v1"
            )
        self.host = parts.netloc.rpartition("@")[2]
        if not api_key and not base_url:
            raise ValueError(f"openai ({self.host}): an API key is required")
        self.model = model
        self.timeout = timeout
        self._api_key = api_key
        self._quirks: dict[str, ModelQuirks] = {}
        self._url = url
        self._max_retries = max_retries
        self._client: openai.AsyncOpenAI | None = None
        self._client_made = asyncio.Lock()

    async def _sdk_client(self) -> openai.AsyncOpenAI:
        """The SDK's client, made on the first request: the openai SDK takes most of a second
        to import, so `serve` starts without it and it loads off the event loop."""
        async with self._client_made:
            if self._client is not None:
                return self._client
            sdk = await asyncio.to_thread(importlib.import_module, "openai")
            self._client = sdk.AsyncOpenAI(
                api_key=self._api_key or PLACEHOLDER_KEY,
                base_url=self._url,
                timeout=self.timeout,
                max_retries=self._max_retries,
                http_client=sdk.DefaultAsyncHttpxClient(limits=CONNECTION_LIMITS),
            )
        return self._client

    def __repr__(self) -> str:
        return f"OpenAIBackend(host={self.host!r}, model={self.model!r})"

    async def complete(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> str:
        """Ask for a chat completion and return its text within `timeout` seconds; raise
        `LLMError` on any failure.

        A refusal that names something the model does not accept is retried without it.
        """
        client = await self._sdk_client()  # before the clock starts: loading is not asking
        try:
            async with asyncio.timeout(self.timeout):
                return await self._complete(client, messages, options)
        except TimeoutError:
            raise self._error(f"timed out after {self.timeout} s") from None

    async def _complete(
        self,
        client: openai.AsyncOpenAI,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
    ) -> str:
        """`complete` without the overall deadline."""
        import openai  # noqa: PLC0415 -- loaded by _sdk_client

        model = options.model or self.model
        quirks = self._quirks.get(model) or known_quirks(model)
        for _ in range(MAX_ATTEMPTS):
            lesson: Lesson | None
            shape = shape_request(messages, options, quirks)
            try:
                text = await self._ask(client, model, shape)
            except openai.APIStatusError as err:
                sends_images = any(m.images for m in shape.messages)
                lesson = learn(quirks, _rejection(err), sends_images=sends_images)
                if lesson is None:
                    raise self._error(self._reason(err)) from None
            except MalformedAnswer as err:
                lesson = learn_from_broken_stream(quirks)
                if lesson is None:
                    raise self._error(f"malformed answer ({err})") from None
            except openai.OpenAIError as err:
                # Not chained: SDK errors quote the server's body, which may echo part of the key.
                raise self._error(self._reason(err)) from None
            else:
                if not text.strip():
                    raise self._error("empty completion")
                return text
            log.info(
                "%s (%s): model %s %s; asking again that way from now on",
                self.name,
                self.host,
                model,
                lesson.what,
            )
            quirks = self._quirks[model] = lesson.quirks
        raise self._error(f"model {model} refused every request shape tried")

    async def _ask(self, client: openai.AsyncOpenAI, model: str, shape: RequestShape) -> str:
        """One request shaped by `shape`; the reply text, possibly empty.

        The body is plain JSON posted with the SDK's own client (its retries, timeouts, errors
        and SSE decoding), and answers are read as plain JSON: `chat.completions.create` would
        walk the body through its type-driven transform and build a pydantic model of each
        chunk, which cost more CPU than the HTTP exchange itself.
        """
        import openai  # noqa: PLC0415 -- loaded by _sdk_client

        body = request_body(model, shape)
        if not shape.stream:
            completion = await client.post(CHAT_PATH, body=body, cast_to=object)
            return completion_text(completion)
        stream = await client.post(
            CHAT_PATH, body=body, cast_to=object, stream=True, stream_cls=openai.AsyncStream[object]
        )
        parts: list[str] = []
        chunks = 0
        async with stream:
            try:
                async for chunk in stream:
                    chunks += 1
                    parts.append(chunk_text(chunk))
            except ValueError as err:  # an event that is not JSON: not an OpenAI-style stream
                raise MalformedAnswer(f"malformed stream: {err}") from None
        if not chunks:
            raise MalformedAnswer("a stream without a single chunk")
        return "".join(parts)

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections."""
        if self._client is not None:
            await self._client.close()

    def _error(self, reason: str) -> LLMError:
        return LLMError(f"{self.name} ({self.host}): {reason}")

    def _reason(self, err: openai.OpenAIError) -> str:
        """A short, secret-free description of an SDK error."""
        import openai  # noqa: PLC0415 -- loaded by _sdk_client

        if isinstance(err, openai.APITimeoutError):
            return f"timed out after {self.timeout} s"
        if isinstance(err, openai.APIConnectionError):
            cause = err.__cause__
            return f"connection failed: {cause or err}"
        if isinstance(err, openai.APIStatusError):
            labels = (label for label in (err.code, err.type) if label and not label.isdigit())
            reason = f"HTTP {err.status_code} {next(labels, err.response.reason_phrase)}"
            detail = err.body.get("message") if isinstance(err.body, dict) else None
            # 401/403 messages quote a masked key; leave them out entirely.
            if isinstance(detail, str) and detail and err.status_code not in (401, 403):
                reason += f": {self._scrub(detail)}"
            return reason
        return f"{type(err).__name__}: {self._scrub(str(err))}"

    def _scrub(self, text: str) -> str:
        """Cut a server-provided message short and blank out the key if it appears."""
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return " ".join(text.split())[:MAX_DETAIL]


def request_body(model: str, shape: RequestShape) -> dict[str, Any]:
    """The JSON body of a chat completion request; parameters left out are not sent."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": m.role, "content": message_content(m), **({"name": m.name} if m.name else {})}
            for m in shape.messages
        ],
    }
    optional = {
        "max_tokens": shape.max_tokens,
        "max_completion_tokens": shape.max_completion_tokens,
        "temperature": shape.temperature,
    }
    body.update((key, value) for key, value in optional.items() if value is not None)
    if shape.stream:
        body["stream"] = True
    return body


def message_content(message: ChatMessage) -> str | list[dict[str, Any]]:
    """A message's `content`: its text, or with images a text part and one image part each."""
    if not message.images:
        return message.content
    return [
        {"type": "text", "text": message.content},
        *({"type": "image_url", "image_url": {"url": url}} for url in message.images),
    ]


def completion_text(completion: object) -> str:
    """The text of a chat completion's first choice ("" if it has none)."""
    if not isinstance(completion, dict):  # the SDK hands back a non-JSON answer as text
        raise MalformedAnswer("not a chat completion")
    choices = completion.get("choices")
    if not choices:
        return ""
    first = choices[0] if isinstance(choices, list) else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        raise MalformedAnswer("not a chat completion")
    content = message.get("content")
    return content if isinstance(content, str) else ""


def chunk_text(chunk: object) -> str:
    """The text a stream chunk adds to the reply ("" for none)."""
    if not isinstance(chunk, dict):
        raise MalformedAnswer("malformed stream: a chunk that is not a JSON object")
    choices = chunk.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    delta = first.get("delta") if isinstance(first, dict) else None
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""


def _rejection(err: openai.APIStatusError) -> Rejection:
    """The parts of an error answer that can teach something about the model."""
    body = err.body if isinstance(err.body, dict) else {}
    message = body.get("message")
    return Rejection(
        status=err.status_code,
        message=message if isinstance(message, str) else "",
        param=err.param,
        code=err.code,
    )
