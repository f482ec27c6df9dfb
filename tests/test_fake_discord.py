"""The fake Discord REST API answers like Discord: statuses, error bodies, headers, nonces."""

from __future__ import annotations

import asyncio
import math
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
import pytest_asyncio

from tests.fakes.discord_api import FakeDiscord

AUTH = {"Authorization": FakeDiscord.TOKEN}


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=5.0) as client:
        yield client


async def post_message(
    http: httpx2.AsyncClient,
    fake: FakeDiscord,
    channel_id: str = "100",
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx2.Response:
    return await http.post(
        f"{fake.base_url}/channels/{channel_id}/messages",
        json=body if body is not None else {"content": "hello"},
        headers=AUTH if headers is None else headers,
    )


async def test_a_message_is_created_and_returned(
    http: httpx2.AsyncClient, fake_discord: FakeDiscord
) -> None:
    body = {
        "content": "hello",
        "nonce": "n-1",
        "enforce_nonce": True,
        "allowed_mentions": {"parse": []},
    }
    response = await post_message(http, fake_discord, "100", body)
    assert response.status_code == 200
    message = response.json()
    assert message["id"].isdigit() and int(message["id"]) > 1 << 22
    assert message["channel_id"] == "100"
    assert message["content"] == "hello"
    assert message["nonce"] == "n-1"
    assert message["type"] == 0
    assert message["mentions"] == []
    assert message["author"]["id"] == FakeDiscord.USER_ID
    assert message["timestamp"].endswith("+00:00")
    [stored] = fake_discord.messages
    assert stored["id"] == message["id"]
    assert stored["allowed_mentions"] == {"parse": []}
    assert stored["enforce_nonce"] is True


async def test_a_reply_is_type_19_with_a_reference(
    http: httpx2.AsyncClient, fake_discord: FakeDiscord
) -> None:
    first = (await post_message(http, fake_discord)).json()
    body = {"content": "re", "message_reference": {"message_id": first["id"]}}
    reply = (await post_message(http, fake_discord, body=body)).json()
    assert reply["type"] == 19
    assert reply["message_reference"] == {"type": 0, "channel_id": "100", "message_id": first["id"]}
    assert reply["referenced_message"]["id"] == first["id"]
    assert fake_discord.messages[1]["message_reference"] == {"message_id": first["id"]}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "wrong"}, {"Authorization": "Bot x"}])
async def test_a_wrong_or_missing_token_is_401(
    http: httpx2.AsyncClient, fake_discord: FakeDiscord, headers: dict[str, str]
) -> None:
    response = await post_message(http, fake_discord, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"message": "401: Unauthorized", "code": 0}
    assert fake_discord.messages == []


