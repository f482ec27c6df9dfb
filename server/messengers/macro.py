"""The GUI macro messenger: pastes the reply into the Discord window and presses Enter.

It types only once the plugin has opened the reply's channel in a focused Discord window and the
person has left that window alone for a while (see `window_guard`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

from server.messengers import desktop
from server.messengers.base import Messenger, MessengerError
from server.messengers.window_guard import (
    Clearance,
    TypingSpan,
    WindowGuard,
    clearance,
    idle_clearance,
)
from server.transport.protocol import Opened

log = logging.getLogger(__name__)

# The plugin reports the macro's own keys as activity; these count as the macro's for this long
# after its last key (the browser handles a key some milliseconds after it is pressed).
_OWN_KEYS_GRACE_SECONDS = 0.5


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


class MacroMessenger(Messenger):
    """Types replies into the Discord window, like the person would, but only when it is safe.

    Before each message the plugin (through `guard`) opens the reply's channel and confirms that
    Discord shows it with keyboard focus; the macro also waits until the person has not touched
    the Discord window for `idle_seconds`. Until then it asks again every `retry_seconds`, and
    gives up after `timeout` seconds; with no plugin connected it never types. `reply_to` and
    `nonce` are ignored (the client posts a plain message with a nonce of its own). The text goes
    through the clipboard, because `pyautogui.write` drops non-ASCII characters and a typed
    newline would send early; the person's clipboard text is put back afterwards (non-text
    contents are not). Moving the mouse into a screen corner aborts a send (pyautogui's fail-safe).
    """

    name = "macro"

    def __init__(
        self,
        guard: WindowGuard,
        *,
        timeout: float = 30.0,
        idle_seconds: float = 20.0,
        retry_seconds: float = 1.0,
        settle_seconds: float = 0.3,
        key_pause_seconds: float = 0.05,
        clipboard_timeout_seconds: float = 2.0,
    ) -> None:
        """`guard`: the plugin connection; `timeout`: how long one message may wait to be typed.

        `idle_seconds`: how long the person must have left Discord alone; `retry_seconds`: how
        often to ask the plugin again. `settle_seconds`: wait for the client after pasting and
        after sending. `key_pause_seconds`: pyautogui's pause after each key action
        (`pyautogui.PAUSE`). `clipboard_timeout_seconds`: how long the clipboard may take to
        serve new text.
        """
        self._guard = guard
        self._timeout = timeout
        self._idle_seconds = idle_seconds
        self._retry_seconds = retry_seconds
        self._settle_seconds = settle_seconds
        self._key_pause_seconds = key_pause_seconds
        self._clipboard_timeout_seconds = clipboard_timeout_seconds
        self._lock = asyncio.Lock()
        # A cancelled send releases `_lock` while its thread may still be typing; this lock keeps
        # the next send's keystrokes from starting until that thread is done.
        self._keyboard = threading.Lock()
        self._own_typing: list[TypingSpan] = []  # the recent ones: older activity is moot

    async def send(
        self,
        channel_id: str,
        content: str,
        *,
        nonce: str,
        reply_to: str | None = None,
        deadline: float | None = None,
    ) -> None:
        """Paste `content` into `channel_id` and press Enter once it is safe; one send at a time.

        Raises `MessengerError` naming the channel and the last reason when it never became safe
        before `SEND_TIMEOUT_SECONDS`, or before `deadline` (loop time) where that comes first.
        """
        try:
            async with asyncio.timeout_at(deadline):
                await self._lock.acquire()
        except TimeoutError:
            raise MessengerError(
                f"the macro send to channel {channel_id} was given up: another send held the "
                "keyboard past the reply's deadline"
            ) from None
        try:
            await asyncio.to_thread(self._desktop, channel_id)  # before moving Discord at all
            await self._wait_until_clear(channel_id, deadline)
            log.info("macro: pasting %d characters into channel %s", len(content), channel_id)
            await asyncio.to_thread(self._paste_and_submit, channel_id, content)
        finally:
            self._lock.release()

    async def _wait_until_clear(self, channel_id: str, limit: float | None) -> None:
        """Ask the plugin to open the channel until `clearance` allows typing, or give up at
        SEND_TIMEOUT_SECONDS or `limit` (loop time), whichever comes first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        if limit is not None:
            deadline = min(deadline, limit)
        told = ""
        while True:
            verdict = idle_clearance(
                self._guard.last_activity(),
                now=time.time(),
                idle_seconds=self._idle_seconds,
                own_typing=self._own_typing,
            )
            if verdict.may_type:  # only then move Discord to the channel
                verdict = await self._open(channel_id, deadline - loop.time())
                if verdict.may_type:
                    return
            remaining = deadline - loop.time()
            if verdict.retry_in >= remaining:
                # The last try may have only run out of time: name what kept it waiting before.
                earlier = f" (before that: {told})" if told and told != verdict.reason else ""
                raise MessengerError(
                    f"channel {channel_id}: the macro did not type the reply "
                    f"(SEND_TIMEOUT_SECONDS is {self._timeout:g}): {verdict.reason}{earlier}"
                )
            if verdict.reason != told:
                log.info("macro: waiting to type into channel %s: %s", channel_id, verdict.reason)
                told = verdict.reason
            # Look again at least every retry_seconds: a late report may show it was our own keys.
            await asyncio.sleep(min(verdict.retry_in, self._retry_seconds))

    async def _open(self, channel_id: str, timeout: float) -> Clearance:
        """Ask the plugin to show the channel, then decide with its answer."""
        opened: Opened | None = None
        no_answer = ""
        try:
            opened = await self._guard.open_channel(channel_id, max(timeout, 0.0))
        except TimeoutError:
            no_answer = (
                "no plugin answered; the macro types only into a channel the plugin has opened "
                "(is Discord open with the plugin enabled?)"
            )
        except ConnectionError as exc:
            no_answer = str(exc)
        return clearance(
            channel_id,
            opened,
            last_activity=self._guard.last_activity(),
            now=time.time(),
            idle_seconds=self._idle_seconds,
            retry_seconds=self._retry_seconds,
            own_typing=self._own_typing,
            no_answer=no_answer,
        )

    def _desktop(self, channel_id: str) -> tuple[Any, Any]:
        """Blocking: pyautogui and pyperclip, once the display and the clipboard both work."""
        pyautogui, pyperclip = _import_gui()
        try:
            pyperclip.paste()
        except pyperclip.PyperclipException as exc:
            raise MessengerError(
                f"the macro messenger cannot use the clipboard for channel {channel_id}: "
                f"install xclip or xsel ({exc})"
            ) from exc
        return pyautogui, pyperclip

    def _paste_and_submit(self, channel_id: str, content: str) -> None:
        """Blocking: swap the clipboard, paste, press Enter, restore the clipboard."""
        pyautogui, pyperclip = _import_gui()
        with self._keyboard:
            pyautogui.FAILSAFE = True
            pyautogui.PAUSE = self._key_pause_seconds
            started = time.time()
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
            finally:
                self._remember_typing(TypingSpan(started, time.time() + _OWN_KEYS_GRACE_SECONDS))
            time.sleep(self._settle_seconds)

    def _remember_typing(self, span: TypingSpan) -> None:
        """Keep the spans of our own keys that activity reports may still point into."""
        recent = [s for s in self._own_typing if s.end > span.start - self._idle_seconds]
        self._own_typing = [*recent, span]

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
