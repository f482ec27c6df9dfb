"""The grace period (REPLY_AFTER_SECONDS, a rule's "reply_after_seconds"): the relay waits so the
owner can answer first from any device; the owner's message meanwhile cancels the reply, and no
typing indicator shows during the wait. The rule alone, then the real App over sockets."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from server.config import Settings
from server.conversation.reply_policy import ReplyPolicy, grace_left
from server.conversation.rules import RulesError, parse_rules
from server.storage.owner_store import OwnerStore
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI
from tests.relay_harness import PluginClient, running_app
from tests.test_relay import rest_settings

RULES = (
    'CONTEXT_MESSAGE = "You stand in for Sam."\n'
    'REPLY_TO = [("111", "222"), ("112", "223", {"reply_after_seconds": 0.0})]\n'
)
RULES_NS = {"REPLY_TO": [("111", "222"), ("112", "223", {"reply_after_seconds": 0.0})]}
GRACE = 0.8


def test_grace_left_counts_from_the_first_message_waiting() -> None:
    assert grace_left(100.0, 100.0, 0.0) == 0.0
    assert grace_left(100.0, 100.5, 2.0) == 1.5
    assert grace_left(100.0, 103.0, 2.0) == 0.0
    assert grace_left(100.0, 40.0, 2.0) == 2.0  # the clock went back: never more than the grace


def test_the_owner_writing_after_the_first_message_means_they_answered_first() -> None:
    policy = ReplyPolicy(takeover_seconds=0, per_minute=0, per_hour=0)
    assert policy.answered_first("222", since=100.0).reply
    policy.owner_seen("222", 99.0)  # before the message: not an answer to it
    assert policy.answered_first("222", since=100.0).reply
    policy.owner_seen("222", 101.0)
    decision = policy.answered_first("222", since=100.0)
    assert not decision.reply and "REPLY_AFTER_SECONDS" in decision.reason
    assert policy.answered_first("333", since=100.0).reply  # another chat


def test_reply_after_seconds_is_a_float_default_zero_and_a_rule_may_set_it() -> None:
    assert Settings().REPLY_AFTER_SECONDS == 0.0
    assert Settings(REPLY_AFTER_SECONDS=30.0).REPLY_AFTER_SECONDS == 30.0
    with pytest.raises(ValueError, match="REPLY_AFTER_SECONDS"):
        Settings(REPLY_AFTER_SECONDS=-1.0)
    rules = parse_rules(RULES_NS, "rc.py")
    assert [rule.reply_after_seconds for rule in rules.rules] == [None, 0.0]
    with pytest.raises(RulesError, match=r"REPLY_TO\[0\]: reply_after_seconds"):
        parse_rules({"REPLY_TO": [("1", "2", {"reply_after_seconds": -5})]}, "rc.py")


async def test_the_reply_waits_for_the_grace_period_without_typing(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    settings = rest_settings(fake_discord, fake_openai, REPLY_AFTER_SECONDS=GRACE)
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        sent_at = time.monotonic()
        await client.message("1001", "111", "222", "are you there?")
        await asyncio.sleep(GRACE - 0.3)
        assert fake_openai.requests == [] and fake_discord.typing == []  # not even typing
        [posted] = await fake_discord.wait_for_messages(1)
        assert time.monotonic() - sent_at >= GRACE
        assert posted["content"].startswith("[auto-reply] echo: are you there?")
        # A rule's own grace of 0 answers at once, whatever REPLY_AFTER_SECONDS says.
        sent_at = time.monotonic()
        await client.message("1002", "112", "223", "quick one")
        await fake_discord.wait_for_messages(2)
        assert time.monotonic() - sent_at < GRACE
        await client.close()


@pytest.mark.parametrize("takeover_minutes", [0.0, 15.0])
async def test_the_owner_answering_within_the_grace_period_cancels_the_reply(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI, takeover_minutes: float
) -> None:
    settings = rest_settings(
        fake_discord,
        fake_openai,
        REPLY_AFTER_SECONDS=GRACE,
        TAKEOVER_MINUTES=takeover_minutes,
    )
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("1001", "111", "222", "lunch?")
        await asyncio.sleep(0.2)
        # The owner answers from their phone: the plugin forwards it as their own message.
        await client.message("1002", "9", "222", "sure, 12:30", is_self=True)
        await running.app.relay.drain()
        await asyncio.sleep(0.1)
        assert fake_openai.requests == [] and fake_discord.messages == []
        assert fake_discord.typing == []
        history = await OwnerStore(running.app.store).history(0)
        skipped = [entry.text for entry in history if entry.kind == "skipped"]
        if takeover_minutes:
            assert skipped and "took over" in skipped[0]
        else:
            assert skipped == ["you answered first (within REPLY_AFTER_SECONDS)"]

        # A later message, with no answer from the owner after it, is answered after its grace.
        await client.message("1003", "111", "222", "still on?")
        if not takeover_minutes:
            [posted] = await fake_discord.wait_for_messages(1)
            assert posted["content"].startswith("[auto-reply] echo: still on?")
        await client.close()
