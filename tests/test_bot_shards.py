"""A bot in many guilds shards: with BOT_SHARDS "auto" it runs as many gateway connections as
Discord's `GET /gateway/bot` recommends, and answers on each of them."""

from __future__ import annotations

import logging
from pathlib import Path

import discord
import pytest

from server.bot.shards import shard_count
from server.config import ConfigError
from tests.bot_harness import DM_CHANNEL, FRIEND, GUILD, GUILD_CHANNEL, running_bot
from tests.fakes.discord_bot_api import FakeDiscordBot
from tests.fakes.openai_api import FakeOpenAI

OTHER_GUILD = "3000000000004194305"  # (id >> 22) % 2 == 1: shard 1 of 2, where GUILD is on 0
OTHER_CHANNEL = "3000000000004194306"
RULES = f"""
REPLY_TO = [
    ("{FRIEND}", "{DM_CHANNEL}"),
    ("{FRIEND}", "{GUILD_CHANNEL}"),
    ("{FRIEND}", "{OTHER_CHANNEL}"),
]
"""


def two_shards(api: FakeDiscordBot) -> None:
    api.add_guild(OTHER_GUILD, OTHER_CHANNEL)
    api.recommended_shards = 2


async def test_two_recommended_shards_run_an_auto_sharded_client_answering_on_both(
    tmp_path: Path, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.bot")
    async with running_bot(tmp_path, fake_openai, RULES, prepare=two_shards) as running:
        api, gateway = running.api, running.gateway
        assert isinstance(running.bot.client, discord.AutoShardedClient)
        assert sorted(identify["shard"] for identify in gateway.identifies) == [[0, 2], [1, 2]]
        assert gateway.shard_of(GUILD) == 0 and gateway.shard_of(OTHER_GUILD) == 1
        said = [r.getMessage() for r in caplog.records if "gateway shards" in r.getMessage()]
        assert said == ["2 gateway shards (BOT_SHARDS=auto, Discord recommends 2)"]

        api.post_as_user(FRIEND, DM_CHANNEL, "dm")
        await running.replies(1)
        for channel in (GUILD_CHANNEL, OTHER_CHANNEL):
            api.post_as_user(FRIEND, channel, f"<@{api.BOT_ID}> in {channel}", mentions_bot=True)
        replies = await running.replies(3)
        assert sorted(reply["content"] for reply in replies) == [
            "echo: dm [turns=1]",
            f"echo: in {GUILD_CHANNEL} [turns=1]",
            f"echo: in {OTHER_CHANNEL} [turns=1]",
        ]


async def test_one_recommended_shard_runs_the_plain_client(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_bot(tmp_path, fake_openai, RULES) as running:
        assert not isinstance(running.bot.client, discord.AutoShardedClient)
        [identify] = running.gateway.identifies
        assert identify.get("shard") in (None, [0, 1])


def test_the_shard_count_follows_bot_shards() -> None:
    assert shard_count("auto", None) is None  # Discord could not be asked: one connection
    assert shard_count("auto", 1) is None
    assert shard_count("auto", 3) == 3
    assert shard_count(4, 1) == 4
    assert shard_count("2", None) == 2
    assert shard_count(1, 8) is None
    for wrong in ("many", 0, -1, True, 2.5):
        with pytest.raises(ConfigError, match="BOT_SHARDS"):
            shard_count(wrong, 1)
