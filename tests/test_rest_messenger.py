"""RestMessenger against the fake Discord over real sockets, and its rate limiter's decisions."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from server.delivery.splitter import discord_length, split_message
from server.messengers.base import MessengerError, MessengerUnavailable
from server.messengers.rest import (
    MESSAGES_ROUTE,
    TYPING_ROUTE,
    Outcome,
    RestMessenger,
    Verdict,
    backoff_delay,
    describe_rejection,
    judge_response,
)
from server.messengers.rest_rate_limit import (
    Bucket,
    GlobalGate,
    RateLimitedBody,
    RateLimiter,
    RateLimitHeaders,
    RateLimitWait,
    WaitPastDeadline,
    parse_rate_limit_headers,
    parse_rate_limited_body,
    rate_limit_wait,
)
from tests.fakes.discord_api import FakeDiscord, utf16_length

MESSAGES_PATH = "/api/v9/channels/{}/messages"


@pytest_asyncio.fixture
async def messenger(fake_discord: FakeDiscord) -> AsyncIterator[RestMessenger]:
    rest = RestMessenger(FakeDiscord.TOKEN, fake_discord.base_url, retry_backoff=0.01, timeout=2.0)
    yield rest
    await rest.aclose()


def statuses(fake: FakeDiscord, channel_id: str = "100") -> list[int]:
    return [r.status for r in fake.requests if r.path == MESSAGES_PATH.format(channel_id)]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- Sending ---------------------------------------------------------------------------------


async def test_send_posts_a_message_that_pings_nobody(
    messenger: RestMessenger, fake_discord: FakeDiscord
) -> None:
    await messenger.send("100", "hello there", nonce="nonce-1")
    [posted] = fake_discord.messages
    assert posted["channel_id"] == "100"
    assert posted["content"] == "hello there"
    assert posted["nonce"] == "nonce-1"
    assert posted["enforce_nonce"] is True
    assert posted["allowed_mentions"] == {"parse": [], "replied_user": False}
    assert "message_reference" not in posted
    [request] = fake_discord.requests
    assert request.headers["Authorization"] == FakeDiscord.TOKEN
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("discord-auto-reply/")


async def test_send_with_reply_to_references_the_message(
    messenger: RestMessenger, fake_discord: FakeDiscord
) -> None:
    await messenger.send("100", "sure", nonce="nonce-2", reply_to="555")
    [posted] = fake_discord.messages
    assert posted["message_reference"] == {"message_id": "555", "fail_if_not_exists": False}
    assert posted["type"] == 19


async def test_delivery_is_logged_briefly(
    messenger: RestMessenger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.messengers.rest")
    await messenger.send("100", "hello", nonce="n")
    assert "Delivered 5 characters to channel 100 (1 attempt)" in caplog.messages


async def test_typing_posts_one_pulse(messenger: RestMessenger, fake_discord: FakeDiscord) -> None:
    await messenger.typing("100")
    assert fake_discord.typing == ["100"]
    assert fake_discord.messages == []


async def test_typing_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="server.messengers.rest")
    rest = RestMessenger(FakeDiscord.TOKEN, f"http://127.0.0.1:{closed_port()}/api/v9")
    try:
        await rest.typing("100")
    finally:
        await rest.aclose()
    assert any("Typing indicator failed" in m and "channel 100" in m for m in caplog.messages)


# --- Rate limits -----------------------------------------------------------------------------


async def test_a_429_is_waited_out_and_retried_without_loss_or_duplicates(
    messenger: RestMessenger, fake_discord: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    fake_discord.fail_next(429, retry_after=0.15)
    started = time.monotonic()
    await messenger.send("100", "one", nonce="n1")
    await messenger.send("100", "two", nonce="n2")
    assert time.monotonic() - started >= 0.15
    assert statuses(fake_discord) == [429, 200, 200]
    assert [m["content"] for m in fake_discord.messages] == ["one", "two"]
    assert any(
        m.startswith("Rate limited by Discord (user) for channel 100; retrying in 0.15 s")
        for m in caplog.messages
    )


async def test_a_global_429_holds_every_channel(
    messenger: RestMessenger, fake_discord: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    fake_discord.fail_next(429, retry_after=0.3, is_global=True, channel_id="100")
    started = time.monotonic()
    first = asyncio.create_task(messenger.send("100", "first", nonce="n1"))
    for _ in range(400):  # until the messenger has seen the global 429
        if any("(global)" in message for message in caplog.messages):
            break
        await asyncio.sleep(0.005)
    await messenger.send("200", "other channel", nonce="n2")
    assert time.monotonic() - started >= 0.3
    await first
    assert statuses(fake_discord, "100") == [429, 200]
    assert statuses(fake_discord, "200") == [200]


async def test_an_exhausted_bucket_waits_pre_emptively(
    messenger: RestMessenger, fake_discord: FakeDiscord
) -> None:
    fake_discord.limit, fake_discord.window = 3, 0.4
    started = time.monotonic()
    for i in range(4):
        await messenger.send("100", f"part {i}", nonce=f"n{i}")
    assert time.monotonic() - started >= 0.3
    assert statuses(fake_discord) == [200] * 4
    assert [m["content"] for m in fake_discord.messages] == [f"part {i}" for i in range(4)]


async def test_an_exhausted_channel_does_not_block_another(
    messenger: RestMessenger, fake_discord: FakeDiscord
) -> None:
    fake_discord.limit, fake_discord.window = 2, 0.5
    for i in range(2):
        await messenger.send("100", f"a{i}", nonce=f"a{i}")
    waiting = asyncio.create_task(messenger.send("100", "a2", nonce="a2"))
    await messenger.send("200", "b0", nonce="b0")
    assert not waiting.done()
    await waiting
    assert [m["content"] for m in fake_discord.messages] == ["a0", "a1", "b0", "a2"]
    assert 429 not in statuses(fake_discord)


async def test_a_concurrent_burst_stays_within_the_bucket(
    messenger: RestMessenger, fake_discord: FakeDiscord
) -> None:
    fake_discord.limit, fake_discord.window = 3, 0.25
    contents = [f"burst {i}" for i in range(7)]
    await asyncio.gather(*(messenger.send("100", c, nonce=c[-1]) for c in contents))
    assert 429 not in statuses(fake_discord)
    assert sorted(m["content"] for m in fake_discord.messages) == contents


# --- Server errors and lost responses --------------------------------------------------------


async def test_5xx_is_retried_then_delivered(
    messenger: RestMessenger, fake_discord: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.messengers.rest")
    fake_discord.fail_next(503, 2)
    await messenger.send("100", "eventually", nonce="n")
    assert statuses(fake_discord) == [503, 503, 200]
    assert [m["content"] for m in fake_discord.messages] == ["eventually"]
    retries = [m for m in caplog.messages if "HTTP 503 from Discord for channel 100" in m]
    assert len(retries) == 2
    assert "Delivered 10 characters to channel 100 (3 attempts)" in caplog.messages


async def test_5xx_forever_gives_up_after_max_attempts(fake_discord: FakeDiscord) -> None:
    fake_discord.fail_next(500, 10)
    rest = RestMessenger(
        FakeDiscord.TOKEN, fake_discord.base_url, retry_backoff=0.01, max_attempts=3
    )
    try:
        with pytest.raises(
            MessengerError, match=r"channel 100 after 3 attempts: HTTP 500 from Discord"
        ):
            await rest.send("100", "never", nonce="n")
    finally:
        await rest.aclose()
    assert statuses(fake_discord) == [500, 500, 500]
    assert fake_discord.messages == []


async def test_an_unreachable_discord_gives_up_with_the_reason() -> None:
    base = f"http://127.0.0.1:{closed_port()}/api/v9"
    rest = RestMessenger(FakeDiscord.TOKEN, base, retry_backoff=0.01, max_attempts=2)
    try:
        with pytest.raises(
            MessengerError, match=r"channel 7 after 2 attempts: ConnectError reaching Discord"
        ):
            await rest.send("7", "hello", nonce="n")
    finally:
        await rest.aclose()


async def test_a_lost_response_is_retried_without_a_duplicate(fake_discord: FakeDiscord) -> None:
    rest = RestMessenger(FakeDiscord.TOKEN, fake_discord.base_url, retry_backoff=0.2, timeout=0.1)
    fake_discord.delay = 0.4  # the first answer comes after the client gave up on it
    try:
        sending = asyncio.create_task(rest.send("100", "only once", nonce="lost-1"))
        await fake_discord.wait_for_messages(1)
        fake_discord.delay = 0.0
        await sending
    finally:
        await rest.aclose()
    assert [m["content"] for m in fake_discord.messages] == ["only once"]
    await asyncio.sleep(0.3)  # let the first, late answer be recorded
    requests = [r for r in fake_discord.requests if r.path == MESSAGES_PATH.format("100")]
    assert [r.json["nonce"] for r in requests] == ["lost-1", "lost-1"]


# --- Refusals --------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def spacebar() -> AsyncIterator[FakeDiscord]:
    """The fake in Spacebar's flavour: UTF-16 lengths, 400 + code 40001 for a bad token."""
    fake = FakeDiscord(flavour="spacebar")
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.mark.parametrize(
    ("flavour", "why"), [("discord", "HTTP 401"), ("spacebar", "HTTP 400, code 40001")]
)
async def test_a_refused_token_stops_the_messenger_after_one_request(
    fake_discord: FakeDiscord,
    spacebar: FakeDiscord,
    caplog: pytest.LogCaptureFixture,
    flavour: str,
    why: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = spacebar if flavour == "spacebar" else fake_discord
    secret = "mfa.super-secret-user-token"
    rest = RestMessenger(secret, fake.base_url, retry_backoff=0.01)
    assert rest.available
    try:
        with pytest.raises(MessengerUnavailable) as first:
            await rest.send("100", "hi", nonce="n")
        assert not rest.available
        with pytest.raises(MessengerUnavailable) as second:
            await rest.send("200", "hi again", nonce="m")
        await rest.typing("100")
    finally:
        await rest.aclose()
    assert len(fake.requests) == 1
    assert why in str(first.value) and "channel 100" in str(first.value)
    assert "channel 200" in str(second.value)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"Discord rejected DISCORD_AUTHORIZATION ({why}); the REST messenger is stopped until "
        "you fix the token and restart"
    ]
    for text in (str(first.value), str(second.value), caplog.text, repr(rest)):
        assert secret not in text


