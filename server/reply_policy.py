"""When the relay must not speak for the owner: pure decisions over state and the clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from server.config import ReplyWhen


@dataclass(frozen=True)
class Decision:
    """Whether to reply now and, if not, why (shown in the logs)."""

    reply: bool
    reason: str = ""


REPLY = Decision(True)

DiscordStatus = Literal["online", "idle", "dnd", "invisible", "offline"]
AwaySwitch = Literal["auto", "on", "off"]
AWAY_STATUSES: frozenset[str] = frozenset({"idle", "dnd", "invisible", "offline"})
"""Discord statuses that mean the owner is not at the keyboard (idle is set by Discord itself)."""


@dataclass
class Presence:
    """Whether the owner is away: their last reported Discord status, unless switched by hand.

    `status` is None until the plugin reports one, which counts as present: a fresh start never
    answers someone the owner is talking to.
    """

    status: DiscordStatus | None = None
    switch: AwaySwitch = "auto"

    @property
    def away(self) -> bool:
        """True if the owner is away now: the switch if set, else their Discord status."""
        if self.switch != "auto":
            return self.switch == "on"
        return self.status in AWAY_STATUSES

    def allows(self, reply_when: ReplyWhen) -> Decision:
        """May the relay answer for the owner under `reply_when` ("away" or "always")?"""
        if reply_when == "always" or self.away:
            return REPLY
        if self.switch == "off":
            return Decision(False, "the owner is present (away mode switched off)")
        status = self.status or "not reported yet"
        return Decision(False, f"the owner is present (Discord status {status})")


class ReplyPolicy:
    """Owner takeovers per channel (after the owner writes by hand, the relay steps aside), and
    whether the owner is away."""

    def __init__(self, takeover_seconds: float) -> None:
        self._takeover_seconds = takeover_seconds
        self._takeovers: dict[str, float] = {}
        self.presence = Presence()

    def restore(self, takeovers: dict[str, float]) -> None:
        """Take up takeovers that were in force before a restart (channel → end, Unix time)."""
        for channel, until in takeovers.items():
            self._takeovers[channel] = max(until, self._takeovers.get(channel, 0.0))

    def owner_wrote(self, channel: str, now: float) -> float:
        """The owner wrote in `channel`: start or extend the takeover; returns its end."""
        until = max(now + self._takeover_seconds, self._takeovers.get(channel, 0.0))
        self._takeovers[channel] = until
        return until

    def paused_until(self, channel: str, now: float) -> float | None:
        """When the takeover of `channel` ends, if one is in force."""
        until = self._takeovers.get(channel)
        if until is None or until <= now:
            self._takeovers.pop(channel, None)
            return None
        return until

    def may_reply(self, channel: str, now: float) -> Decision:
        """May the relay send in `channel` now?"""
        until = self.paused_until(channel, now)
        if until is not None:
            return Decision(False, f"the owner took over ({until - now:.0f} s left)")
        return REPLY

    def owner_allows(self, reply_when: ReplyWhen) -> Decision:
        """May the relay speak for the owner now, given whether they are away?"""
        return self.presence.allows(reply_when)


def burst_wait(last_arrival: float, now: float, coalesce_seconds: float) -> float:
    """Seconds left before a burst counts as finished (0 when it has)."""
    return max(0.0, last_arrival + coalesce_seconds - now)
