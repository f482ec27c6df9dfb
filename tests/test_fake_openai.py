"""Fidelity checks of the fake OpenAI server itself, with raw HTTP requests."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.fakes.openai_api import FakeOpenAI

AUTH = {"Authorization": f"Bearer {FakeOpenAI.API_KEY}"}
BODY: dict[str, Any] = {
    "model": "some-model",
    "messages": [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second one"},
    ],
}
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
async def http(fake_openai: FakeOpenAI) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=fake_openai.base_url, timeout=5) as client:
        yield client


def sse_events(text: str) -> list[str]:
    """The `data:` payloads of an SSE body, checking every event is one `data:` line."""
    assert text.endswith("\n\n")
    events = text[:-2].split("\n\n")
    assert all(event.startswith("data: ") and "\n" not in event for event in events)
    return [event.removeprefix("data: ") for event in events]


async def test_completion_object(fake_openai: FakeOpenAI, http: httpx2.AsyncClient) -> None:
    response = await http.post("/chat/completions", json=BODY, headers=AUTH)

    assert response.status_code == 200
    assert response.headers["x-request-id"].startswith("req_")
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "some-model"
    assert isinstance(body["created"], int)
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "echo: second one [turns=3]"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert fake_openai.requests == [BODY]


async def test_streamed_chunks_and_done(http: httpx2.AsyncClient) -> None:
    response = await http.post("/chat/completions", json={**BODY, "stream": True}, headers=AUTH)

    assert response.headers["content-type"].startswith("text/event-stream")
    *payloads, done = sse_events(response.text)
    assert done == "[DONE]"
    chunks = [json.loads(p) for p in payloads]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["role"] == "assistant"
    assert deltas[-1] == {}
    assert [c["choices"][0]["finish_reason"] for c in chunks][-2:] == [None, "stop"]
    assert len(deltas) > 3
    assert "".join(d.get("content", "") for d in deltas) == "echo: second one [turns=3]"


async def test_stream_usage_chunk_has_no_choices(http: httpx2.AsyncClient) -> None:
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    response = await http.post("/chat/completions", json=body, headers=AUTH)

    *payloads, _ = sse_events(response.text)
    chunks = [json.loads(p) for p in payloads]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    assert all(c["usage"] is None for c in chunks[:-1])


async def test_max_tokens_truncates_with_finish_reason_length(http: httpx2.AsyncClient) -> None:
    response = await http.post("/chat/completions", json={**BODY, "max_tokens": 2}, headers=AUTH)

    [choice] = response.json()["choices"]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("echo: second", "length")


async def test_reply_fn_sees_the_messages(
    fake_openai: FakeOpenAI, http: httpx2.AsyncClient
) -> None:
    fake_openai.reply_fn = lambda messages: messages[0]["content"].upper()

    response = await http.post("/chat/completions", json=BODY, headers=AUTH)

    assert response.json()["choices"][0]["message"]["content"] == "BE TERSE."


async def test_missing_key(http: httpx2.AsyncClient) -> None:
    response = await http.post("/chat/completions", json=BODY)

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["message"].startswith("You didn't provide an API key.")
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", None, None)


async def test_wrong_key_is_masked(fake_openai: FakeOpenAI, http: httpx2.AsyncClient) -> None:
    key = "sk-wrong-key-0123456789-TOPSECRET"
    response = await http.post(
        "/chat/completions", json=BODY, headers={"Authorization": f"Bearer {key}"}
    )

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["message"].startswith("Incorrect API key provided: sk-*")
    assert "TOPSECRET" not in response.text
    assert (error["type"], error["param"], error["code"]) == (
        "invalid_request_error",
        None,
        "invalid_api_key",
    )
    assert fake_openai.requests == [BODY]


async def test_no_key_needed_when_not_required(
    fake_openai: FakeOpenAI, http: httpx2.AsyncClient
) -> None:
    fake_openai.require_key = False

    assert (await http.post("/chat/completions", json=BODY)).status_code == 200


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": BODY["messages"]}, None, None),
        ({"model": "m"}, "messages", "missing_required_parameter"),
        ({"model": "m", "messages": []}, "messages", "empty_array"),
        (
            {"model": "m", "messages": [{"role": "robot", "content": "x"}]},
            "messages[0].role",
            "invalid_value",
        ),
        ({**BODY, "max_tokens": 0}, "max_tokens", "integer_below_min_value"),
    ],
)
async def test_invalid_body(
    http: httpx2.AsyncClient, body: dict[str, Any], param: str | None, code: str | None
) -> None:
    response = await http.post("/chat/completions", json=body, headers=AUTH)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)


async def test_unparsable_json(http: httpx2.AsyncClient) -> None:
    response = await http.post("/chat/completions", content=b"{nope", headers=AUTH)

    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("We could not parse the JSON body")


async def test_injected_failures_then_success(
    fake_openai: FakeOpenAI, http: httpx2.AsyncClient
) -> None:
    fake_openai.fail_next(429, retry_after=0.25)
    fake_openai.fail_next(500, count=2)

    limited = await http.post("/chat/completions", json=BODY, headers=AUTH)
    assert limited.status_code == 429
    assert (limited.headers["retry-after"], limited.headers["retry-after-ms"]) == ("1", "250")
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    for _ in range(2):
        failed = await http.post("/chat/completions", json=BODY, headers=AUTH)
        assert failed.status_code == 500
        assert failed.json()["error"]["type"] == "server_error"
    assert (await http.post("/chat/completions", json=BODY, headers=AUTH)).status_code == 200
    assert len(fake_openai.requests) == 4


async def test_delay_before_first_byte(fake_openai: FakeOpenAI, http: httpx2.AsyncClient) -> None:
    fake_openai.delay = 0.2

    started = time.monotonic()
    await http.post("/chat/completions", json=BODY, headers=AUTH)

    assert time.monotonic() - started >= 0.2


async def test_chunk_delay_trickles_the_stream(
    fake_openai: FakeOpenAI, http: httpx2.AsyncClient
) -> None:
    fake_openai.chunk_delay = 0.1
    body = {**BODY, "stream": True}

    started = time.monotonic()
    response = await http.post("/chat/completions", json=body, headers=AUTH)
    elapsed = time.monotonic() - started

    chunks = [json.loads(p) for p in sse_events(response.text)[:-1]]
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks]
    assert pieces[1:-1] == ["echo:", " second", " one", " [turns=3]"]
    assert elapsed >= 4 * 0.1  # each of the four pieces waited its turn


async def test_models_and_unknown_paths(http: httpx2.AsyncClient) -> None:
    models = (await http.get("/models", headers=AUTH)).json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == [FakeOpenAI.MODEL]

    missing = await http.post("/completions/nope", json=BODY, headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Invalid URL (POST /v1/completions/nope)"


@pytest.mark.posix  # Windows' SIGTERM is TerminateProcess: no clean exit to test
async def test_standalone_prints_its_url_and_stops_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.openai_api",
        "--delay",
        "0",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 10)
        url = line.decode().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        async with httpx2.AsyncClient(timeout=5) as client:
            response = await client.post(f"{url}/chat/completions", json=BODY, headers=AUTH)
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0
    assert rest == b""