async def test_a_working_messenger_is_available(messenger: RestMessenger) -> None:
    await messenger.send("100", "hi", nonce="n")
    assert messenger.available


async def test_the_token_never_reaches_errors_or_logs(
    fake_discord: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_discord.fail_next(502)
    fake_discord.fail_next(403)
    rest = RestMessenger(FakeDiscord.TOKEN, fake_discord.base_url, retry_backoff=0.01)
    try:
        with pytest.raises(MessengerError) as refused:
            await rest.send("100", "hi", nonce="n")
    finally:
        await rest.aclose()
    for text in (str(refused.value), caplog.text, repr(rest)):
        assert FakeDiscord.TOKEN not in text


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (403, "channel 100: HTTP 403, code 50013: Missing Permissions"),
        (404, "channel 100: HTTP 404, code 10003: Unknown Channel"),
    ],
)
async def test_a_refusal_is_not_retried_and_names_channel_and_code(
    messenger: RestMessenger, fake_discord: FakeDiscord, status: int, expected: str
) -> None:
    fake_discord.fail_next(status)
    with pytest.raises(MessengerError, match=expected):
        await messenger.send("100", "hi", nonce="n")
    assert statuses(fake_discord) == [status]


async def test_an_over_long_message_names_the_field_error(
    messenger: RestMessenger, fake_discord: FakeDiscord
) -> None:
    with pytest.raises(MessengerError) as refused:
        await messenger.send("100", "x" * 2001, nonce="n")
    assert str(refused.value) == (
        "Discord refused the request for channel 100: HTTP 400, code 50035: Invalid Form Body "
        "(content: Must be 2000 or fewer in length.)"
    )
    assert statuses(fake_discord) == [400]


