"""When the relay must not speak for the owner: pure decisions over state and the clock.

The rules follow RFC 3834's for automatic replies, applied to chat: step aside when the owner
writes, never answer an automatic message, and answer any one person only so often.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from server.config_file import MAX_REPLY_AFTER_SECONDS, ReplyWhen
from server.conversation.memory import PairKey
from server.conversation.rules import Rule
from server.owner.away_schedule import NO_SCHEDULE, Active, AwaySchedule
from server.transport.protocol import IncomingMessage

MINUTE, HOUR = 60.0, 3600.0
REMEMBERED_SECONDS = HOUR
"""How far back a reply still counts: the longest limit window, and the repeat window."""
REMEMBERED_REPLIES = 20
"""Recent replies kept per channel, to recognise a message that repeats one of them."""
REPEAT_WINDOW_SECONDS = REMEMBERED_SECONDS
SWEEP_SECONDS = MINUTE
"""How often (by the clock the policy is given) state that no decision can use is dropped."""
DISCLOSURE_PREFIXES = (
    "[auto-reply]",
    "[autoreply]",
    "[auto reply]",
    "[automated]",
    "[automatic reply]",
    "[bot]",
    "auto-reply:",
    "automatic reply:",
)
"""Openings that say a message was written by a machine (another relay, an away bot)."""
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Decision:
    """Whether to reply now and, if not, why (shown in the logs); `quiet` once already said."""

    reply: bool
    reason: str = ""
    quiet: bool = False


REPLY = Decision(True)

DiscordStatus = Literal["online", "idle", "dnd", "invisible", "offline"]
AwaySwitch = Literal["auto", "on", "off"]
AWAY_STATUSES: frozenset[str] = frozenset({"idle", "dnd", "invisible", "offline"})
"""Discord statuses that mean the owner is not at the keyboard (idle is set by Discord itself)."""


@dataclass
class Presence:
    """Whether the owner is away: the switch if set by hand, else their last reported Discord
    status or the away hours (`schedule`, AWAY_SCHEDULE) at the time.

    `status` is None until the plugin reports one, which counts as present: a fresh start never
    answers someone the owner is talking to (unless inside the away hours).
    """

    status: DiscordStatus | None = None
    switch: AwaySwitch = "auto"
    schedule: AwaySchedule = NO_SCHEDULE
    clock: Callable[[], float] = field(default=time.time, repr=False)

    @property
    def away(self) -> bool:
        """True if the owner is away now (the global away hours)."""
        return self.away_at(self.clock())

    def away_at(self, now: float, schedule: AwaySchedule | None = None) -> bool:
        """Away at `now`: the switch if set, else the Discord status or `schedule` (a rule's own;
        None: AWAY_SCHEDULE)."""
        if self.switch != "auto":
            return self.switch == "on"
        return self.status in AWAY_STATUSES or self.scheduled(now, schedule) is not None

    def scheduled(self, now: float, schedule: AwaySchedule | None = None) -> Active | None:
        """The away window `now` falls in (`schedule`, else AWAY_SCHEDULE), whatever the switch."""
        return (self.schedule if schedule is None else schedule).active(now)

    def allows(
        self,
        reply_when: ReplyWhen,
        schedule: AwaySchedule | None = None,
        now: float | None = None,
    ) -> Decision:
        """May the relay answer for the owner under `reply_when` ("away" or "always"), with
        `schedule` as the away hours (None: AWAY_SCHEDULE), at `now` (None: the clock)?"""
        if reply_when == "always" or self.away_at(self.clock() if now is None else now, schedule):
            return REPLY
        if self.switch == "off":
            return Decision(False, "the owner is present (away mode switched off)")
        status = self.status or "not reported yet"
        return Decision(False, f"the owner is present (Discord status {status})")


def _normal(text: str) -> str:
    return _SPACES.sub(" ", text).strip().casefold()


class ReplyPolicy:
    """Owner takeovers per channel, whether the owner is away, per-pair reply limits, and
    automatic-message detection.

    State is kept per pair and per channel only while it can change a decision: every method
    given `now` first forgets, at most once per `SWEEP_SECONDS`, takeovers that have ended and
    replies older than every window, so months over many pairs hold only the last hour's.
    """

    def __init__(
        self,
        *,
        takeover_seconds: float,
        per_minute: int,
        per_hour: int,
        reply_prefix: str = "",
        schedule: AwaySchedule = NO_SCHEDULE,
    ) -> None:
        self._takeover_seconds = takeover_seconds
        self._limits = ((per_minute, MINUTE, "minute"), (per_hour, HOUR, "hour"))
        own = _normal(reply_prefix)
        self._prefixes = tuple({*DISCLOSURE_PREFIXES, *([own] if own else [])})
        self._takeovers: dict[str, float] = {}
        self._replies: dict[PairKey, deque[float]] = {}
        self._limit_said: dict[PairKey, float] = {}
        self._recent_texts: dict[str, deque[tuple[float, str]]] = {}
        self._owner_wrote: dict[str, float] = {}
        self._swept_at = -math.inf
        self.presence = Presence(schedule=schedule)

    def restore(self, takeovers: dict[str, float]) -> None:
        """Take up takeovers that were in force before a restart (channel → end, Unix time)."""
        for channel, until in takeovers.items():
            self._takeovers[channel] = max(until, self._takeovers.get(channel, 0.0))

    def restore_replies(self, replies: Iterable[tuple[PairKey, str, float]]) -> None:
        """Count the replies made before a restart, oldest first (pair, text, Unix time), so a
        restart resets neither the reply limits nor the check for repeats of our replies."""
        for pair, text, at in replies:
            self.replied(pair, text, at)

    def owner_wrote(self, channel: str, now: float) -> float:
        """The owner wrote in `channel`: start or extend the takeover; returns its end."""
        self._forget_old(now)
        until = max(now + self._takeover_seconds, self._takeovers.get(channel, 0.0))
        self._takeovers[channel] = until
        return until

    def owner_seen(self, channel: str, now: float) -> None:
        """The owner wrote in `channel` (whether or not that starts a takeover)."""
        self._forget_old(now)
        self._owner_wrote[channel] = now

    def answered_first(self, channel: str, since: float) -> Decision:
        """Did the owner write in `channel` after `since` (the first message waiting there)? If
        so, the grace period (REPLY_AFTER_SECONDS) did its job: no reply."""
        if self._owner_wrote.get(channel, -math.inf) >= since:
            return Decision(False, "you answered first (within REPLY_AFTER_SECONDS)")
        return REPLY

    def paused_until(self, channel: str, now: float) -> float | None:
        """When the takeover of `channel` ends, if one is in force."""
        self._forget_old(now)
        until = self._takeovers.get(channel)
        if until is None or until <= now:
            self._takeovers.pop(channel, None)
            return None
        return until

    def may_send(self, channel: str, now: float) -> Decision:
        """May the relay post in `channel` now (no takeover in force)?"""
        until = self.paused_until(channel, now)
        if until is not None:
            return Decision(False, f"the owner took over ({until - now:.0f} s left)")
        return REPLY

    def may_reply(self, pair: PairKey, now: float) -> Decision:
        """May the relay start a new reply to `pair` now (no takeover, within its limits)?"""
        decision = self.may_send(pair[1], now)
        if not decision.reply:
            return decision
        times = self._replies.get(pair, deque())
        for limit, window, name in self._limits:
            if limit <= 0:  # this limit is turned off
                continue
            recent = [at for at in times if at > now - window]
            if len(recent) >= limit:
                window_end = recent[0] + window
                quiet = self._limit_said.get(pair) == window_end
                self._limit_said[pair] = window_end
                return Decision(False, f"over {limit} replies per {name} to this person", quiet)
        return REPLY

    def replied(self, pair: PairKey, text: str, now: float) -> None:
        """Count a reply to `pair` and remember its text, to recognise it if it comes back."""
        self._forget_old(now)
        times = self._replies.setdefault(pair, deque())
        times.append(now)
        while times and times[0] <= now - HOUR:
            times.popleft()
        texts = self._recent_texts.setdefault(pair[1], deque(maxlen=REMEMBERED_REPLIES))
        texts.append((now, _normal(text)))

    def automatic(self, channel: str, content: str, now: float) -> str:
        """Why `content` looks written by a machine ("" if it does not)."""
        self._forget_old(now)
        text = _normal(content)
        for prefix in self._prefixes:
            if text.startswith(prefix):
                return f"it starts with the disclosure prefix {prefix!r}"
        for at, sent in self._recent_texts.get(channel, ()):
            if at > now - REPEAT_WINDOW_SECONDS and text and text == sent:
                return "it repeats one of our recent replies"
        return ""

    def _forget_old(self, now: float) -> None:
        """Drop what no decision at `now` or later can use; at most once per `SWEEP_SECONDS`
        (and at once if the clock went back)."""
        if self._swept_at <= now < self._swept_at + SWEEP_SECONDS:
            return
        self._swept_at = now
        self._takeovers = {c: until for c, until in self._takeovers.items() if until > now}
        # A grace period is at most MAX_REPLY_AFTER_SECONDS, and a reply is due soon after it.
        horizon = now - 2 * MAX_REPLY_AFTER_SECONDS
        self._owner_wrote = {c: at for c, at in self._owner_wrote.items() if at > horizon}
        # A limit's window end is always after the `now` it was said at: an ended one never recurs.
        self._limit_said = {p: end for p, end in self._limit_said.items() if end > now}
        for pair, times in list(self._replies.items()):
            while times and times[0] <= now - HOUR:  # the longest limit window
                times.popleft()
            if not times:
                del self._replies[pair]
        for channel, texts in list(self._recent_texts.items()):
            while texts and texts[0][0] <= now - REPEAT_WINDOW_SECONDS:
                texts.popleft()
            if not texts:
                del self._recent_texts[channel]

    def owner_allows(self, reply_when: ReplyWhen, schedule: AwaySchedule | None = None) -> Decision:
        """May the relay speak for the owner now, given whether they are away (by `schedule`, a
        rule's own away hours, if not None)?"""
        return self.presence.allows(reply_when, schedule)


def grace_left(first_accepted: float, now: float, grace_seconds: float) -> float:
    """Seconds the owner still has to answer first (REPLY_AFTER_SECONDS after the first message
    waiting; never more than the whole grace, should the clock go back); 0 when it is over."""
    return max(0.0, min(grace_seconds, first_accepted + grace_seconds - now))


def burst_wait(last_arrival: float, now: float, coalesce_seconds: float) -> float:
    """Seconds left before a burst counts as finished (0 when it has)."""
    return max(0.0, last_arrival + coalesce_seconds - now)


def ignore_reason(message: IncomingMessage, rule: Rule | None) -> str:
    """Why a message from someone else gets no reply at all, not even remembered ("" if it may
    get one)."""
    if message.author.bot:
        return "author is a bot"
    if rule is None:
        return "pair is not allow-listed"
    if not message.has_substance():
        return "nothing to answer (no text, attachment, sticker or forward)"
    return ""
