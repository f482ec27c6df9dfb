"""OpenAIBackend against the fake OpenAI-compatible server, over real sockets."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable

import pytest

from server.llm.base import ChatMessage, GenerationOptions, LLMError
from server.llm.chain import BackendChain
from server.llm.model_quirks import RequestShape
from server.llm.openai_backend import (
    MalformedAnswer,
    OpenAIBackend,
    chunk_text,
    completion_text,
    request_body,
)
from tests.fakes.openai_api import (
    BROKEN_STREAMING,
    GEMMA_ON_LLAMA_CPP,
    GEMMA_ON_VLLM,
    GPT_5,
    NO_STREAMING,
    O1,
    O1_MINI,
    O3_MINI,
    FakeOpenAI,
    ModelProfile,
)

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
        model: str = "test-model",
    ) -> OpenAIBackend:
        backend = OpenAIBackend(
            api_key=api_key,
            base_url=fake_openai.base_url if base_url is None else base_url,
            model=model,
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


async def test_a_trickling_stream_is_cut_at_the_overall_deadline(
    fake_openai: FakeOpenAI, make_backend: MakeBackend
) -> None:
    fake_openai.reply_fn = lambda messages: "slowly " * 100
    fake_openai.chunk_delay = 0.05  # every read is quick, the whole answer would take 5 s
    backend = make_backend(timeout=0.5)

    started = time.monotonic()
    with pytest.raises(LLMError, match=r"^openai \(127\.0\.0\.1:\d+\): timed out after 0\.5 s$"):
        await backend.complete(CHAT, OPTIONS)

    assert 0.5 <= time.monotonic() - started < 3.0
    assert len(fake_openai.requests) == 1  # given up, not asked again


async def test_the_sdks_retries_stay_within_the_timeout(
    fake_openai: FakeOpenAI, make_backend: MakeBackend
) -> None:
    fake_openai.delay = 5.0
    backend = make_backend(timeout=0.3, max_retries=2)  # alone: 3 tries and 2 back-offs, >= 2 s

    started = time.monotonic()
    with pytest.raises(LLMError, match=r"timed out after 0\.3 s$"):
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


async def test_server_that_only_ever_sends_a_broken_stream_is_an_error(
    make_backend: MakeBackend,
) -> None:
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
        with pytest.raises(LLMError, match=r"malformed answer \(not a chat completion\)"):
            await backend.complete(CHAT, OPTIONS)


# --- Model families that refuse parts of a request, emulated with their servers' real errors.

WARM = GenerationOptions(max_tokens=100, temperature=0.7)
PERSONA_FIRST = "You are Sam. Reply briefly.\n\nhey, are you around?"


def sent_keys(request: dict[str, object]) -> set[str]:
    """The request fields that differ between model families."""
    return {"max_tokens", "max_completion_tokens", "temperature", "stream"} & request.keys()


def roles(request: dict[str, object]) -> list[str]:
    messages = request["messages"]
    assert isinstance(messages, list)
    return [m["role"] for m in messages]


@pytest.mark.parametrize(
    ("model", "profile"),
    [("o3-mini", O3_MINI), ("o4-mini", O3_MINI), ("gpt-5-mini", GPT_5), ("gpt-5.4", GPT_5)],
)
async def test_known_reasoning_models_are_asked_their_way_at_once(
    fake_openai: FakeOpenAI, make_backend: MakeBackend, model: str, profile: ModelProfile
) -> None:
    fake_openai.models[model] = profile

    reply = await make_backend(model=model).complete(CHAT, WARM)

    assert reply == "echo: want to get lunch [turns=3]"
    [request] = fake_openai.requests
    assert sent_keys(request) == {"max_completion_tokens", "stream"}
    assert request["max_completion_tokens"] == 100


async def test_o1_mini_gets_the_persona_in_the_first_user_turn(
    fake_openai: FakeOpenAI, make_backend: MakeBackend
) -> None:
    fake_openai.models["o1-mini"] = O1_MINI

    reply = await make_backend(model="o1-mini").complete(CHAT, WARM)

    assert reply == "echo: want to get lunch [turns=3]"
    [request] = fake_openai.requests
    assert roles(request) == ["user", "assistant", "user"]
    assert request["messages"][0]["content"] == PERSONA_FIRST


async def test_unknown_name_learns_each_refusal_once_and_remembers_it(
    fake_openai: FakeOpenAI, make_backend: MakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """An Azure-style deployment name hides an o1-mini: OpenAI's 400s teach what it takes."""
    caplog.set_level(logging.INFO)
    fake_openai.models["my-deployment"] = O1_MINI
    backend = make_backend(model="my-deployment")

    assert await backend.complete(CHAT, WARM) == "echo: want to get lunch [turns=3]"

    first, second, third, accepted = fake_openai.requests
    assert sent_keys(first) == {"max_tokens", "temperature", "stream"}
    assert sent_keys(second) == {"max_completion_tokens", "temperature", "stream"}
    assert sent_keys(third) == {"max_completion_tokens", "stream"}
    assert roles(third)[0] == "system"
    assert roles(accepted) == ["user", "assistant", "user"]
    assert "model my-deployment wants max_completion_tokens" in caplog.text
    assert "model my-deployment refuses the system role" in caplog.text

    fake_openai.requests.clear()
    await backend.complete(CHAT, WARM)
    [again] = fake_openai.requests
    assert sent_keys(again) == {"max_completion_tokens", "stream"}
    assert roles(again) == ["user", "assistant", "user"]

    fake_openai.requests.clear()
    await backend.complete(CHAT, GenerationOptions(max_tokens=10, model="gpt-4o-mini"))
    [other] = fake_openai.requests
    assert sent_keys(other) == {"max_tokens", "stream"} and roles(other)[0] == "system"


