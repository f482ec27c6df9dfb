"""The macro's decision alone: may it type now, and if not, why and when to ask again."""

from __future__ import annotations

import pytest

from server.messengers.window_guard import (
    CLEAR,
    Clearance,
    TypingSpan,
    clearance,
    idle_clearance,
)
from server.transport.protocol import Opened

NOW = 1_800_000_000.0


def opened(
    channel: str | None = "222", *, ok: bool = True, focused: bool = True, error: str | None = None
) -> Opened:
    return Opened(type="opened", nonce="n", channel=channel, ok=ok, focused=focused, error=error)


def decide(
    answer: Opened | None,
    last_activity: float | None = None,
    *,
    own_typing: tuple[TypingSpan, ...] = (),
    no_answer: str = "no answer",
) -> Clearance:
    return clearance(
        "222",
        answer,
        last_activity=last_activity,
        now=NOW,
        idle_seconds=20.0,
        retry_seconds=1.0,
        own_typing=own_typing,
        no_answer=no_answer,
    )


def test_the_right_channel_focused_with_an_idle_person_may_be_typed_into() -> None:
    assert decide(opened()) == CLEAR
    assert decide(opened(), last_activity=NOW - 20.0) == CLEAR


def test_no_answer_is_never_typed_into_and_says_why() -> None:
    verdict = decide(None, no_answer="no plugin answered")
    assert verdict == Clearance(may_type=False, reason="no plugin answered", retry_in=1.0)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (opened("999", ok=False), "Discord shows channel 999, not the reply's channel"),
        (
            opened("100", ok=False, error="Discord still shows channel 100 after 3000 ms"),
            "Discord shows channel 100, not the reply's channel: "
            "Discord still shows channel 100 after 3000 ms",
        ),
        (opened(None, ok=False), "Discord shows no channel, not the reply's channel"),
        # A plugin claiming ok for another channel is not believed.
        (opened("999", ok=True), "Discord shows channel 999, not the reply's channel"),
        (
            opened("222", ok=False, error="x"),
            "Discord shows channel 222, not the reply's channel: x",
        ),
        (opened(focused=False), "the Discord window does not have keyboard focus"),
    ],
)
def test_a_wrong_channel_or_no_focus_is_not_typed_into(answer: Opened, reason: str) -> None:
    assert decide(answer) == Clearance(may_type=False, reason=reason, retry_in=1.0)


def test_recent_activity_waits_until_the_person_has_been_idle_long_enough() -> None:
    verdict = decide(opened(), last_activity=NOW - 5.0)
    assert verdict.may_type is False
    assert verdict.retry_in == pytest.approx(15.0)
    assert verdict.reason == "you used Discord 5.0 s ago (MACRO_IDLE_SECONDS is 20)"


def test_activity_comes_first_even_when_the_channel_is_wrong() -> None:
    verdict = decide(opened("999", ok=False), last_activity=NOW - 19.5)
    assert verdict.retry_in == pytest.approx(0.5)
    assert verdict.reason.startswith("you used Discord")


def test_the_macros_own_keys_are_not_the_persons_activity() -> None:
    own = (TypingSpan(start=NOW - 4.0, end=NOW - 3.5), TypingSpan(start=NOW - 2.0, end=NOW - 1.0))
    assert decide(opened(), last_activity=NOW - 1.5, own_typing=own) == CLEAR
    assert decide(opened(), last_activity=NOW - 3.8, own_typing=own) == CLEAR
    assert decide(opened(), last_activity=NOW - 0.5, own_typing=own).may_type is False
    assert decide(opened(), last_activity=NOW - 3.0, own_typing=own).may_type is False


def test_idle_clearance_alone() -> None:
    assert idle_clearance(None, now=NOW, idle_seconds=20.0) == CLEAR
    assert idle_clearance(NOW - 25.0, now=NOW, idle_seconds=20.0) == CLEAR
    assert idle_clearance(NOW, now=NOW, idle_seconds=0.0) == CLEAR
    waiting = idle_clearance(NOW - 1.0, now=NOW, idle_seconds=2.5)
    assert (waiting.may_type, waiting.retry_in) == (False, pytest.approx(1.5))
    # A report from a clock slightly ahead counts as "just now", never as a negative wait.
    ahead = idle_clearance(NOW + 0.2, now=NOW, idle_seconds=1.0)
    assert ahead.reason.startswith("you used Discord 0.0 s ago")
