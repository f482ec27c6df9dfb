"""What the desktop offers the macro messenger on each platform (a `sys.platform` value)."""

from __future__ import annotations

import sys


def paste_hotkey(platform: str = sys.platform) -> tuple[str, str]:
    """The keys that paste in Discord: Cmd+V on macOS, Ctrl+V on Windows, Linux and the BSDs."""
    return ("command", "v") if platform == "darwin" else ("ctrl", "v")


def uses_x11(platform: str = sys.platform) -> bool:
    """True where pyautogui drives an X server named by `$DISPLAY`: all but macOS and Windows."""
    return not (platform == "darwin" or platform.startswith("win"))


def clipboard_help(platform: str = sys.platform) -> str:
    """What to do when pyperclip finds no clipboard on `platform`."""
    if uses_x11(platform):
        return "install xclip or xsel"
    # pyperclip uses the Win32 clipboard API or pbcopy/pbpaste there, which are always present.
    return "the system clipboard did not answer; is another program holding it?"
