"""When the GUI macro may type: the target channel is open, Discord has focus, the person is idle.

The decision is pure (`clearance`); the plugin connection that supplies its facts is the
`WindowGuard` the macro messenger is given (the gateway implements it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from server.transport.protocol import Opened


class WindowGuard(Protocol):
    """What the macro needs from the plugin: open a channel, and when the person last acted."""

    async def open_channel(self, channel_id: str, timeout: float) -> Opened:
        """Ask the plugin to show `channel_id`; raises TimeoutError or ConnectionError."""
        ...

    def last_activity(self) -> float | None:
        """When the person last used the keyboard or mouse in Discord (epoch seconds), if known."""
        ...


@dataclass(frozen=True)
class Clearance:
    """The answer to "may the macro type now?": if not, why, and how long to wait before asking."""

    may_type: bool
    reason: str = ""
    retry_in: float = 0.0


CLEAR = Clearance(may_type=True)


@dataclass(frozen=True)
class TypingSpan:
    """When the macro last pressed keys (epoch seconds): its own keys are not the person's."""

    start: float
    end: float

    def covers(self, moment: float) -> bool:
        """True if `moment` falls within the span."""
        return self.start <= moment <= self.end


def idle_clearance(
    last_activity: float | None,
    *,
    now: float,
    idle_seconds: float,
    own_typing: Sequence[TypingSpan] = (),
) -> Clearance:
    """Clear when the person has not used the Discord window for `idle_seconds`.

    Activity inside one of the `own_typing` spans is the macro's own keys, reported back by the
    plugin.
    """
    if last_activity is None or any(span.covers(last_activity) for span in own_typing):
        return CLEAR
    quiet_for = now - last_activity
    if quiet_for >= idle_seconds:
        return CLEAR
    return Clearance(
        may_type=False,
        reason=f"you used Discord {max(quiet_for, 0.0):.1f} s ago "
        f"(MACRO_IDLE_SECONDS is {idle_seconds:g})",
        retry_in=idle_seconds - quiet_for,
    )


def clearance(
    channel_id: str,
    opened: Opened | None,
    *,
    last_activity: float | None,
    now: float,
    idle_seconds: float,
    retry_seconds: float,
    own_typing: Sequence[TypingSpan] = (),
    no_answer: str = "the plugin did not confirm the channel",
) -> Clearance:
    """May the macro type into `channel_id` now, given the plugin's `opened` answer (None if none)?

    Only when Discord shows that channel, its window has focus and the person is idle; otherwise
    the reason (`no_answer` when there was no answer) and when to ask again.
    """
    idle = idle_clearance(last_activity, now=now, idle_seconds=idle_seconds, own_typing=own_typing)
    if not idle.may_type:
        return idle
    if opened is None:
        return Clearance(may_type=False, reason=no_answer, retry_in=retry_seconds)
    if opened.channel != channel_id or not opened.ok:
        shown = f"channel {opened.channel}" if opened.channel else "no channel"
        detail = f": {opened.error}" if opened.error else ""
        return Clearance(
            may_type=False,
            reason=f"Discord shows {shown}, not the reply's channel{detail}",
            retry_in=retry_seconds,
        )
    if not opened.focused:
        return Clearance(
            may_type=False,
            reason="the Discord window does not have keyboard focus",
            retry_in=retry_seconds,
        )
    return CLEAR
