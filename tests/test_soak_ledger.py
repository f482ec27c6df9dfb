"""The soak's counting (bench/soak.py): a reply is credited to the message it answers by its
nonce (as the relay recorded it), never by the channel it lands in; a second reply, a reply to
nothing, a missing reply and an expired message are each counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.soak import (
    FALLBACK,
    PREFIX,
    Answer,
    Ledger,
    Tally,
    attribute,
    plan,
    recorded_answers,
    tally,
)
from server.storage.conversations import ConversationStore, ReplyPart


def created(channel: str, text: str, nonce: str, reference: str | None = None) -> dict[str, Any]:
    """A message as the fake Discord creates it for a reply part posted with `nonce`."""
    message: dict[str, Any] = {"channel_id": channel, "content": PREFIX + text, "nonce": nonce}
    if reference is not None:
        message["message_reference"] = {"channel_id": channel, "message_id": reference}
    return message


def test_each_reply_is_credited_to_the_message_it_answers() -> None:
    guild_pair, dm_pair = plan(4, 2)
    ledger = Ledger()
    first, second, third = guild_pair[0], dm_pair[0], dm_pair[1]
    answers = {"1": Answer(first.id, 0), "2": Answer(second.id, 0), "3": Answer(third.id, 0)}
    ledger.send(first)
    ledger.send(second)
    ledger.created(created(first.channel, f"echo: {first.text} [turns=1]", "1", first.id))
    ledger.created(created(second.channel, FALLBACK, "2"))  # a DM reply names no message
    event = ledger.send(third)
    ledger.created(created(third.channel, f"echo: {third.text} [turns=3]", "3"))

    assert event.is_set()
    result = tally(attribute(ledger, answers), expired=set())
    assert result == Tally(3, 3, duplicated=0, lost=0, expired=0, fallbacks=1)


def test_a_late_duplicate_and_a_loss_in_one_dm_channel_do_not_cancel_out() -> None:
    """A fallback re-posted late for the first message lands while the second waits in the same
    DM; the second never gets a reply. By channel both look answered once; by nonce the first
    has two replies and the second none."""
    _, (first, second) = plan(4, 2)
    answers = {"early": Answer(first.id, 0), "late": Answer(first.id, 0)}
    ledger = Ledger()
    ledger.send(first)
    ledger.created(created(first.channel, FALLBACK, "early"))
    ledger.send(second)
    ledger.created(created(second.channel, FALLBACK, "late"))

    found = attribute(ledger, answers)
    assert (found.replies[first.id], found.replies[second.id]) == (2, 0)
    result = tally(found, expired=set())
    assert result == Tally(2, 1, duplicated=1, lost=1, expired=0, fallbacks=2)
    assert not result.clean


def test_a_second_reply_and_a_reply_to_nothing_count_as_duplicates() -> None:
    (message, _), _ = plan(4, 2)
    answers = {"1": Answer(message.id, 0), "2": Answer(message.id, 0)}
    ledger = Ledger()
    ledger.send(message)
    ledger.created(created(message.channel, FALLBACK, "1", message.id))
    ledger.created(created(message.channel, FALLBACK, "2", message.id))
    ledger.created(created(message.channel, "echo: nobody said this [turns=1]", "unrecorded"))

    found = attribute(ledger, answers)
    result = tally(found, expired=set())
    assert (result.answered, result.duplicated) == (1, 2)
    assert found.unattributed == ["echo: nobody said this [turns=1]"]
    assert not result.clean


def test_a_later_part_posted_twice_is_a_duplicate_but_a_part_is_no_reply_of_its_own() -> None:
    (message, _), _ = plan(4, 2)
    answers = {"head": Answer(message.id, 0), "tail": Answer(message.id, 1)}
    ledger = Ledger()
    ledger.send(message)
    ledger.created(created(message.channel, "first half", "head", message.id))
    ledger.created(created(message.channel, "second half", "tail"))

    assert tally(attribute(ledger, answers), expired=set()).clean
    ledger.created(created(message.channel, "second half", "tail"))
    result = tally(attribute(ledger, answers), expired=set())
    assert (result.answered, result.duplicated) == (1, 1)


def test_a_message_without_reply_is_lost_unless_the_server_marked_it_expired() -> None:
    (lost, expired), _ = plan(4, 2)
    ledger = Ledger()
    ledger.send(lost)
    ledger.send(expired)

    result = tally(attribute(ledger, {}), expired={expired.id})
    assert (result.answered, result.lost, result.expired) == (0, 1, 1)
    assert not result.clean


def test_a_reply_referencing_or_quoting_another_message_than_it_answers_is_noted() -> None:
    (first, second), _ = plan(4, 2)
    answers = {"1": Answer(first.id, 0), "2": Answer(second.id, 0)}
    ledger = Ledger()
    ledger.send(first)
    ledger.send(second)
    ledger.created(created(first.channel, f"echo: {second.text} [turns=1]", "1", first.id))
    ledger.created(created(second.channel, f"echo: {second.text} [turns=3]", "2", first.id))

    assert attribute(ledger, answers).mismatched == [
        f"echo: {second.text} [turns=1]",
        f"echo: {second.text} [turns=3]",
    ]


async def test_the_relay_database_maps_each_part_nonce_to_the_message_it_answers(
    tmp_path: Path,
) -> None:
    (guild_message, _), (dm_message, _) = plan(4, 2)
    store = ConversationStore(tmp_path / "soak.db")
    await store.open()
    try:
        for message in (guild_message, dm_message):
            pair = (message.user, message.channel)
            turn = await store.record_message(
                pair, message.id, message.user, message.text, guild_id=message.guild
            )
            assert turn is not None
            parts = [ReplyPart(f"{message.id}-a", "one"), ReplyPart(f"{message.id}-b", "two")]
            await store.record_reply(pair, [turn], "openai", parts)
    finally:
        await store.close()

    assert recorded_answers(tmp_path / "soak.db") == {
        f"{guild_message.id}-a": Answer(guild_message.id, 0),
        f"{guild_message.id}-b": Answer(guild_message.id, 1),
        f"{dm_message.id}-a": Answer(dm_message.id, 0),
        f"{dm_message.id}-b": Answer(dm_message.id, 1),
    }
