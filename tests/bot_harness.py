"""The real gateway bot (discord.py) running against the fake Discord REST API and gateway."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.bot.app import Bot
from server.config import Settings
from tests.fakes.discord_api import Flavour
from tests.fakes.discord_bot_api import FakeDiscordBot
from tests.fakes.discord_gateway import FakeGateway
from tests.fakes.openai_api import FakeOpenAI

DM_CHANNEL = "2000000000000000001"
GUILD = "3000000000000000001"
GUILD_CHANNEL = "3000000000000000002"
FRIEND = "1000000000000000001"
STRANGER = "1000000000000000002"


def bot_settings(api: FakeDiscordBot, llm: FakeOpenAI, **overrides: Any) -> Settings:
    """Settings for a bot talking to the fakes, with tiny durations."""
    values: dict[str, Any] = {
        "DISCORD_BOT_TOKEN": api.BOT_TOKEN,
        "DISCORD_API_BASE": api.base_url,
        "OPENAI_API_KEY": llm.API_KEY,
        "OPENAI_BASE_URL": llm.base_url,
        "OPENAI_MODEL": llm.MODEL,
        "LLM_BACKENDS": ["openai"],
        "LLM_MAX_RETRIES": 0,
        "TYPING_INTERVAL_SECONDS": 0.05,
        "TYPING_DELAY_SECONDS": 0.0,
        "DATABASE": str(Path(tempfile.mkdtemp(prefix="bot-test-")) / "auto_reply.db"),
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class RunningBot:
    bot: Bot
    api: FakeDiscordBot
    gateway: FakeGateway
    task: asyncio.Task[None]

    async def replies(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait for `count` messages posted by the bot; return them all."""
        return await self.api.wait_for_messages(count, timeout)


@asynccontextmanager
async def fake_discord_bot(
    *, allow_message_content: bool = True, flavour: Flavour = "discord"
) -> AsyncIterator[tuple[FakeDiscordBot, FakeGateway]]:
    """The fake REST API (with a guild holding GUILD_CHANNEL) and the fake gateway."""
    api = FakeDiscordBot(flavour=flavour)
    api.add_guild(GUILD, GUILD_CHANNEL)
    await api.start()
    gateway = FakeGateway(api, allow_message_content=allow_message_content)
    await gateway.start()
    try:
        yield api, gateway
    finally:
        await gateway.stop()
        await api.stop()


@asynccontextmanager
async def running_bot(
    tmp_path: Path,
    llm: FakeOpenAI,
    rules: str,
    *,
    flavour: Flavour = "discord",
    prepare: Callable[[FakeDiscordBot], None] | None = None,
    **overrides: Any,
) -> AsyncIterator[RunningBot]:
    """Start the real `Bot` with `rules` as reply_config.py against the fakes (as rude as
    Spacebar with `flavour="spacebar"`, and changed by `prepare` before the bot starts);
    stop it afterwards."""
    reply_config = tmp_path / "reply_config.py"
    reply_config.write_text(rules, encoding="utf-8")
    async with fake_discord_bot(flavour=flavour) as (api, gateway):
        if prepare is not None:
            prepare(api)
        bot = Bot(bot_settings(api, llm, **overrides), reply_config)
        task = asyncio.create_task(bot.run())
        ready = asyncio.create_task(gateway.wait_until_ready())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            ready.cancel()
            await task  # raises what stopped the bot
        try:
            yield RunningBot(bot, api, gateway, task)
        finally:
            await bot.close()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
