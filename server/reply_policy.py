"""When the relay must not speak for the owner: pure decisions over state and the clock."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    """Whether to reply now and, if not, why (shown in the logs)."""

    reply: bool
    reason: str = ""


REPLY = Decision(True)


class ReplyPolicy:
    """Owner takeovers per channel: after the owner writes by hand, the relay steps aside."""

    def __init__(self, takeover_seconds: float) -> None:
        self._takeover_seconds = takeover_seconds
        self._takeovers: dict[str, float] = {}

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


def burst_wait(last_arrival: float, now: float, coalesce_seconds: float) -> float:
    """Seconds left before a burst counts as finished (0 when it has)."""
    return max(0.0, last_arrival + coalesce_seconds - now)
