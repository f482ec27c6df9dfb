"""Discord REST rate limits: header and 429 parsing, per-bucket waits, and the global gate.

Modelled on discord.py's `Ratelimit`: a bucket is keyed by route template and channel id until
Discord names the route's bucket (`X-RateLimit-Bucket`), then by that hash and the channel id.
The decisions (how long must a request wait) are synchronous methods taking `now`; the async
methods only sleep on them. Waits are bounded: given a deadline, a wait that would end after it
raises `WaitPastDeadline` at once; buckets left idle are forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType

Clock = Callable[[], float]
# A bucket unused for this long, with no request in it and its window over, is forgotten.
BUCKET_IDLE_SECONDS = 300.0


class WaitPastDeadline(Exception):
    """A rate-limit wait of `seconds` would end after the caller's deadline."""

    def __init__(self, seconds: float, scope: str) -> None:
        super().__init__(f"{scope} rate limit: {seconds:.2f} s to wait")
        self.seconds = seconds
        self.scope = scope


def check_deadline(seconds: float, now: float, deadline: float | None, scope: str) -> None:
    """Raise `WaitPastDeadline` if waiting `seconds` from `now` ends after `deadline`."""
    if deadline is not None and now + seconds > deadline:
        raise WaitPastDeadline(seconds, scope)


@dataclass(frozen=True)
class RateLimitHeaders:
    """The rate-limit headers of one response; a field is None when its header is absent."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None
    reset_after: float | None = None
    bucket: str | None = None
    is_global: bool = False
    scope: str | None = None
    retry_after: float | None = None

    def seconds_until_reset(self, wall_now: float) -> float | None:
        """Seconds until the bucket refills: `Reset-After`, else `Reset` minus the wall clock."""
        if self.reset_after is not None:
            return max(0.0, self.reset_after)
        if self.reset is not None:
            return max(0.0, self.reset - wall_now)
        return None


@dataclass(frozen=True)
class RateLimitedBody:
    """The JSON body of a 429 from Discord's API (Cloudflare's 429s have none)."""

    retry_after: float
    is_global: bool


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _integer(value: str | None) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def parse_rate_limit_headers(headers: Mapping[str, str]) -> RateLimitHeaders:
    """Read the `X-RateLimit-*` and `Retry-After` headers, whatever their case."""
    lowered = {name.lower(): value.strip() for name, value in headers.items()}
    return RateLimitHeaders(
        limit=_integer(lowered.get("x-ratelimit-limit")),
        remaining=_integer(lowered.get("x-ratelimit-remaining")),
        reset=_number(lowered.get("x-ratelimit-reset")),
        reset_after=_number(lowered.get("x-ratelimit-reset-after")),
        bucket=lowered.get("x-ratelimit-bucket") or None,
        is_global=lowered.get("x-ratelimit-global", "").lower() == "true",
        scope=lowered.get("x-ratelimit-scope") or None,
        retry_after=_number(lowered.get("retry-after")),
    )


def parse_rate_limited_body(body: object) -> RateLimitedBody | None:
    """Read a 429 JSON body; None when it is not Discord's `{retry_after, global}` object."""
    if not isinstance(body, dict):
        return None
    retry_after = body.get("retry_after")
    if isinstance(retry_after, bool) or not isinstance(retry_after, int | float):
        return None
    if not math.isfinite(retry_after):
        return None
    return RateLimitedBody(max(0.0, float(retry_after)), is_global=body.get("global") is True)


@dataclass(frozen=True)
class RateLimitWait:
    """What a 429 asks for: wait `seconds`, for every request when `is_global`."""

    seconds: float
    is_global: bool


def rate_limit_wait(
    body: RateLimitedBody | None, headers: RateLimitHeaders
) -> RateLimitWait | None:
    """How long a 429 asks to wait: the body's `retry_after`, else `Retry-After`, else None."""
    if body is not None:
        return RateLimitWait(body.retry_after, body.is_global or headers.is_global)
    if headers.retry_after is not None:
        return RateLimitWait(max(0.0, headers.retry_after), headers.is_global)
    return None


