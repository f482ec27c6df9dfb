"""Posts replies through Discord's REST API with the account's own token."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import httpx2

from server import __version__
from server.messengers.base import Messenger, MessengerError, MessengerUnavailable
from server.messengers.rest_rate_limit import (
    BUCKET_IDLE_SECONDS,
    Bucket,
    RateLimiter,
    RateLimitHeaders,
    RateLimitWait,
    WaitPastDeadline,
    parse_rate_limit_headers,
    parse_rate_limited_body,
    rate_limit_wait,
)

log = logging.getLogger(__name__)

MESSAGES_ROUTE = "POST /channels/{channel_id}/messages"
TYPING_ROUTE = "POST /channels/{channel_id}/typing"
RETRIED_STATUSES = frozenset({500, 502, 503, 504, 524})
USER_AGENT = f"discord-auto-reply/{__version__} (httpx2)"
# Discord-compatible servers such as Spacebar refuse a bad token with 400 and this code.
UNAUTHORIZED_CODE = 40001
# Discord takes about 50 requests a second from an account; ten connections carry that even at
# a 200 ms round trip. A small pool also keeps httpx cheap: before each request it probes every
# idle connection it holds (a poll() each).
CONNECTION_LIMITS = httpx2.Limits(max_connections=10, max_keepalive_connections=10)


def stopped_message(why: str) -> str:
    """The one error logged when Discord refuses the token; `why` names status and code."""
    return (
        f"Discord rejected DISCORD_AUTHORIZATION ({why}); the REST messenger is stopped until "
        "you fix the token and restart"
    )


def message_body(content: str, nonce: str, reply_to: str | None) -> dict[str, Any]:
    """The create-message JSON: pings nobody; a retry with the same nonce cannot post twice."""
    body: dict[str, Any] = {
        "content": content,
        "nonce": nonce,
        "enforce_nonce": True,
        "allowed_mentions": {"parse": [], "replied_user": False},
    }
    if reply_to is not None:
        body["message_reference"] = {"message_id": reply_to, "fail_if_not_exists": False}
    return body


def backoff_delay(retry_backoff: float, attempt: int) -> float:
    """The wait after failed attempt `attempt` (0-based): 1, 3, 5, 7… times `retry_backoff`."""
    return retry_backoff * (1 + 2 * attempt)


def first_field_error(errors: object, path: str = "") -> str | None:
    """The first `_errors[].message` in Discord's nested `errors`, prefixed by its field path."""
    if not isinstance(errors, dict):
        return None
    for key, value in errors.items():
        if key == "_errors" and isinstance(value, list):
            for error in value:
                if isinstance(error, dict) and isinstance(error.get("message"), str):
                    return f"{path}: {error['message']}" if path else error["message"]
            continue
        found = first_field_error(value, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def describe_rejection(channel_id: str, status: int, body: object) -> str:
    """Name the channel, the HTTP status and Discord's error code and message."""
    text = f"Discord refused the request for channel {channel_id}: HTTP {status}"
    if not isinstance(body, dict):
        return text
    code, message = body.get("code"), body.get("message")
    if code is not None:
        text += f", code {code}"
    if isinstance(message, str) and message:
        text += f": {message}"
    detail = first_field_error(body.get("errors"))
    if detail is not None:
        text += f" ({detail})"
    return text


class Outcome(Enum):
    """How one attempt ended."""

    DELIVERED = "delivered"
    RETRY = "retry"
    UNAUTHORIZED = "unauthorized"
    REFUSED = "refused"


@dataclass(frozen=True)
class Verdict:
    """What to do after one attempt.

    `detail` is the cause of a RETRY or the full error text of a REFUSED; `wait` is the pause
    before a RETRY; `rate_limit` is a 429's wait, for the rate limiter.
    """

    outcome: Outcome
    detail: str = ""
    wait: float = 0.0
    rate_limit: RateLimitWait | None = None


def judge_response(
    channel_id: str, status: int, headers: RateLimitHeaders, body: object, backoff: float
) -> Verdict:
    """Decide from one answer: delivered, retry (429: its wait; 5xx: `backoff`), or give up.

    A 401, or any refusal with code 40001 (Spacebar answers 400), means the token is bad.
    """
    if 200 <= status < 300:
        return Verdict(Outcome.DELIVERED)
    code = body.get("code") if isinstance(body, dict) else None
    if status == 401:
        return Verdict(Outcome.UNAUTHORIZED, "HTTP 401")
    if code == UNAUTHORIZED_CODE and not isinstance(code, bool):
        return Verdict(Outcome.UNAUTHORIZED, f"HTTP {status}, code {UNAUTHORIZED_CODE}")
    if status == 429:
        wait = rate_limit_wait(parse_rate_limited_body(body), headers)
        if wait is None:
            return Verdict(
                Outcome.REFUSED,
                f"Discord answered 429 without a retry time for channel {channel_id} "
                "(a Cloudflare block?); not retrying",
            )
        scope = "global" if wait.is_global else headers.scope or "bucket"
        return Verdict(Outcome.RETRY, f"Rate limited by Discord ({scope})", wait.seconds, wait)
    if status in RETRIED_STATUSES:
        return Verdict(Outcome.RETRY, f"HTTP {status} from Discord", backoff)
    return Verdict(Outcome.REFUSED, describe_rejection(channel_id, status, body))


def _json(response: httpx2.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _attempts(count: int) -> str:
    return f"{count} attempt{'' if count == 1 else 's'}"


class RestMessenger(Messenger):
    """Sends as the account owner over Discord's REST API, within Discord's rate limits.

    After a refused token (401, or 40001) it stops for good: Discord bans IPs that keep sending
    invalid requests; `available` turns False and every send raises `MessengerUnavailable`.
    """

    name = "rest"

    def __init__(
        self,
        token: str,
        api_base: str = "https://discord.com/api/v9",
        *,
        retry_backoff: float = 1.0,
        max_attempts: int = 5,
        timeout: float = 15.0,
        bucket_idle_seconds: float = BUCKET_IDLE_SECONDS,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._api_base = api_base.rstrip("/")
        self._retry_backoff = retry_backoff
        self._max_attempts = max_attempts
        self._limiter = RateLimiter(idle_seconds=bucket_idle_seconds)
        self._stopped = False
        self._stopped_why = ""
        self._client = httpx2.AsyncClient(
            headers={"Authorization": token, "User-Agent": USER_AGENT},
            timeout=timeout,
            limits=CONNECTION_LIMITS,
        )

    def __repr__(self) -> str:
        return f"RestMessenger(api_base={self._api_base!r}, stopped={self._stopped})"

    @property
    def available(self) -> bool:
        """False once Discord has refused the token."""
        return not self._stopped

    async def send(
        self,
        channel_id: str,
        content: str,
        *,
        nonce: str,
        reply_to: str | None = None,
        deadline: float | None = None,
    ) -> None:
        """Post `content` to `channel_id`, retrying 429s, 5xx and lost connections.

        A wait (rate limit or retry) that would end after `deadline` (loop time) gives up at
        once with `MessengerError`; a POST already sent is not cut short.
        """
        if deadline is not None and asyncio.get_running_loop().time() >= deadline:
            raise self._too_late(f"Posting to channel {channel_id} now", deadline)
        body = message_body(content, nonce, reply_to)
        attempts = await self._request(
            MESSAGES_ROUTE, channel_id, body, self._max_attempts, deadline
        )
        log.info(
            "Delivered %d characters to channel %s (%s)",
            len(content),
            channel_id,
            _attempts(attempts),
        )

    async def typing(self, channel_id: str) -> None:
        """Show the typing indicator once; a failure is only logged at debug level."""
        if self._stopped:
            return
        try:
            await self._request(TYPING_ROUTE, channel_id, None, max_attempts=1)
        except MessengerError as exc:
            log.debug("Typing indicator failed: %s", exc)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()

    async def _request(
        self,
        route: str,
        channel_id: str,
        body: dict[str, Any] | None,
        max_attempts: int,
        deadline: float | None = None,
    ) -> int:
        """POST on `route` within the rate limits; return the attempts it took, or raise."""
        self._raise_if_stopped(channel_id)
        bucket = self._limiter.bucket(route, channel_id)
        # Like discord.py, one bucket slot is held across the retries of one request.
        await self._rate_limit_wait(bucket.acquire(deadline), channel_id, deadline)
        try:
            for attempt in range(1, max_attempts + 1):
                self._raise_if_stopped(channel_id)
                gate = self._limiter.global_gate.wait(deadline)
                await self._rate_limit_wait(gate, channel_id, deadline)
                backoff = backoff_delay(self._retry_backoff, attempt - 1)
                verdict = await self._attempt(route, channel_id, body, bucket, backoff=backoff)
                if verdict.outcome is Outcome.DELIVERED:
                    return attempt
                if verdict.outcome is Outcome.UNAUTHORIZED:
                    self._stop(verdict.detail)
                    raise MessengerUnavailable(
                        f"{stopped_message(verdict.detail)} (channel {channel_id})"
                    )
                if verdict.outcome is Outcome.REFUSED:
                    raise MessengerError(verdict.detail)
                if attempt == max_attempts:
                    raise MessengerError(
                        f"Could not post to channel {channel_id} after {_attempts(attempt)}: "
                        f"{verdict.detail}"
                    )
                self._give_up_if_too_late(verdict, channel_id, deadline)
                log.warning(
                    "%s for channel %s; retrying in %.2f s (attempt %d of %d)",
                    verdict.detail,
                    channel_id,
                    verdict.wait,
                    attempt,
                    max_attempts,
                )
                await asyncio.sleep(verdict.wait)
        finally:
            bucket.release()
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _rate_limit_wait(
        self, waiting: Awaitable[None], channel_id: str, deadline: float | None
    ) -> None:
        """Await a bucket or the global gate, but not past `deadline`."""
        try:
            async with asyncio.timeout_at(deadline):
                await waiting
        except WaitPastDeadline as exc:
            raise self._too_late(
                f"Rate limited ({exc.scope}) for channel {channel_id}: waiting {exc.seconds:.2f} s",
                deadline,
            ) from None
        except TimeoutError:
            raise self._too_late(
                f"Still waiting for the rate limit of channel {channel_id}", deadline
            ) from None

    def _give_up_if_too_late(
        self, verdict: Verdict, channel_id: str, deadline: float | None
    ) -> None:
        """Raise instead of a retry whose wait would deliver after `deadline`."""
        if deadline is not None and asyncio.get_running_loop().time() + verdict.wait > deadline:
            raise self._too_late(
                f"{verdict.detail} for channel {channel_id}: retrying in {verdict.wait:.2f} s",
                deadline,
            )

    def _too_late(self, what: str, deadline: float | None) -> MessengerError:
        """Log and build the error for a wait that would end after the reply's deadline."""
        left = 0.0 if deadline is None else deadline - asyncio.get_running_loop().time()
        text = f"{what} would pass the reply's deadline ({max(0.0, left):.2f} s left); giving up"
        log.warning("%s", text)
        return MessengerError(text)

    async def _attempt(
        self,
        route: str,
        channel_id: str,
        body: dict[str, Any] | None,
        bucket: Bucket,
        *,
        backoff: float,
    ) -> Verdict:
        """One POST; the limiter learns from its answer."""
        url = self._api_base + route.removeprefix("POST ").format(channel_id=channel_id)
        try:
            response = await self._client.post(url, json=body)
        except httpx2.TransportError as exc:
            return Verdict(Outcome.RETRY, f"{type(exc).__name__} reaching Discord", backoff)
        headers = parse_rate_limit_headers(response.headers)
        self._limiter.observe(route, channel_id, bucket, headers, response.status_code)
        verdict = judge_response(
            channel_id, response.status_code, headers, _json(response), backoff
        )
        if verdict.rate_limit is not None:
            self._limiter.rate_limited(bucket, verdict.rate_limit)
        return verdict

    def _stop(self, why: str) -> None:
        if not self._stopped:
            self._stopped = True
            self._stopped_why = why
            log.error("%s", stopped_message(why))

    def _raise_if_stopped(self, channel_id: str) -> None:
        if self._stopped:
            raise MessengerUnavailable(
                f"{stopped_message(self._stopped_why)}; not posting to channel {channel_id}"
            )
