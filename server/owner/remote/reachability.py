"""Can the owner's bot reach the owner? Log in, open the DM, send a test message: for `check`,
one line either way (the token never in it)."""

from __future__ import annotations

import httpx2

from server.bot.endpoints import bot_api_base
from server.config import Settings
from server.messengers.rest import USER_AGENT

TIMEOUT_SECONDS = 15.0
TEST_TEXT = "A test message from `discord-auto-reply check`: drafts and alerts will arrive here."


def _said(response: httpx2.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return f"HTTP {response.status_code}, code {body.get('code', '?')}: {body.get('message', '')}"


async def check_owner_bot(settings: Settings) -> tuple[bool, str]:
    """Whether the owner's bot can DM OWNER_ID (a test DM is sent), and what happened."""
    api = bot_api_base(settings.DISCORD_API_BASE)
    headers = {"Authorization": f"Bot {settings.DISCORD_BOT_TOKEN}", "User-Agent": USER_AGENT}
    try:
        async with httpx2.AsyncClient(headers=headers, timeout=TIMEOUT_SECONDS) as http:
            me = await http.get(f"{api}/users/@me")
            if me.status_code == 401:
                return False, "Discord refused DISCORD_BOT_TOKEN (401): copy the bot's token again"
            if not me.is_success:
                return False, f"cannot log in: {_said(me)}"
            owner = settings.OWNER_ID
            if not owner:
                return True, "logged in; DMs go to the id the plugin reports (OWNER_ID is empty)"
            opened = await http.post(f"{api}/users/@me/channels", json={"recipient_id": owner})
            if not opened.is_success:
                return False, f"cannot open a DM with OWNER_ID {owner}: {_said(opened)}"
            channel = opened.json()["id"]
            body = {"content": TEST_TEXT, "allowed_mentions": {"parse": []}}
            sent = await http.post(f"{api}/channels/{channel}/messages", json=body)
    except httpx2.TransportError as exc:
        return False, f"cannot reach {api}: {type(exc).__name__}: {exc}"
    if not sent.is_success:
        hint = "; share a server with the bot and allow DMs from its members"
        return False, f"cannot DM OWNER_ID {owner}: {_said(sent)}{hint}"
    return True, f"test DM sent to OWNER_ID {owner}"