async def test_gpt5_under_another_name_drops_only_a_non_default_temperature(
    fake_openai: FakeOpenAI, make_backend: MakeBackend
) -> None:
    fake_openai.models["reasoner"] = GPT_5
    backend = make_backend(model="reasoner")

    await backend.complete(CHAT, WARM)

    assert [sent_keys(r) for r in fake_openai.requests] == [
        {"max_tokens", "temperature", "stream"},
        {"max_completion_tokens", "temperature", "stream"},
        {"max_completion_tokens", "stream"},
    ]
    assert fake_openai.requests[1]["temperature"] == 0.7


async def test_o1_that_cannot_stream_is_asked_without_streaming(
    fake_openai: FakeOpenAI, make_backend: MakeBackend
) -> None:
    fake_openai.models["o1"] = O1
    backend = make_backend(model="o1")

    assert await backend.complete(CHAT, WARM) == "echo: want to get lunch [turns=3]"
    assert await backend.complete(CHAT, WARM) == "echo: want to get lunch [turns=3]"

    streamed, plain, remembered = fake_openai.requests
    assert streamed["stream"] is True
    assert "stream" not in plain and "stream" not in remembered
    assert sent_keys(plain) == {"max_completion_tokens"}


@pytest.mark.parametrize(
    ("profile", "status"),
    [(GEMMA_ON_VLLM, 400), (GEMMA_ON_LLAMA_CPP, 500)],
    ids=["vllm", "llamacpp"],
)
async def test_chat_template_without_a_system_role_gets_the_persona_folded_in(
    fake_openai: FakeOpenAI, make_backend: MakeBackend, profile: ModelProfile, status: int
) -> None:
    fake_openai.models["gemma-2-9b-it"] = profile
    fake_openai.require_key = False
    backend = make_backend(api_key="", model="gemma-2-9b-it")

    assert await backend.complete(CHAT, WARM) == "echo: want to get lunch [turns=3]"
    await backend.complete(CHAT, WARM)

    refused, folded, remembered = fake_openai.requests
    assert roles(refused) == ["system", "user", "assistant", "user"]
    assert roles(folded) == roles(remembered) == ["user", "assistant", "user"]
    assert folded["messages"][0]["content"] == PERSONA_FIRST
    assert folded["temperature"] == 0.7 and folded["max_tokens"] == 100


@pytest.mark.parametrize("profile", [NO_STREAMING, BROKEN_STREAMING], ids=["ignored", "malformed"])
async def test_server_that_streams_badly_is_asked_without_streaming(
    fake_openai: FakeOpenAI, make_backend: MakeBackend, profile: ModelProfile
) -> None:
    fake_openai.models["local"] = profile
    backend = make_backend(model="local")

    assert await backend.complete(CHAT, OPTIONS) == "echo: want to get lunch [turns=3]"
    assert await backend.complete(CHAT, OPTIONS) == "echo: want to get lunch [turns=3]"

    assert [r.get("stream") for r in fake_openai.requests] == [True, None, None]


