"""The away note: what the replies may say about the owner's absence ("at the gym, back at 18:00").

Set with `away on --note`, `away note TEXT` (cleared with `--clear`), kept across restarts; when
none is set, AWAY_NOTE from config.json; when that is empty, the owner's Discord custom status
text, as the plugin reports it. Also keeps the owner's display name from the same reports.
"""

from __future__ import annotations

import logging

from server.storage.database import DatabaseError
from server.storage.owner_store import OwnerStore

log = logging.getLogger(__name__)

NOTE_KEY = "away_note"
MAX_NOTE = 500
"""Characters of a note kept (a sentence or two; it goes into every system prompt)."""


class AwayNote:
    """The note set by the owner, else the configured one, else the Discord custom status."""

    def __init__(self, store: OwnerStore, *, configured: str = "") -> None:
        self._store = store
        self._configured = configured.strip()
        self._set = ""
        self.custom_status = ""
        self.owner_name = ""

    async def start(self) -> None:
        """Take up the note set before a restart."""
        try:
            state = await self._store.owner_state()
        except DatabaseError as exc:
            log.error("could not read the away note: %s", exc)
            return
        self._set = state.get(NOTE_KEY, "")

    @property
    def text(self) -> str:
        """The note in force ("" for none)."""
        return self._set or self._configured or self.custom_status

    @property
    def source(self) -> str:
        """Where the note in force comes from, for `away status`."""
        if self._set:
            return "set with away note"
        if self._configured:
            return "AWAY_NOTE in config.json"
        return "your Discord custom status" if self.custom_status else ""

    def reported(self, custom_status: str | None, name: str | None) -> None:
        """The plugin reported the owner's custom status text and display name (None: unknown)."""
        if custom_status is not None:
            self.custom_status = custom_status.strip()[:MAX_NOTE]
        if name is not None:
            self.owner_name = name.strip()

    async def set(self, text: str) -> None:
        """Set the note ("" clears it, so AWAY_NOTE or the custom status apply again)."""
        self._set = " ".join(text.split())[:MAX_NOTE]
        log.info("away note %s", f"set: {self._set!r}" if self._set else "cleared")
        try:
            await self._store.set_owner_state({NOTE_KEY: self._set or None})
        except DatabaseError as exc:
            log.error("the away note is not remembered across a restart: %s", exc)
