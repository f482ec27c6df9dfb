"""How many gateway connections (shards) the bot runs: `BOT_SHARDS`, or what Discord recommends.

Discord requires sharding from 2,500 guilds and names the count to use in `GET /gateway/bot`.
With `BOT_SHARDS` "auto" (the default) the bot asks before it logs in, and runs discord.py's
`AutoShardedClient` when more than one shard is recommended; a number fixes the count.
"""

from __future__ import annotations

import logging

import aiohttp

from server import __version__
from server.config import ConfigError

log = logging.getLogger(__name__)

AUTO = "auto"
SETTING = "BOT_SHARDS"
USER_AGENT = f"DiscordBot (discord-auto-reply, {__version__})"


def shard_count(setting: object, recommended: int | None) -> int | None:
    """The shard count to run, or None for one unsharded connection.

    `setting` is `BOT_SHARDS`: "auto" follows `recommended` (from `GET /gateway/bot`; None when
    it could not be asked), a whole number ≥ 1 is used as it is. Anything else is a `ConfigError`.
    """
    if setting == AUTO:
        count = recommended or 1
    elif isinstance(setting, int) and not isinstance(setting, bool) and setting >= 1:
        count = setting
    elif isinstance(setting, str) and setting.isdigit() and int(setting) >= 1:
        count = int(setting)
    else:
        raise ConfigError(
            f'{SETTING} must be "auto" or a whole number of shards ≥ 1, not {setting!r}'
        )
    return count if count > 1 else None


async def recommended_shards(api_base: str, token: str, timeout: float = 15.0) -> int | None:
    """The shard count `GET {api_base}/gateway/bot` recommends, or None if it cannot be had
    (logging in reports a refused token better than this request could)."""
    headers = {"Authorization": f"Bot {token}", "User-Agent": USER_AGENT}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(f"{api_base}/gateway/bot", headers=headers) as response,
        ):
            if response.status != 200:
                log.debug(
                    "GET /gateway/bot answered %d: sharding left to the default", response.status
                )
                return None
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        log.debug("GET /gateway/bot failed (%s): sharding left to the default", exc)
        return None
    shards = body.get("shards") if isinstance(body, dict) else None
    return (
        shards if isinstance(shards, int) and not isinstance(shards, bool) and shards >= 1 else None
    )
