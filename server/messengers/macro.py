"""The GUI macro messenger: pastes the reply into the focused Discord window and presses Enter."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

from server.messengers import desktop
from server.messengers.base import MessengerError

log = logging.getLogger(__name__)


def _import_gui() -> tuple[Any, Any]:
    """Import pyautogui and pyperclip; pyautogui connects to the X server as it is imported."""
    if desktop.uses_x11() and not os.environ.get("DISPLAY"):
        raise MessengerError("the macro messenger needs a desktop session: $DISPLAY is not set")
    try:
        import pyautogui  # noqa: PLC0415 -- connects to X: only when the macro is used
        import pyperclip  # noqa: PLC0415
    except ImportError as exc:
        raise MessengerError(
            f"the macro messenger needs its extra: pip install 'discord-auto-reply[macro]' ({exc})"
        ) from exc
    except Exception as exc:  # Xlib's connection errors when $DISPLAY names no running server
        raise MessengerError(
            "the macro messenger cannot reach the desktop session on "
            f"$DISPLAY={os.environ.get('DISPLAY')!r}: {exc}"
        ) from exc
    return pyautogui, pyperclip


class MacroMessenger:
    """Types replies into whatever window has keyboard focus, like the person would.

    Limitation: it cannot choose the channel. The person keeps the conversation open in the
    Discord desktop client; `channel_id` is only logged, and `reply_to` and `nonce` are ignored
    (the client posts a plain message with a nonce of its own). The text goes through the
    clipboard, because `pyautogui.write` drops non-ASCII characters and a typed newline would
    send early; the person's clipboard text is put back afterwards (non-text contents are not).
    Moving the mouse into a screen corner aborts a send (pyautogui's fail-safe).
    """

    name = "macro"

    def __init__(
        self,
        *,
        settle_seconds: float = 0.3,
        key_pause_seconds: float = 0.05,
        clipboard_timeout_seconds: float = 2.0,
    ) -> None:
        """`settle_seconds`: wait for the client after pasting and after sending.

        `key_pause_seconds`: pyautogui's pause after each key action (`pyautogui.PAUSE`).
        `clipboard_timeout_seconds`: how long the clipboard may take to serve new text.
        """
        self._settle_seconds = settle_seconds
        self._key_pause_seconds = key_pause_seconds
        self._clipboard_timeout_seconds = clipboard_timeout_seconds
        self._lock = asyncio.Lock()
        # A cancelled send releases `_lock` while its thread may still be typing; this lock keeps
        # the next send's keystrokes from starting until that thread is done.
        self._keyboard = threading.Lock()

    async def send(
        self, channel_id: str, content: str, *, nonce: str, reply_to: str | None = None
    ) -> None:
        """Paste `content` into the focused window and press Enter, one send at a time."""
        async with self._lock:
            log.info(
                "macro: pasting %d characters meant for channel %s into the focused window",
                len(content),
                channel_id,
            )
            await asyncio.to_thread(self._paste_and_submit, channel_id, content)

    def _paste_and_submit(self, channel_id: str, content: str) -> None:
        """Blocking: swap the clipboard, paste, press Enter, restore the clipboard."""
        pyautogui, pyperclip = _import_gui()
        with self._keyboard:
            pyautogui.FAILSAFE = True
            pyautogui.PAUSE = self._key_pause_seconds
            try:
                saved = pyperclip.paste()
                try:
                    if not self._copy(pyperclip, content):
                        # Pasting now could post the person's own clipboard instead of the reply.
                        raise MessengerError(
                            f"the macro send to channel {channel_id} was abandoned: the clipboard "
                            f"did not take the reply within {self._clipboard_timeout_seconds} s"
                        )
                    pyautogui.hotkey(*desktop.paste_hotkey())
                    time.sleep(self._settle_seconds)
                    pyautogui.press("enter")
                finally:
                    if not self._copy(pyperclip, saved):
                        log.warning("macro: the person's clipboard could not be restored")
            except pyperclip.PyperclipException as exc:
                raise MessengerError(
                    f"the macro messenger cannot use the clipboard for channel {channel_id}: "
                    f"{desktop.clipboard_help()} ({exc})"
                ) from exc
            except pyautogui.FailSafeException as exc:
                raise MessengerError(
                    f"the macro send to channel {channel_id} was aborted by the fail-safe "
                    "(mouse in a screen corner)"
                ) from exc
            time.sleep(self._settle_seconds)

    def _copy(self, pyperclip: Any, text: str) -> bool:
        """Put `text` on the clipboard; False if it is not served back in time.

        `copy` returns before the forked xclip owns the clipboard: a paste right after it can
        still get the previous contents, or nothing (about one test run in two without this wait).
        """
        pyperclip.copy(text)
        deadline = time.monotonic() + self._clipboard_timeout_seconds
        while pyperclip.paste() != text:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    async def typing(self, channel_id: str) -> None:
        """Do nothing: the Discord client shows the typing indicator itself when text is pasted."""

    async def aclose(self) -> None:
        """Nothing to release."""
