"""EchoTracker: our own replies, echoed back as the owner's messages, are recognised once."""

from __future__ import annotations

from server.delivery.echoes import EchoTracker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_echo_is_recognised_by_nonce_or_by_channel_and_text_once() -> None:
    echoes = EchoTracker()
    echoes.expect("n1", "10", "[auto-reply] hello")
    echoes.expect("n2", "10", "[auto-reply] again")
    assert echoes.is_echo("99", "anything", "n1")  # the nonce alone is enough
    assert not echoes.is_echo("99", "anything", "n1")  # but only once
    assert echoes.is_echo("10", "  [auto-reply] again \n", None)  # channel and text, trimmed
    assert not echoes.is_echo("10", "[auto-reply] again", None)
    assert not echoes.is_echo("11", "[auto-reply] hello", None)  # another channel


def test_the_same_text_sent_twice_is_echoed_twice_then_not_again() -> None:
    echoes = EchoTracker()
    echoes.expect("n1", "10", "ok")
    echoes.expect("n2", "10", "ok")
    assert echoes.is_echo("10", "ok", None)
    # The first part was matched by text, so its nonce no longer matches; the second's does.
    assert not echoes.is_echo("10", "other", "n1")
    assert echoes.is_echo("10", "other", "n2")
    assert not echoes.is_echo("10", "ok", None)


def test_the_oldest_matching_part_is_the_one_used() -> None:
    echoes = EchoTracker()
    echoes.expect("n1", "10", "same")
    echoes.expect("n2", "10", "same")
    # Text matches n1 (older) and the nonce names n2: n1 is used, so n2's nonce still matches.
    assert echoes.is_echo("10", "same", "n2")
    assert echoes.is_echo("10", "different", "n2")
    assert not echoes.is_echo("10", "same", None)


def test_parts_are_forgotten_after_the_ttl() -> None:
    clock = Clock()
    echoes = EchoTracker(ttl=300.0, clock=clock)
    echoes.expect("n1", "10", "old")
    clock.now += 200
    echoes.expect("n2", "10", "newer")
    clock.now += 100  # "old" is exactly 300 s old: still remembered
    assert echoes.is_echo("10", "old", None)
    echoes.expect("n3", "10", "old")
    clock.now += 200.5  # "newer" is 300.5 s old now, the second "old" 200.5 s
    assert not echoes.is_echo("10", "newer", "n2")
    assert echoes.is_echo("10", "old", None)


def test_many_parts_in_flight_are_tracked_each() -> None:
    clock = Clock()
    echoes = EchoTracker(ttl=10.0, clock=clock)
    for n in range(5000):
        clock.now += 0.01
        echoes.expect(f"n{n}", str(n % 7), f"reply {n}")
    # 50 s of sends, 0.01 s apart: only the last thousand or so are younger than 10 s.
    assert not echoes.is_echo("0", "reply 0", "n0")
    assert echoes.is_echo("1", "reply 4999", None)
    assert echoes.is_echo("6", "x", "n4001")
    assert not echoes.is_echo("6", "x", "n4001")


def test_an_echoed_nonce_is_known_until_the_ttl_passes() -> None:
    clock = Clock()
    echoes = EchoTracker(ttl=300.0, clock=clock)
    echoes.expect("n1", "10", "by nonce")
    echoes.expect("n2", "10", "by text")
    echoes.expect("n3", "10", "never echoed")
    assert not echoes.was_echoed("n1")
    assert echoes.is_echo("10", "by nonce", "n1")
    clock.now += 100
    assert echoes.is_echo("10", "by text", None)  # a client that drops the nonce
    assert echoes.was_echoed("n1") and echoes.was_echoed("n2")
    assert not echoes.was_echoed("n3")
    clock.now += 200.5  # n1's echo is 300.5 s old now, n2's 200.5 s
    assert not echoes.was_echoed("n1")
    assert echoes.was_echoed("n2")