# --- Length as Discord-compatible servers count it -------------------------------------------


async def test_an_emoji_heavy_reply_split_for_utf16_is_accepted_whole_by_spacebar(
    spacebar: FakeDiscord,
) -> None:
    """Spacebar refused a 1,998-character part of 3,322 UTF-16 units; the rest was lost."""
    prefix = "[auto-reply] "
    reply = " ".join(["🎉🙂 fine, thanks!"] * 300) + " " + "🚀" * 1500
    rest = RestMessenger(FakeDiscord.TOKEN, spacebar.base_url, retry_backoff=0.01)
    try:
        parts = split_message(reply, 2000 - discord_length(prefix))
        for index, part in enumerate(parts):
            await rest.send("100", prefix + part, nonce=f"n{index}")
    finally:
        await rest.aclose()
    assert statuses(spacebar) == [200] * len(parts)
    assert [m["content"] for m in spacebar.messages] == [prefix + part for part in parts]
    assert max(utf16_length(m["content"]) for m in spacebar.messages) <= 2000


async def test_a_part_over_2000_utf16_units_is_refused_by_spacebar_not_by_discord(
    spacebar: FakeDiscord, fake_discord: FakeDiscord
) -> None:
    content = "🙂" * 1998  # 1,998 code points, 3,996 UTF-16 units
    for fake in (spacebar, fake_discord):
        rest = RestMessenger(FakeDiscord.TOKEN, fake.base_url, retry_backoff=0.01)
        try:
            if fake is spacebar:
                with pytest.raises(MessengerError, match="Content length over max character"):
                    await rest.send("100", content, nonce="n")
            else:
                await rest.send("100", content, nonce="n")
        finally:
            await rest.aclose()
    assert statuses(spacebar) == [400]
    assert statuses(fake_discord) == [200]


