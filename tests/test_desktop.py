"""The macro's per-platform choices: paste shortcut, X display, clipboard advice."""

from __future__ import annotations

import pytest

from server.messengers.desktop import clipboard_help, paste_hotkey, uses_x11


@pytest.mark.parametrize(
    ("platform", "keys"),
    [
        ("darwin", ("command", "v")),
        ("win32", ("ctrl", "v")),
        ("linux", ("ctrl", "v")),
        ("freebsd14", ("ctrl", "v")),
    ],
)
def test_paste_is_cmd_v_on_macos_and_ctrl_v_elsewhere(platform: str, keys: tuple[str, str]) -> None:
    assert paste_hotkey(platform) == keys


@pytest.mark.parametrize(
    ("platform", "x11"),
    [("linux", True), ("freebsd14", True), ("darwin", False), ("win32", False)],
)
def test_only_x11_platforms_need_a_display(platform: str, x11: bool) -> None:
    assert uses_x11(platform) is x11


def test_clipboard_advice_names_xclip_only_where_it_exists() -> None:
    assert clipboard_help("linux") == "install xclip or xsel"
    for platform in ("win32", "darwin"):
        assert "xclip" not in clipboard_help(platform)