async def test_a_refusal_that_teaches_nothing_fails_at_once(
    fake_openai: FakeOpenAI, make_backend: MakeBackend
) -> None:
    fake_openai.fail_next(400)

    with pytest.raises(LLMError, match=r"HTTP 400 invalid_request_error: Bad Request"):
        await make_backend().complete(CHAT, WARM)

    assert len(fake_openai.requests) == 1


async def test_llama_cpp_error_is_reported_on_one_line(
    fake_openai: FakeOpenAI, make_backend: MakeBackend
) -> None:
    """With the system role already folded away, a template error left is reported as it is."""
    fake_openai.models["gemma"] = GEMMA_ON_LLAMA_CPP
    backend = make_backend(model="gemma")
    await backend.complete(CHAT, OPTIONS)
    fake_openai.fail_next(500)

    with pytest.raises(LLMError) as caught:
        await backend.complete(CHAT, OPTIONS)

    assert "\n" not in str(caught.value)
    assert "HTTP 500 server_error" in str(caught.value)


@pytest.mark.parametrize("blank", ["", "  \n\t "])
async def test_blank_completion_falls_through_to_the_next_backend(
    fake_openai: FakeOpenAI, blank: str
) -> None:
    silent = FakeOpenAI()
    await silent.start()
    silent.reply_fn = lambda messages: blank
    chain = BackendChain(
        [
            OpenAIBackend(api_key=FakeOpenAI.API_KEY, base_url=silent.base_url, model="a"),
            OpenAIBackend(api_key=FakeOpenAI.API_KEY, base_url=fake_openai.base_url, model="b"),
        ]
    )
    try:
        assert await chain.complete(CHAT, OPTIONS) == "echo: want to get lunch [turns=3]"
        assert len(silent.requests) == 1  # a blank answer is a failure, not a reason to retry
    finally:
        await chain.aclose()
        await silent.stop()


def test_the_request_body_leaves_out_what_the_shape_leaves_out() -> None:
    shape = RequestShape([ChatMessage("user", "hi")], stream=True, max_completion_tokens=50)
    assert request_body("o3", shape) == {
        "model": "o3",
        "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 50,
        "stream": True,
    }
    shape = RequestShape([], stream=False, max_tokens=10, temperature=0.0)
    assert request_body("m", shape) == {
        "model": "m",
        "messages": [],
        "max_tokens": 10,
        "temperature": 0.0,
    }


def test_answers_are_read_as_plain_json_whatever_their_shape() -> None:
    assert completion_text({"choices": [{"message": {"content": "hello"}}]}) == "hello"
    assert completion_text({"choices": [{"message": {"content": None}}]}) == ""
    assert completion_text({"choices": []}) == ""
    assert chunk_text({"choices": [{"delta": {"content": "he"}}]}) == "he"
    assert chunk_text({"choices": [{"delta": {}, "finish_reason": "stop"}]}) == ""
    assert chunk_text({"choices": [], "usage": {"total_tokens": 3}}) == ""
    for not_a_completion in ("<html>busy</html>", {"choices": [1]}, {"choices": {"a": 1}}):
        with pytest.raises(MalformedAnswer):
            completion_text(not_a_completion)
    with pytest.raises(MalformedAnswer):
        chunk_text([1, 2])


FIRST_REQUEST = """
import asyncio, sys
from server.llm.base import ChatMessage, GenerationOptions
from server.llm.openai_backend import OpenAIBackend

async def first() -> str:
    backend = OpenAIBackend(base_url=sys.argv[1], api_key=sys.argv[2], model="m", timeout=0.3)
    try:
        return await backend.complete([ChatMessage("user", "hi")], GenerationOptions(max_tokens=50))
    finally:
        await backend.aclose()

assert "openai" not in sys.modules
print("ANSWER " + asyncio.run(first()))
"""


async def test_loading_the_sdk_on_the_first_request_is_not_counted_in_its_timeout(
    fake_openai: FakeOpenAI,
) -> None:
    """In a fresh interpreter the SDK takes longer to import than this 0.3 s timeout: the
    first request must still be answered (the clock starts once the client exists)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        FIRST_REQUEST,
        fake_openai.base_url,
        FakeOpenAI.API_KEY,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert out.decode().strip() == "ANSWER echo: hi [turns=1]", err.decode()