# --- Deadlines: waits never deliver a reply later than it is wanted ---------------------------


def loop_time() -> float:
    return asyncio.get_running_loop().time()


@pytest.mark.parametrize("is_global", [False, True])
async def test_a_429_whose_wait_passes_the_deadline_gives_up_at_once(
    messenger: RestMessenger,
    fake_discord: FakeDiscord,
    caplog: pytest.LogCaptureFixture,
    is_global: bool,
) -> None:
    fake_discord.fail_next(429, retry_after=5.0, is_global=is_global)
    started = time.monotonic()
    with pytest.raises(MessengerError, match=r"would pass the reply's deadline") as given_up:
        await messenger.send("100", "late", nonce="n", deadline=loop_time() + 1.0)
    assert time.monotonic() - started < 1.0  # no sleeping until the deadline, let alone 5 s
    assert "channel 100" in str(given_up.value)
    scope = "global" if is_global else "user"
    assert f"Rate limited by Discord ({scope})" in str(given_up.value)
    assert statuses(fake_discord) == [429]
    assert fake_discord.messages == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [str(given_up.value)]


async def test_after_a_global_429_a_send_with_an_earlier_deadline_makes_no_request(
    messenger: RestMessenger, fake_discord: FakeDiscord
) -> None:
    fake_discord.fail_next(429, retry_after=5.0, is_global=True)
    with pytest.raises(MessengerError):
        await messenger.send("100", "first", nonce="n1", deadline=loop_time() + 1.0)
    with pytest.raises(MessengerError, match=r"Rate limited \(global\) for channel 200"):
        await messenger.send("200", "other", nonce="n2", deadline=loop_time() + 1.0)
    assert statuses(fake_discord, "200") == []


async def test_an_exhausted_bucket_past_the_deadline_gives_up_without_a_request(
    messenger: RestMessenger, fake_discord: FakeDiscord
) -> None:
    fake_discord.limit, fake_discord.window = 1, 5.0
    await messenger.send("100", "first", nonce="n1", deadline=loop_time() + 1.0)
    with pytest.raises(MessengerError, match=r"Rate limited \(bucket\) for channel 100"):
        await messenger.send("100", "second", nonce="n2", deadline=loop_time() + 1.0)
    assert statuses(fake_discord) == [200]


async def test_a_429_within_the_deadline_is_still_waited_out(
    messenger: RestMessenger, fake_discord: FakeDiscord
) -> None:
    fake_discord.fail_next(429, retry_after=0.1)
    await messenger.send("100", "in time", nonce="n", deadline=loop_time() + 5.0)
    assert statuses(fake_discord) == [429, 200]


