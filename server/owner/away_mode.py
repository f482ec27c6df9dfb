"""Away mode: follows the owner's Discord status and the manual switch, and when the owner comes
back tells them what the relay said for them.

The rule itself (away or present, may the relay speak) is pure, in `reply_policy.Presence`; this
keeps it up to date, stores the switch and the start of the away period, and tells the plugins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from server.config import ReplyWhen
from server.conversation.reply_policy import AWAY_STATUSES, AwaySwitch, DiscordStatus, Presence
from server.conversation.rules import RuleSet
from server.owner.drafts import Drafts
from server.storage.database import DatabaseError
from server.storage.owner_store import ChatSummary, OwnerStore, first_line
from server.transport import protocol

log = logging.getLogger(__name__)

SWITCH_KEY = "away_switch"
SINCE_KEY = "away_since"
SWITCHES: tuple[AwaySwitch, ...] = ("auto", "on", "off")
SCHEDULE_RECHECK_SECONDS = 3600.0
"""The longest the away hours go unchecked (the clock may be changed under the relay)."""


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
        zone_name: str = "",
    ) -> None:
        """`zone_name`: TIMEZONE, the zone of the away hours, shown with them."""
        self._presence = presence
        self._store = store
        self._drafts = drafts
        self._reply_when = reply_when
        self._rules = rules
        self._notify = notify
        self._zone_name = zone_name
        self._away_since: float | None = None
        self._told: dict[str, Any] | None = None
        self._timer: asyncio.Task[None] | None = None
        self.note_fields: Callable[[], dict[str, str]] = dict
        """The away note's fields every `away_status` frame carries (`note`, `note_source`)."""

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
        if self._presence.schedule.windows:
            self._timer = asyncio.create_task(self._follow_schedule(), name="away hours")

    async def _follow_schedule(self) -> None:
        """Start and end the away period as the away hours begin and end."""
        while True:
            now = time.time()
            change = self._presence.schedule.next_change(now)
            wait = SCHEDULE_RECHECK_SECONDS if change is None else change - now
            await asyncio.sleep(min(max(wait, 0.0), SCHEDULE_RECHECK_SECONDS) + 0.01)
            await self._settle()

    async def aclose(self) -> None:
        """Stop following the away hours."""
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer

    @property
    def away_since(self) -> float | None:
        """When the current away period began (Unix time); None while the owner is present."""
        return self._away_since

    def status(self) -> dict[str, Any]:
        """The `away_status` frame: switch, last status, whether replies go out now, the away
        note and where it comes from."""
        presence = self._presence
        return (
            protocol.away_status(
                switch=presence.switch,
                presence=presence.status,
                away=presence.away,
                reply_when=self._reply_when,
                replying=presence.allows(self._reply_when).reply,
                always_rules=sum(rule.reply_when == "always" for rule in self._rules().rules),
                schedule=self._schedule_status(),
            )
            | self.note_fields()
        )

    def retell(self) -> None:
        """Tell the plugins the status again if it changed (the away note was set)."""
        status = self.status()
        if status != self._told:
            self._told = status
            self._notify(status)

    def _schedule_status(self) -> dict[str, Any] | None:
        """The away hours in force now (window, end) or the next start; None without any."""
        schedule = self._presence.schedule
        if not schedule.windows:
            return None
        now = time.time()
        active = schedule.active(now)
        return {
            "window": active.window if active else None,
            "until": active.until if active else None,
            "next": None if active else schedule.next_start(now),
            "zone": self._zone_name,
        }

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
            presence, active = self._presence, self._presence.scheduled(self._away_since)
            by_hours = presence.switch == "auto" and presence.status not in AWAY_STATUSES
            hours = f" (away hours {active.window!r})" if active and by_hours else ""
            log.info("you are away%s: replies follow REPLY_WHEN %r", hours, self._reply_when)
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
