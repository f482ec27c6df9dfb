"""Where bot-mode traffic goes: `DISCORD_API_BASE`, at the API version the bot speaks."""

from __future__ import annotations

import re

BOT_API_VERSION = 10
"""The version discord.py 2.x speaks (its `INTERNAL_API_VERSION`); the interactions endpoint too."""


def bot_api_base(api_base: str) -> str:
    """`api_base` without a trailing slash, its `/api/vN` switched to `/api/v10`.

    `DISCORD_API_BASE` defaults to v9 for the relay's REST messenger; the bot speaks v10 with
    discord.py, so `https://discord.com/api/v9` becomes `https://discord.com/api/v10`. A base
    without a version (a proxy, a test fake) is used as it is.
    """
    return re.sub(r"/api/v[0-9]+$", f"/api/v{BOT_API_VERSION}", api_base.rstrip("/"))