async def test_a_deadline_in_the_past_posts_nothing(
    messenger: RestMessenger, fake_discord: FakeDiscord
) -> None:
    with pytest.raises(MessengerError, match=r"channel 100 now would pass the reply's deadline"):
        await messenger.send("100", "too late", nonce="n", deadline=loop_time() - 1.0)
    assert fake_discord.requests == []


async def test_a_deadline_already_passed_while_queued_gives_up(
    messenger: RestMessenger, fake_discord: FakeDiscord
) -> None:
    fake_discord.delay = 0.5  # the first request holds the bucket's only slot for 0.5 s
    first = asyncio.create_task(messenger.send("100", "slow", nonce="n1"))
    await asyncio.sleep(0.05)
    with pytest.raises(MessengerError, match="deadline"):
        await messenger.send("100", "queued", nonce="n2", deadline=loop_time() + 0.1)
    await first
    assert [m["content"] for m in fake_discord.messages] == ["slow"]


# --- Pure decisions --------------------------------------------------------------------------


def test_backoff_grows_like_discord_py() -> None:
    assert [backoff_delay(0.5, attempt) for attempt in range(4)] == [0.5, 1.5, 2.5, 3.5]


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (200, RateLimitHeaders(), {}, Verdict(Outcome.DELIVERED)),
        (204, RateLimitHeaders(), None, Verdict(Outcome.DELIVERED)),
        (401, RateLimitHeaders(), {"code": 0}, Verdict(Outcome.UNAUTHORIZED, "HTTP 401")),
        (
            400,
            RateLimitHeaders(),
            {"code": 40001, "message": "Unauthorized"},
            Verdict(Outcome.UNAUTHORIZED, "HTTP 400, code 40001"),
        ),
        (
            400,
            RateLimitHeaders(),
            {"code": 50035, "message": "Invalid Form Body"},
            Verdict(
                Outcome.REFUSED,
                "Discord refused the request for channel 9: HTTP 400, code 50035: "
                "Invalid Form Body",
            ),
        ),
        (
            429,
            RateLimitHeaders(scope="user"),
            {"retry_after": 0.5, "global": False},
            Verdict(
                Outcome.RETRY, "Rate limited by Discord (user)", 0.5, RateLimitWait(0.5, False)
            ),
        ),
        (
            429,
            RateLimitHeaders(retry_after=2),
            "<html>",
            Verdict(
                Outcome.RETRY, "Rate limited by Discord (bucket)", 2.0, RateLimitWait(2, False)
            ),
        ),
        (502, RateLimitHeaders(), "<html>", Verdict(Outcome.RETRY, "HTTP 502 from Discord", 3.0)),
        (524, RateLimitHeaders(), None, Verdict(Outcome.RETRY, "HTTP 524 from Discord", 3.0)),
    ],
)
def test_judge_response(
    status: int, headers: RateLimitHeaders, body: object, expected: Verdict
) -> None:
    assert judge_response("9", status, headers, body, backoff=3.0) == expected


def test_a_429_without_a_retry_time_is_not_retried() -> None:
    verdict = judge_response("9", 429, RateLimitHeaders(), "<html>banned</html>", backoff=1.0)
    assert verdict.outcome is Outcome.REFUSED
    assert "channel 9" in verdict.detail and "Cloudflare" in verdict.detail


def test_a_refusal_is_described() -> None:
    body = {"code": 50007, "message": "Cannot send messages to this user"}
    assert judge_response("9", 403, RateLimitHeaders(), body, backoff=1.0) == Verdict(
        Outcome.REFUSED,
        "Discord refused the request for channel 9: HTTP 403, code 50007: "
        "Cannot send messages to this user",
    )


def test_describe_rejection_digs_out_the_nested_field_error() -> None:
    body = {
        "code": 50035,
        "message": "Invalid Form Body",
        "errors": {"message_reference": {"_errors": [{"code": "X", "message": "Unknown message"}]}},
    }
    assert describe_rejection("9", 400, body).endswith(
        "HTTP 400, code 50035: Invalid Form Body (message_reference: Unknown message)"
    )
    assert (
        describe_rejection("9", 403, "<html>")
        == "Discord refused the request for channel 9: HTTP 403"
    )


