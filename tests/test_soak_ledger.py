"""The soak's counting (bench/soak.py): a reply is credited to the message it answers, and a
second reply, a reply to nothing, a missing reply and an expired message are each counted."""

from __future__ import annotations

from typing import Any

from bench.soak import FALLBACK, PREFIX, Ledger, Tally, plan, tally


def created(channel: str, text: str, reference: str | None = None) -> dict[str, Any]:
    """A message as the fake Discord creates it for a reply."""
    message: dict[str, Any] = {"channel_id": channel, "content": PREFIX + text}
    if reference is not None:
        message["message_reference"] = {"channel_id": channel, "message_id": reference}
    return message


def test_each_reply_is_credited_to_the_message_it_answers() -> None:
    guild_pair, dm_pair = plan(4, 2)
    ledger = Ledger()
    first, second = guild_pair[0], dm_pair[0]
    ledger.send(first)
    ledger.send(second)
    ledger.created(created(first.channel, f"echo: {first.text} [turns=1]", first.id))
    ledger.created(created(second.channel, FALLBACK))  # a DM reply names no message
    third = dm_pair[1]
    event = ledger.send(third)
    ledger.created(created(third.channel, f"echo: {third.text} [turns=3]"))

    assert event.is_set()
    assert tally(ledger, expired=set()) == Tally(3, 3, duplicated=0, lost=0, expired=0, fallbacks=1)


def test_a_second_reply_and_a_reply_to_nothing_count_as_duplicates() -> None:
    (message, _), _ = plan(4, 2)
    ledger = Ledger()
    ledger.send(message)
    reply = created(message.channel, FALLBACK, message.id)
    ledger.created(reply)
    ledger.created(reply)
    ledger.created(created(message.channel, "echo: nobody said this [turns=1]"))

    result = tally(ledger, expired=set())
    assert (result.answered, result.duplicated) == (1, 2)
    assert not result.clean


def test_a_message_without_reply_is_lost_unless_the_server_marked_it_expired() -> None:
    (lost, expired), _ = plan(4, 2)
    ledger = Ledger()
    ledger.send(lost)
    ledger.send(expired)

    result = tally(ledger, expired={expired.id})
    assert (result.answered, result.lost, result.expired) == (0, 1, 1)
    assert not result.clean


def test_a_reply_quoting_another_message_than_it_references_is_noted() -> None:
    (first, second), _ = plan(4, 2)
    ledger = Ledger()
    ledger.send(first)
    ledger.created(created(first.channel, f"echo: {second.text} [turns=1]", first.id))

    assert ledger.mismatched == [f"echo: {second.text} [turns=1]"]