async def test_a_body_that_is_not_json_is_50109(
    http: httpx2.AsyncClient, fake_discord: FakeDiscord
) -> None:
    response = await http.post(
        f"{fake_discord.base_url}/channels/100/messages",
        content=b"content=hello",
        headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.json() == {"message": "The request body contains invalid JSON.", "code": 50109}


async def test_over_long_content_and_nonce_are_50035_with_nested_errors(
    http: httpx2.AsyncClient, fake_discord: FakeDiscord
) -> None:
    response = await post_message(
        http, fake_discord, body={"content": "x" * 2001, "nonce": "n" * 26}
    )
    assert response.status_code == 400
    assert response.json() == {
        "message": "Invalid Form Body",
        "code": 50035,
        "errors": {
            "content": {
                "_errors": [
                    {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}
                ]
            },
            "nonce": {
                "_errors": [
                    {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 25 or fewer in length."}
                ]
            },
        },
    }
    ok = await post_message(http, fake_discord, body={"content": "x" * 2000, "nonce": "n" * 25})
    assert ok.status_code == 200


async def test_discord_counts_content_length_in_code_points(
    http: httpx2.AsyncClient, fake_discord: FakeDiscord
) -> None:
    emoji = await post_message(http, fake_discord, body={"content": "🙂" * 2000})  # 4,000 units
    assert emoji.status_code == 200
    over = await post_message(http, fake_discord, body={"content": "🙂" * 2001})
    assert over.status_code == 400
    assert over.json()["code"] == 50035


@pytest_asyncio.fixture
async def spacebar() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(flavour="spacebar")
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


async def test_spacebar_counts_content_length_in_utf16_units(
    http: httpx2.AsyncClient, spacebar: FakeDiscord
) -> None:
    refused = await post_message(http, spacebar, body={"content": "🙂" * 1001})  # 2,002 units
    assert refused.status_code == 400
    assert refused.json() == {
        "code": 400,
        "message": "Content length over max character limit",
        "errors": None,
        "data": None,
    }
    assert (await post_message(http, spacebar, body={"content": "🙂" * 1000})).status_code == 200
    assert (await post_message(http, spacebar, body={"content": "x" * 2000})).status_code == 200
    assert [len(m["content"]) for m in spacebar.messages] == [1000, 2000]


async def test_spacebar_refuses_a_wrong_token_with_400_and_code_40001(
    http: httpx2.AsyncClient, spacebar: FakeDiscord
) -> None:
    wrong = await post_message(http, spacebar, headers={"Authorization": "wrong"})
    assert wrong.status_code == 400
    assert wrong.json()["code"] == 40001
    assert wrong.json()["message"].startswith("Unauthorized")
    typing = await http.post(
        f"{spacebar.base_url}/channels/100/typing", headers={"Authorization": "wrong"}
    )
    assert (typing.status_code, typing.json()["code"]) == (400, 40001)
    missing = await post_message(http, spacebar, headers={})
    assert missing.status_code == 401
    assert spacebar.messages == []


@pytest.mark.parametrize("body", [{"content": ""}, {"content": "  \n"}, {"nonce": "1"}])
async def test_an_empty_message_is_50006(
    http: httpx2.AsyncClient, fake_discord: FakeDiscord, body: dict[str, Any]
) -> None:
    response = await post_message(http, fake_discord, body=body)
    assert response.status_code == 400
    assert response.json() == {"message": "Cannot send an empty message", "code": 50006}


async def test_enforce_nonce_returns_the_earlier_message(
    http: httpx2.AsyncClient, fake_discord: FakeDiscord
) -> None:
    body = {"content": "once", "nonce": "same", "enforce_nonce": True}
    first = await post_message(http, fake_discord, body=body)
    again = await post_message(http, fake_discord, body=body)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert len(fake_discord.messages) == 1
    # Without enforce_nonce, Discord posts the same nonce twice.
    plain = {"content": "twice", "nonce": "other"}
    await post_message(http, fake_discord, body=plain)
    await post_message(http, fake_discord, body=plain)
    assert len(fake_discord.messages) == 3


async def test_every_answer_has_rate_limit_headers_per_channel(
    http: httpx2.AsyncClient, fake_discord: FakeDiscord
) -> None:
    first = await post_message(http, fake_discord, "100")
    second = await post_message(http, fake_discord, "100")
    other = await post_message(http, fake_discord, "200")
    assert first.headers["X-RateLimit-Limit"] == "5"
    assert first.headers["x-ratelimit-remaining"] == "4"
    assert second.headers["X-RateLimit-Remaining"] == "3"
    assert other.headers["X-RateLimit-Remaining"] == "4"
    assert first.headers["X-RateLimit-Bucket"] == other.headers["X-RateLimit-Bucket"]
    assert 0 < float(first.headers["X-RateLimit-Reset-After"]) <= 5.0
    assert abs(float(first.headers["X-RateLimit-Reset"]) - (time.time() + 5.0)) < 1.0


async def test_exceeding_the_bucket_is_a_429_until_the_window_ends(
    http: httpx2.AsyncClient, fake_discord: FakeDiscord
) -> None:
    fake_discord.limit, fake_discord.window = 2, 0.3
    assert (await post_message(http, fake_discord)).status_code == 200
    assert (await post_message(http, fake_discord)).status_code == 200
    limited = await post_message(http, fake_discord)
    assert limited.status_code == 429
    body = limited.json()
    assert body["message"] == "You are being rate limited."
    assert body["global"] is False
    assert 0 < body["retry_after"] <= 0.3
    assert limited.headers["Retry-After"] == str(math.ceil(body["retry_after"]))
    assert limited.headers["X-RateLimit-Scope"] == "user"
    assert limited.headers["Via"] == "1.1 google"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert "X-RateLimit-Global" not in limited.headers
    assert (await post_message(http, fake_discord, "200")).status_code == 200
    await asyncio.sleep(body["retry_after"])
    assert (await post_message(http, fake_discord)).status_code == 200
    assert len(fake_discord.messages) == 4


async def test_typing_is_204_and_recorded(
    http: httpx2.AsyncClient, fake_discord: FakeDiscord
) -> None:
    response = await http.post(f"{fake_discord.base_url}/channels/300/typing", headers=AUTH)
    assert response.status_code == 204
    assert "X-RateLimit-Bucket" in response.headers
    assert fake_discord.typing == ["300"]
    unauthorized = await http.post(f"{fake_discord.base_url}/channels/300/typing")
    assert unauthorized.status_code == 401


async def test_current_user_is_the_token_owner_with_private_fields(
    http: httpx2.AsyncClient, fake_discord: FakeDiscord
) -> None:
    response = await http.get(f"{fake_discord.base_url}/users/@me", headers=AUTH)
    assert response.status_code == 200
    user = response.json()
    assert (user["id"], user["username"], user["global_name"]) == (
        FakeDiscord.USER_ID,
        "fake-user",
        "Fake User",
    )
    assert user["discriminator"] == "0"
    assert {"email", "verified", "mfa_enabled", "locale", "premium_type"} <= user.keys()
    assert response.headers["X-RateLimit-Remaining"] == "4"
    message = (await post_message(http, fake_discord)).json()
    assert message["author"] == {key: user[key] for key in message["author"]}
    assert (
        response.headers["X-RateLimit-Bucket"]
        != ((await post_message(http, fake_discord)).headers["X-RateLimit-Bucket"])
    )


@pytest.mark.parametrize("headers", [{}, {"Authorization": "wrong"}])
async def test_current_user_with_a_wrong_or_missing_token_is_401(
    http: httpx2.AsyncClient, fake_discord: FakeDiscord, headers: dict[str, str]
) -> None:
    response = await http.get(f"{fake_discord.base_url}/users/@me", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"message": "401: Unauthorized", "code": 0}
    assert [r.path for r in fake_discord.requests] == ["/api/v9/users/@me"]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, {"message": "500: Internal Server Error", "code": 0}),
        (502, {"message": "502: Bad Gateway", "code": 0}),
        (403, {"message": "Missing Permissions", "code": 50013}),
        (404, {"message": "Unknown Channel", "code": 10003}),
        (401, {"message": "401: Unauthorized", "code": 0}),
    ],
)
async def test_injected_failures_have_discords_bodies(
    http: httpx2.AsyncClient, fake_discord: FakeDiscord, status: int, body: dict[str, Any]
) -> None:
    fake_discord.fail_next(status, 2)
    for _ in range(2):
        response = await post_message(http, fake_discord)
        assert (response.status_code, response.json()) == (status, body)
    assert (await post_message(http, fake_discord)).status_code == 200
    assert len(fake_discord.messages) == 1


