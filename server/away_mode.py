"""Away mode: follows the owner's Discord status and the manual switch, and when the owner comes
back tells them what the relay said for them.

The rule itself (away or present, may the relay speak) is pure, in `reply_policy.Presence`; this
keeps it up to date, stores the switch and the start of the away period, and tells the plugins.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from server import protocol
from server.config import ReplyWhen
from server.database import DatabaseError
from server.drafts import Drafts
from server.owner_store import ChatSummary, OwnerStore, first_line
from server.reply_policy import AwaySwitch, DiscordStatus, Presence
from server.rules import RuleSet

log = logging.getLogger(__name__)

SWITCH_KEY = "away_switch"
SINCE_KEY = "away_since"
SWITCHES: tuple[AwaySwitch, ...] = ("auto", "on", "off")


def summary_frame(
    since: float, chats: list[ChatSummary], drafts: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The return summary for the plugin, or None when there is nothing to tell."""
    if not chats and not drafts:
        return None
    return protocol.summary(
        since,
        [
            {
                "user": chat.pair[0],
                "channel": chat.pair[1],
                "answered": chat.answered,
                "replies": chat.replies,
            }
            for chat in chats
        ],
        [
            {
                "id": draft["id"],
                "user": draft["user"],
                "author": draft["author"],
                "channel": draft["channel"],
                "guild": draft["guild"],
                "content": first_line(draft["content"]),
            }
            for draft in drafts
        ],
    )


class AwayMode:
    """The owner's presence as the relay sees it: Discord status, manual switch, away period."""

    def __init__(
        self,
        presence: Presence,
        store: OwnerStore,
        drafts: Drafts,
        *,
        reply_when: ReplyWhen,
        rules: Callable[[], RuleSet],
        notify: Callable[[dict[str, Any]], None],
    ) -> None:
        self._presence = presence
        self._store = store
        self._drafts = drafts
        self._reply_when = reply_when
        self._rules = rules
        self._notify = notify
        self._away_since: float | None = None
        self._told: dict[str, Any] | None = None

    async def start(self) -> None:
        """Take up the switch and the away period stored before a restart. The Discord status is
        not: until the plugin reports one, the owner counts as present."""
        try:
            state = await self._store.owner_state()
        except DatabaseError as exc:
            log.error("could not read the away switch, so it is on auto: %s", exc)
            return
        stored = state.get(SWITCH_KEY)
        self._presence.switch = next((s for s in SWITCHES if s == stored), "auto")
        since = state.get(SINCE_KEY)
        self._away_since = float(since) if since else None
        if self._presence.switch != "auto":
            log.info("away mode is switched %s by hand", self._presence.switch)

    def status(self) -> dict[str, Any]:
        """The `away_status` frame: switch, last status, whether replies go out now."""
        presence = self._presence
        return protocol.away_status(
            switch=presence.switch,
            presence=presence.status,
            away=presence.away,
            reply_when=self._reply_when,
            replying=presence.allows(self._reply_when).reply,
            always_rules=sum(rule.reply_when == "always" for rule in self._rules().rules),
        )

    async def report(self, status: DiscordStatus) -> None:
        """The plugin reported the owner's Discord status."""
        if status != self._presence.status:
            log.info("your Discord status is %s", status)
        self._presence.status = status
        await self._settle()

    async def switch(self, switch: AwaySwitch) -> dict[str, Any]:
        """Set the manual switch (`auto` follows the Discord status again); the new status."""
        self._presence.switch = switch
        log.info("away mode switched %s", switch)
        await self._save({SWITCH_KEY: switch})
        await self._settle()
        return self.status()

    async def _settle(self) -> None:
        """Start or end the away period, with the return summary at its end; tell the plugins
        the status if it changed."""
        if self._presence.away and self._away_since is None:
            self._away_since = time.time()
            log.info("you are away: replies follow REPLY_WHEN %r", self._reply_when)
            await self._save({SINCE_KEY: repr(self._away_since)})
        elif not self._presence.away and self._away_since is not None:
            since, self._away_since = self._away_since, None
            log.info("you are back")
            await self._save({SINCE_KEY: None})
            await self._tell_summary(since)
        status = self.status()
        if status != self._told:
            self._told = status
            self._notify(status)

    async def _tell_summary(self, since: float) -> None:
        try:
            chats = await self._store.away_summary(since)
        except DatabaseError as exc:
            log.error("no summary of your time away: %s", exc)
            return
        frame = summary_frame(since, chats, await self._drafts.frames())
        if frame is not None:
            self._notify(frame)

    async def _save(self, values: dict[str, str | None]) -> None:
        try:
            await self._store.set_owner_state(values)
        except DatabaseError as exc:
            log.error("the away switch is not remembered across a restart: %s", exc)
