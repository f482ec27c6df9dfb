"""When the relay steps aside: owner takeovers and the end of a burst, decided without I/O."""

from __future__ import annotations

from server.reply_policy import ReplyPolicy, burst_wait


def test_the_owner_writing_pauses_that_channel_only_until_the_time_is_up() -> None:
    policy = ReplyPolicy(takeover_seconds=60.0)
    assert policy.may_reply("c1", now=1000.0).reply
    assert policy.owner_wrote("c1", now=1000.0) == 1060.0
    decision = policy.may_reply("c1", now=1030.0)
    assert not decision.reply and "took over" in decision.reason and "30 s" in decision.reason
    assert policy.may_reply("c2", now=1030.0).reply
    assert policy.may_reply("c1", now=1060.0).reply
    assert policy.paused_until("c1", now=1060.0) is None


def test_each_owner_message_extends_the_pause() -> None:
    policy = ReplyPolicy(takeover_seconds=60.0)
    policy.owner_wrote("c1", now=1000.0)
    assert policy.owner_wrote("c1", now=1050.0) == 1110.0
    assert not policy.may_reply("c1", now=1100.0).reply


def test_takeovers_from_before_a_restart_are_taken_up() -> None:
    policy = ReplyPolicy(takeover_seconds=60.0)
    policy.restore({"c1": 2000.0})
    assert policy.paused_until("c1", now=1500.0) == 2000.0
    assert policy.owner_wrote("c1", now=1500.0) == 2000.0  # never shortened


def test_a_burst_ends_coalesce_seconds_after_its_last_message() -> None:
    assert burst_wait(last_arrival=10.0, now=10.5, coalesce_seconds=2.0) == 1.5
    assert burst_wait(last_arrival=10.0, now=12.5, coalesce_seconds=2.0) == 0.0
    assert burst_wait(last_arrival=10.0, now=10.0, coalesce_seconds=0.0) == 0.0