async def test_an_injected_global_429(http: httpx2.AsyncClient, fake_discord: FakeDiscord) -> None:
    fake_discord.fail_next(429, retry_after=1.5, is_global=True)
    response = await post_message(http, fake_discord)
    assert response.status_code == 429
    assert response.json() == {
        "message": "You are being rate limited.",
        "retry_after": 1.5,
        "global": True,
    }
    assert response.headers["X-RateLimit-Global"] == "true"
    assert response.headers["X-RateLimit-Scope"] == "global"
    assert response.headers["Retry-After"] == "2"
    assert response.headers["Via"] == "1.1 google"


async def test_an_injected_failure_can_target_one_channel(
    http: httpx2.AsyncClient, fake_discord: FakeDiscord
) -> None:
    fake_discord.fail_next(403, channel_id="200")
    assert (await post_message(http, fake_discord, "100")).status_code == 200
    assert (await post_message(http, fake_discord, "200")).status_code == 403
    assert (await post_message(http, fake_discord, "200")).status_code == 200


async def test_requests_are_recorded_and_delay_slows_answers(
    http: httpx2.AsyncClient, fake_discord: FakeDiscord
) -> None:
    fake_discord.delay = 0.2
    started = time.monotonic()
    await post_message(http, fake_discord, body={"content": "slow"})
    assert time.monotonic() - started >= 0.2
    [request] = fake_discord.requests
    assert (request.method, request.path, request.status) == (
        "POST",
        "/api/v9/channels/100/messages",
        200,
    )
    assert request.json == {"content": "slow"}
    assert request.headers["Authorization"] == FakeDiscord.TOKEN


async def test_unknown_routes_are_a_json_404(
    http: httpx2.AsyncClient, fake_discord: FakeDiscord
) -> None:
    response = await http.get(f"{fake_discord.base_url}/users/@me/guilds", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {"message": "404: Not Found", "code": 0}


async def test_wait_for_messages_times_out_with_a_count(fake_discord: FakeDiscord) -> None:
    with pytest.raises(TimeoutError, match=r"expected 1 messages within 0\.05 s, got 0"):
        await fake_discord.wait_for_messages(1, timeout=0.05)


@pytest.mark.posix  # Windows' SIGTERM is TerminateProcess: no clean exit to test
async def test_it_runs_standalone_until_sigterm(http: httpx2.AsyncClient) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.discord_api", stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        assert line.startswith("http://127.0.0.1:") and line.endswith("/api/v9\n")
        response = await http.post(
            f"{line.strip()}/channels/1/messages", json={"content": "hi"}, headers=AUTH
        )
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