def test_rate_limit_headers_are_read_whatever_their_case() -> None:
    headers = {
        "x-ratelimit-limit": "5",
        "X-RATELIMIT-REMAINING": "0",
        "X-RateLimit-Reset": "1470173023.123",
        "X-RateLimit-Reset-After": "1.234",
        "X-RateLimit-Bucket": "abcd1234",
        "X-RateLimit-Global": "true",
        "X-RateLimit-Scope": "user",
        "Retry-After": "2",
    }
    assert parse_rate_limit_headers(headers) == RateLimitHeaders(
        limit=5,
        remaining=0,
        reset=1470173023.123,
        reset_after=1.234,
        bucket="abcd1234",
        is_global=True,
        scope="user",
        retry_after=2.0,
    )
    assert parse_rate_limit_headers({"X-RateLimit-Remaining": "soon"}) == RateLimitHeaders()


def test_reset_after_is_preferred_to_the_wall_clock_reset() -> None:
    assert RateLimitHeaders(reset=105.0, reset_after=2.0).seconds_until_reset(100.0) == 2.0
    assert RateLimitHeaders(reset=105.0).seconds_until_reset(100.0) == 5.0
    assert RateLimitHeaders().seconds_until_reset(100.0) is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"message": "slow", "retry_after": 0.5, "global": True},
            RateLimitedBody(0.5, True),
        ),
        ({"retry_after": 3}, RateLimitedBody(3.0, False)),
        ({"retry_after": True}, None),
        ({"message": "no wait"}, None),
        ("<html>cloudflare</html>", None),
        (None, None),
    ],
)
def test_429_bodies(body: object, expected: RateLimitedBody | None) -> None:
    assert parse_rate_limited_body(body) == expected


def test_a_429_wait_comes_from_the_body_else_retry_after_else_nothing() -> None:
    body = RateLimitedBody(0.25, False)
    assert rate_limit_wait(body, RateLimitHeaders(retry_after=1, is_global=True)) == RateLimitWait(
        0.25, True
    )
    assert rate_limit_wait(None, RateLimitHeaders(retry_after=2)) == RateLimitWait(2.0, False)
    assert rate_limit_wait(None, RateLimitHeaders()) is None


def test_a_new_bucket_lets_one_request_learn_the_limit() -> None:
    bucket = Bucket()
    assert bucket.wait_time(0.0) == 0.0
    bucket.take()
    assert bucket.wait_time(0.0) is None  # until the first answer teaches the limit
    bucket.update(RateLimitHeaders(limit=5, remaining=4, reset_after=2.0), now=0.1, wall_now=0.0)
    bucket.release()
    assert (bucket.limit, bucket.remaining, bucket.expires_at) == (5, 4, 2.1)


def test_an_exhausted_bucket_waits_until_its_reset_then_refills() -> None:
    bucket = Bucket()
    bucket.take()
    bucket.update(RateLimitHeaders(limit=2, remaining=0, reset_after=1.5), now=10.0, wall_now=0.0)
    bucket.release()
    assert bucket.wait_time(10.5) == pytest.approx(1.0)
    assert bucket.wait_time(11.5) == 0.0
    assert bucket.remaining == 2


def test_in_flight_requests_count_against_what_discord_reports() -> None:
    bucket = Bucket()
    bucket.take()
    bucket.update(RateLimitHeaders(limit=5, remaining=4, reset_after=1.0), now=0.0, wall_now=0.0)
    bucket.release()
    for _ in range(3):
        bucket.take()
    # The first of three answers: Discord counted one, two are still on their way.
    bucket.update(RateLimitHeaders(limit=5, remaining=3, reset_after=0.9), now=0.1, wall_now=0.0)
    assert bucket.remaining == 1
    # A late answer cannot give back requests already spent in this window.
    bucket.update(RateLimitHeaders(limit=5, remaining=4, reset_after=0.9), now=0.1, wall_now=0.0)
    assert bucket.remaining == 1