class Bucket:
    """One rate-limit bucket for one channel: limit, remaining and reset, like discord.py's.

    It starts at a limit of 1, so the first request on an unknown bucket goes alone and its
    response teaches the real limit. Use `async with bucket:` around a request; a request waits
    pre-emptively while no request is left in the current window.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.limit = 1
        self.remaining = 1
        self.outgoing = 0
        self.expires_at: float | None = None
        self.last_used = clock()
        self._updated_in_window = False
        self._clock = clock
        self._turn = asyncio.Lock()
        self._changed = asyncio.Event()

    def wait_time(self, now: float) -> float | None:
        """Seconds before a request may go (0.0: now); None: until an outgoing request answers."""
        self._refill_if_expired(now)
        if self.remaining > 0:
            return 0.0
        if self.expires_at is None:
            return None if self.outgoing else 0.0
        return self.expires_at - now

    def take(self) -> None:
        """Spend one request of the window."""
        self.remaining = max(0, self.remaining - 1)
        self.outgoing += 1

    def update(self, headers: RateLimitHeaders, now: float, wall_now: float) -> None:
        """Learn limit, remaining and reset from a response that is not a 429."""
        if headers.remaining is None:
            return
        self._refill_if_expired(now)
        self.limit = max(1, headers.limit or 1)
        # Requests still in flight have taken a request the server has not counted yet.
        in_flight = max(0, self.outgoing - 1)
        remaining = max(0, headers.remaining - in_flight)
        if self._updated_in_window:
            remaining = min(remaining, self.remaining)
        self.remaining = remaining
        self._updated_in_window = True
        reset_in = headers.seconds_until_reset(wall_now)
        if reset_in is not None:
            self.expires_at = now + reset_in
        self._notify()

    def exhaust(self, seconds: float, now: float) -> None:
        """Block the bucket for `seconds` (a 429 on it)."""
        self.remaining = 0
        self.expires_at = max(self.expires_at or now, now + seconds)
        self._updated_in_window = True
        self._notify()

    def release(self) -> None:
        """Finish one request; with no window known yet, its request is given back."""
        self.outgoing = max(0, self.outgoing - 1)
        if self.expires_at is None:
            self.remaining = max(self.remaining, self.limit - self.outgoing)
        self._notify()

    def is_idle(self, now: float) -> bool:
        """No request holds or awaits the bucket and its window is over: nothing to remember."""
        window_over = self.expires_at is None or now >= self.expires_at
        return self.outgoing == 0 and not self._turn.locked() and window_over

    async def acquire(self, deadline: float | None = None) -> None:
        """Wait, in arrival order, until the bucket has a request left, and take it.

        A known wait that would end after `deadline` (this bucket's clock) raises
        `WaitPastDeadline` at once; the caller bounds waiting for its turn.
        """
        async with self._turn:
            while (delay := self.wait_time(now := self._clock())) != 0.0:
                if delay is not None:
                    check_deadline(delay, now, deadline, "bucket")
                changed = self._changed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=delay)
            self.take()

    async def __aenter__(self) -> Bucket:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def _refill_if_expired(self, now: float) -> None:
        if self.expires_at is not None and now >= self.expires_at:
            self.remaining = max(0, self.limit - self.outgoing)
            self.expires_at = None
            self._updated_in_window = False

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


class GlobalGate:
    """Closed for every request while a global 429's `retry_after` runs."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._open_at = 0.0

    def close_for(self, seconds: float, now: float) -> None:
        """Keep every request waiting for `seconds` from `now`."""
        self._open_at = max(self._open_at, now + seconds)

    def wait_time(self, now: float) -> float:
        """Seconds until the gate opens; 0.0 when it is open."""
        return max(0.0, self._open_at - now)

    async def wait(self, deadline: float | None = None) -> None:
        """Return once the gate is open; raise `WaitPastDeadline` if that is after `deadline`."""
        # Loop: another global 429 may move the opening time while this one sleeps.
        while (delay := self.wait_time(now := self._clock())) > 0.0:
            check_deadline(delay, now, deadline, "global")
            await asyncio.sleep(delay)


def bucket_key(route: str, channel_id: str, bucket_hash: str | None) -> str:
    """The bucket's key: Discord's hash when known, else the route template; plus the channel."""
    return f"{bucket_hash or route}:{channel_id}"


class RateLimiter:
    """Every bucket of one token, and its global gate.

    Buckets idle for `idle_seconds` are forgotten, so memory stays bounded by the channels
    recently written to, not by every channel ever answered.
    """

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        idle_seconds: float = BUCKET_IDLE_SECONDS,
    ) -> None:
        self._clock = clock
        self._wall_clock = wall_clock
        self._idle_seconds = idle_seconds
        self._hashes: dict[str, str] = {}
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()  # least recently used first
        self.global_gate = GlobalGate(clock)

    def __len__(self) -> int:
        """The number of buckets remembered."""
        return len(self._buckets)

    def bucket(self, route: str, channel_id: str) -> Bucket:
        """The bucket a request on `route` (e.g. "POST /channels/{channel_id}/messages") uses."""
        now = self._clock()
        self._forget_idle(now)
        key = bucket_key(route, channel_id, self._hashes.get(route))
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(self._clock)
        else:
            self._buckets.move_to_end(key)
        bucket.last_used = now
        return bucket

    def _forget_idle(self, now: float) -> None:
        """Drop the buckets unused for `idle_seconds` that are idle; look at busy ones later."""
        while self._buckets:
            key, bucket = next(iter(self._buckets.items()))
            if now - bucket.last_used < self._idle_seconds:
                return
            if bucket.is_idle(now):
                del self._buckets[key]
            else:
                bucket.last_used = now
                self._buckets.move_to_end(key)

    def observe(
        self, route: str, channel_id: str, bucket: Bucket, headers: RateLimitHeaders, status: int
    ) -> None:
        """Learn from a response: the route's bucket hash, and the bucket's state unless a 429."""
        if headers.bucket is not None and self._hashes.get(route) != headers.bucket:
            self._buckets.pop(bucket_key(route, channel_id, self._hashes.get(route)), None)
            self._hashes[route] = headers.bucket
            # Routes Discord puts in one bucket share the first bucket object learned for it.
            self._buckets.setdefault(bucket_key(route, channel_id, headers.bucket), bucket)
        if status != 429:
            bucket.update(headers, self._clock(), self._wall_clock())

    def rate_limited(self, bucket: Bucket, wait: RateLimitWait) -> None:
        """Apply a 429: close the global gate, or block only this bucket."""
        if wait.is_global:
            self.global_gate.close_for(wait.seconds, self._clock())
        else:
            bucket.exhaust(wait.seconds, self._clock())
