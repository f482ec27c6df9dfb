"""OpenAIBackend against the fake OpenAI-compatible server, over real sockets."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest

from server.llm.base import ChatMessage, GenerationOptions, LLMError
from server.llm.openai_backend import OpenAIBackend
from tests.fakes.openai_api import FakeOpenAI

CHAT = [
    ChatMessage("system", "You are Sam. Reply briefly."),
    ChatMessage("user", "hey, are you around?"),
    ChatMessage("assistant", "yeah, what's up"),
    ChatMessage("user", "want to get lunch"),
]
OPTIONS = GenerationOptions(max_tokens=100)

MakeBackend = Callable[..., OpenAIBackend]


@pytest.fixture
async def make_backend(fake_openai: FakeOpenAI) -> AsyncIterator[MakeBackend]:
    """Build backends pointed at the fake (unless told otherwise), and close them afterwards."""
    made: list[OpenAIBackend] = []

    def make(
        *,
        api_key: str = FakeOpenAI.API_KEY,
        base_url: str | None = None,
        timeout: float = 5.0,
        max_retries: int = 0,
    ) -> OpenAIBackend:
        backend = OpenAIBackend(
            api_key=api_key,
            base_url=fake_openai.base_url if base_url is None else base_url,
            model="test-model",
            timeout=timeout,
            max_retries=max_retries,
        )
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


def closed_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_streamed_reply_is_joined(fake_openai: FakeOpenAI, make_backend: MakeBackend) -> None:
    reply = await make_backend().complete(CHAT, OPTIONS)

    assert reply == "echo: want to get lunch [turns=3]"
    [request] = fake_openai.requests
    assert request["stream"] is True
    assert request["messages"][0] == {"role": "system", "content": "You are Sam. Reply briefly."}
    assert [m["role"] for m in request["messages"]] == ["system", "user", "assistant", "user"]


async def test_model_max_tokens_and_temperature_are_forwarded(
    fake_openai: FakeOpenAI, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    await backend.complete(CHAT, GenerationOptions(max_tokens=42, temperature=0.3))
    await backend.complete(CHAT, GenerationOptions(max_tokens=7))

    first, second = fake_openai.requests
    assert (first["model"], first["max_tokens"], first["temperature"]) == ("test-model", 42, 0.3)
    assert (second["model"], second["max_tokens"]) == ("test-model", 7)
    assert "temperature" not in second


async def test_per_request_model_overrides_the_default(
    fake_openai: FakeOpenAI, make_backend: MakeBackend
) -> None:
    await make_backend().complete(CHAT, GenerationOptions(max_tokens=10, model="other-model"))

    assert fake_openai.requests[0]["model"] == "other-model"


async def test_reply_cut_at_max_tokens_is_returned(
    fake_openai: FakeOpenAI, make_backend: MakeBackend
) -> None:
    fake_openai.reply_fn = lambda messages: "one two three four five"

    assert await make_backend().complete(CHAT, GenerationOptions(max_tokens=2)) == "one two"


async def test_local_server_without_a_key(
    fake_openai: FakeOpenAI, make_backend: MakeBackend
) -> None:
    fake_openai.require_key = False

    reply = await make_backend(api_key="").complete(CHAT, OPTIONS)

    assert reply.startswith("echo: want to get lunch")


async def test_default_base_url_needs_a_key() -> None:
    with pytest.raises(ValueError, match=r"api\.openai\.com"):
        OpenAIBackend(api_key="", base_url="", model="gpt-4o-mini")


async def test_wrong_key_names_the_status_and_hides_the_key(make_backend: MakeBackend) -> None:
    secret = "sk-wrong-0123456789-SECRET-abcdef"
    backend = make_backend(api_key=secret)

    with pytest.raises(LLMError) as caught:
        await backend.complete(CHAT, OPTIONS)

    message = str(caught.value)
    assert message.startswith("openai (127.0.0.1:")
    assert "HTTP 401 invalid_api_key" in message
    assert "SECRET" not in message and "abcdef" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert "SECRET" not in repr(backend)


async def test_server_error_is_retried_by_the_sdk(
    fake_openai: FakeOpenAI, make_backend: MakeBackend
) -> None:
    fake_openai.fail_next(500)

    reply = await make_backend(max_retries=1).complete(CHAT, OPTIONS)

    assert reply.startswith("echo: ")
    assert len(fake_openai.requests) == 2


async def test_rate_limit_waits_retry_after_then_succeeds(
    fake_openai: FakeOpenAI, make_backend: MakeBackend
) -> None:
    fake_openai.fail_next(429, retry_after=0.05)

    reply = await make_backend(max_retries=1).complete(CHAT, OPTIONS)

    assert reply.startswith("echo: ")
    assert len(fake_openai.requests) == 2


async def test_persistent_server_error_names_status_and_reason(
    fake_openai: FakeOpenAI, make_backend: MakeBackend
) -> None:
    fake_openai.fail_next(503)

    with pytest.raises(
        LLMError, match=r"HTTP 503 server_error: The engine is currently overloaded"
    ):
        await make_backend().complete(CHAT, OPTIONS)


async def test_timeout_fails_quickly(fake_openai: FakeOpenAI, make_backend: MakeBackend) -> None:
    fake_openai.delay = 2.0
    backend = make_backend(timeout=0.2)

    started = time.monotonic()
    with pytest.raises(LLMError, match=r"^openai \(127\.0\.0\.1:\d+\): timed out after 0\.2 s$"):
        await backend.complete(CHAT, OPTIONS)

    assert time.monotonic() - started < 1.5


async def test_connection_refused(make_backend: MakeBackend) -> None:
    port = closed_port()
    backend = make_backend(base_url=f"http://127.0.0.1:{port}/v1")

    with pytest.raises(LLMError, match=rf"^openai \(127\.0\.0\.1:{port}\): connection failed"):
        await backend.complete(CHAT, OPTIONS)


async def test_empty_completion_is_an_error(
    fake_openai: FakeOpenAI, make_backend: MakeBackend
) -> None:
    fake_openai.reply_fn = lambda messages: ""

    with pytest.raises(LLMError, match=r"empty completion"):
        await make_backend().complete(CHAT, OPTIONS)


async def test_wrong_path_is_an_http_404(
    fake_openai: FakeOpenAI, make_backend: MakeBackend
) -> None:
    backend = make_backend(base_url=fake_openai.base_url.removesuffix("/v1"))

    with pytest.raises(LLMError, match=r"HTTP 404 invalid_request_error: Invalid URL"):
        await backend.complete(CHAT, OPTIONS)


async def test_malformed_stream_is_an_error(make_backend: MakeBackend) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\ndata: {broken\n\n'
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n"
        writer.write(head % len(body) + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        backend = make_backend(base_url=f"http://127.0.0.1:{port}/v1")
        with pytest.raises(LLMError, match=r"malformed stream"):
            await backend.complete(CHAT, OPTIONS)