def test_a_429_blocks_its_bucket_for_retry_after() -> None:
    bucket = Bucket()
    bucket.exhaust(0.5, now=3.0)
    assert bucket.wait_time(3.2) == pytest.approx(0.3)


def test_the_global_gate_stays_closed_for_the_longest_wait() -> None:
    gate = GlobalGate()
    assert gate.wait_time(0.0) == 0.0
    gate.close_for(2.0, now=1.0)
    gate.close_for(0.5, now=1.0)
    assert gate.wait_time(2.0) == 1.0
    assert gate.wait_time(4.0) == 0.0


def test_a_known_wait_past_the_deadline_raises_at_once() -> None:
    bucket = Bucket(clock=lambda: 10.0)
    bucket.exhaust(2.0, now=10.0)
    with pytest.raises(WaitPastDeadline) as caught:
        asyncio.run(bucket.acquire(deadline=11.0))
    assert (caught.value.seconds, caught.value.scope) == (2.0, "bucket")
    gate = GlobalGate(clock=lambda: 10.0)
    gate.close_for(3.0, now=10.0)
    with pytest.raises(WaitPastDeadline, match="global"):
        asyncio.run(gate.wait(deadline=12.0))


def test_idle_buckets_are_forgotten() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0], idle_seconds=60.0)
    for channel in range(1000):
        limiter.bucket(MESSAGES_ROUTE, str(channel))
    assert len(limiter) == 1000
    now[0] = 30.0
    recent = limiter.bucket(MESSAGES_ROUTE, "7")
    now[0] = 61.0
    limiter.bucket(MESSAGES_ROUTE, "new")
    assert len(limiter) == 2  # channel 7 (used at 30 s) and the new one
    assert limiter.bucket(MESSAGES_ROUTE, "7") is recent


def test_a_bucket_in_use_or_still_limited_is_not_forgotten() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0], idle_seconds=60.0)
    in_use = limiter.bucket(MESSAGES_ROUTE, "1")
    in_use.take()  # a request is in flight
    limited = limiter.bucket(MESSAGES_ROUTE, "2")
    limited.exhaust(500.0, now=0.0)  # a long 429 window is still running
    limiter.bucket(MESSAGES_ROUTE, "3")
    now[0] = 100.0
    assert limiter.bucket(MESSAGES_ROUTE, "4") is not None
    assert len(limiter) == 3  # only the idle bucket of channel 3 was forgotten
    assert limiter.bucket(MESSAGES_ROUTE, "1") is in_use
    assert limiter.bucket(MESSAGES_ROUTE, "2") is limited
    in_use.release()
    now[0] = 600.0
    limiter.bucket(MESSAGES_ROUTE, "5")
    assert len(limiter) == 1


async def test_the_messenger_forgets_idle_buckets_over_http(fake_discord: FakeDiscord) -> None:
    # Idle time long enough that 20 sends on a loaded machine stay within it.
    rest = RestMessenger(FakeDiscord.TOKEN, fake_discord.base_url, bucket_idle_seconds=1.5)
    fake_discord.window = 0.1
    try:
        for channel in range(20):
            await rest.send(str(channel), "hi", nonce=f"n{channel}")
        assert len(rest._limiter) == 20
        await asyncio.sleep(1.6)
        await rest.send("new", "hi", nonce="new")
        assert len(rest._limiter) == 1
    finally:
        await rest.aclose()


def test_buckets_are_per_channel_and_rekeyed_by_discords_hash() -> None:
    limiter = RateLimiter()
    first = limiter.bucket(MESSAGES_ROUTE, "100")
    assert limiter.bucket(MESSAGES_ROUTE, "100") is first
    assert limiter.bucket(MESSAGES_ROUTE, "200") is not first
    limiter.observe(MESSAGES_ROUTE, "100", first, RateLimitHeaders(bucket="h1"), status=200)
    assert limiter.bucket(MESSAGES_ROUTE, "100") is first
    # Another route Discord puts in the same bucket shares it once its hash is known.
    typing = limiter.bucket(TYPING_ROUTE, "100")
    limiter.observe(TYPING_ROUTE, "100", typing, RateLimitHeaders(bucket="h1"), status=204)
    assert limiter.bucket(TYPING_ROUTE, "100") is first
