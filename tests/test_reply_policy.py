"""When the relay steps aside: takeovers, reply limits, automatic messages, bursts; no I/O."""

from __future__ import annotations

from server.conversation.reply_policy import HOUR, SWEEP_SECONDS, ReplyPolicy, burst_wait

PAIR = ("111", "c1")


def policy(per_minute: int = 4, per_hour: int = 30) -> ReplyPolicy:
    return ReplyPolicy(
        takeover_seconds=60.0,
        per_minute=per_minute,
        per_hour=per_hour,
        reply_prefix="[auto-reply] ",
    )


def test_the_owner_writing_pauses_that_channel_only_until_the_time_is_up() -> None:
    rules = policy()
    assert rules.may_send("c1", now=1000.0).reply
    assert rules.owner_wrote("c1", now=1000.0) == 1060.0
    decision = rules.may_send("c1", now=1030.0)
    assert not decision.reply and "took over" in decision.reason and "30 s" in decision.reason
    assert not rules.may_reply(PAIR, now=1030.0).reply
    assert rules.may_send("c2", now=1030.0).reply
    assert rules.may_send("c1", now=1060.0).reply
    assert rules.paused_until("c1", now=1060.0) is None


def test_each_owner_message_extends_the_pause() -> None:
    rules = policy()
    rules.owner_wrote("c1", now=1000.0)
    assert rules.owner_wrote("c1", now=1050.0) == 1110.0
    assert not rules.may_send("c1", now=1100.0).reply


def test_takeovers_from_before_a_restart_are_taken_up() -> None:
    rules = policy()
    rules.restore({"c1": 2000.0})
    assert rules.paused_until("c1", now=1500.0) == 2000.0
    assert rules.owner_wrote("c1", now=1500.0) == 2000.0  # never shortened


def test_replies_per_minute_are_limited_per_pair_and_said_once_per_window() -> None:
    rules = policy(per_minute=2)
    for now in (0.0, 10.0):
        assert rules.may_reply(PAIR, now).reply
        rules.replied(PAIR, f"reply at {now}", now)
    first = rules.may_reply(PAIR, 20.0)
    assert not first.reply and "2 replies per minute" in first.reason and not first.quiet
    assert rules.may_reply(PAIR, 30.0).quiet  # the same window: not logged again
    assert rules.may_reply(("222", "c1"), 30.0).reply  # another person is not limited
    assert rules.may_reply(PAIR, 60.5).reply  # the first reply left the window


def test_replies_per_hour_are_limited_too_and_zero_turns_a_limit_off() -> None:
    rules = policy(per_minute=0, per_hour=3)
    for now in (0.0, 100.0, 200.0):
        rules.replied(PAIR, "hi", now)
    assert "3 replies per hour" in rules.may_reply(PAIR, 300.0).reason
    assert rules.may_reply(PAIR, 3600.5).reply
    unlimited = policy(per_minute=0, per_hour=0)
    for now in range(100):
        unlimited.replied(PAIR, "hi", float(now))
    assert unlimited.may_reply(PAIR, 100.0).reply


def test_automatic_messages_are_recognised() -> None:
    rules = policy()
    assert rules.automatic("c1", "hey, how are you?", now=0.0) == ""
    assert "disclosure prefix" in rules.automatic("c1", "[Auto-Reply] I am away", now=0.0)
    assert "disclosure prefix" in rules.automatic("c1", "[bot] beep", now=0.0)
    rules.replied(PAIR, "Sure, see you at  noon!", now=0.0)
    assert rules.automatic("c1", "sure, see you at noon!", now=10.0) != ""
    assert rules.automatic("c2", "sure, see you at noon!", now=10.0) == ""  # another chat
    assert rules.automatic("c1", "sure, see you at noon!", now=4000.0) == ""  # long ago


def remembered(rules: ReplyPolicy) -> dict[str, int]:
    """How many pairs or channels each kind of per-pair state holds."""
    return {
        "takeovers": len(rules._takeovers),
        "replies": len(rules._replies),
        "limit_said": len(rules._limit_said),
        "recent_texts": len(rules._recent_texts),
    }


def test_state_is_forgotten_once_no_window_can_use_it() -> None:
    rules = policy(per_minute=1)
    rules.owner_wrote("c9", now=0.0)  # a takeover until 60.0
    for user in range(50):
        pair = (str(user), f"c{user % 5}")
        rules.replied(pair, f"hello {user}", now=float(user))
        assert not rules.may_reply(pair, now=float(user) + 1.0).reply  # its limit, said once
    assert remembered(rules) == {"takeovers": 1, "replies": 50, "limit_said": 50, "recent_texts": 5}

    rules.automatic("c1", "anything", now=600.0)  # takeovers and minute windows have ended
    assert remembered(rules) == {"takeovers": 0, "replies": 50, "limit_said": 0, "recent_texts": 5}

    rules.automatic("c1", "anything", now=49.0 + HOUR + 1.0)  # every reply is over an hour old
    assert remembered(rules) == {"takeovers": 0, "replies": 0, "limit_said": 0, "recent_texts": 0}


def test_forgetting_changes_no_decision() -> None:
    rules = policy(per_minute=0, per_hour=3)
    rules.owner_wrote("c2", now=0.0)
    rules.restore({"c3": 5000.0})
    for now in (0.0, 100.0, 200.0):
        rules.replied(PAIR, "see you at noon", now)
    first = rules.may_reply(PAIR, 300.0)
    assert not first.reply and not first.quiet
    for now in range(400, 3600, 100):  # a sweep at each step: nothing in force is dropped
        later = rules.may_reply(PAIR, float(now))
        assert not later.reply and later.quiet
        assert rules.automatic("c1", "See you at noon", float(now)) != ""
        assert rules.paused_until("c3", float(now)) == 5000.0
    assert rules.may_reply(PAIR, 3600.5).reply
    assert rules.may_reply(("222", "c2"), 3600.5).reply  # that takeover ended long ago


def test_state_stays_bounded_over_many_pairs_and_hours() -> None:
    rules = policy()
    for second in range(4 * 3600):  # a new person every second for four hours
        pair = (str(second), f"c{second}")
        rules.owner_wrote(pair[1], now=float(second))
        rules.replied(pair, "hi", now=float(second))
    held = remembered(rules)
    # Only the last hour's replies, and takeovers not yet over, plus one sweep's interval.
    assert held["replies"] <= HOUR + SWEEP_SECONDS and held["recent_texts"] == held["replies"]
    assert held["takeovers"] <= 60 + SWEEP_SECONDS


def test_a_burst_ends_coalesce_seconds_after_its_last_message() -> None:
    assert burst_wait(last_arrival=10.0, now=10.5, coalesce_seconds=2.0) == 1.5
    assert burst_wait(last_arrival=10.0, now=12.5, coalesce_seconds=2.0) == 0.0
    assert burst_wait(last_arrival=10.0, now=10.0, coalesce_seconds=0.0) == 0.0
