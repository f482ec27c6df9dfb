"""The macro messenger typing into a real Tk window on a private Xvfb display."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import select
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyperclip
import pytest

from server.messengers.base import MessengerError
from server.messengers.macro import MacroMessenger

# Xvfb, xclip and select() on pipes: the real-window test runs on Linux (and the BSDs) only.
pytestmark = pytest.mark.posix

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(__file__).with_name("gui_target.py")
TIMEOUT = 10.0
XVFB_SCREEN = ("-screen", "0", "1280x720x24", "-nolisten", "tcp")
SCREEN_CENTRE = (640, 360)


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(
            f"{tool} is not installed; the macro messenger test needs it: run `make system-deps` "
            "(apt-get install xvfb xclip)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def xvfb_display(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Xvfb server; `$DISPLAY` points at it for this process and its children."""
    _require("Xvfb")
    _require("xclip")
    workdir = tmp_path_factory.mktemp("xvfb")
    # python3-xlib (pyautogui's X client) refuses to connect without an Xauthority file.
    xauthority = workdir / "Xauthority"
    xauthority.touch()
    log = workdir / "Xvfb.log"
    read_fd, write_fd = os.pipe()
    # -displayfd: Xvfb picks a free display number and writes it once it accepts connections.
    with log.open("wb") as log_file:
        server = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), *XVFB_SCREEN],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], TIMEOUT)
        number = os.read(read_fd, 16).decode().strip() if ready else ""
        if not number:
            pytest.fail(f"Xvfb did not start: {log.read_text(errors='replace')}", pytrace=False)
        with pytest.MonkeyPatch.context() as env:
            env.setenv("DISPLAY", f":{number}")
            env.setenv("XAUTHORITY", str(xauthority))
            yield f":{number}"
    finally:
        os.close(read_fd)
        server.kill()
        server.wait()


class Target:
    """The Tk message box in a subprocess; each submitted message arrives as one line."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, str(TARGET)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line.rstrip("\n"))

    def wait_ready(self) -> None:
        try:
            line = self._lines.get(timeout=TIMEOUT)
        except queue.Empty:
            line = ""
        if line != "ready":
            self.close()
            assert self._process.stderr is not None
            pytest.fail(f"the Tk target did not start: {self._process.stderr.read()}")

    async def next_message(self) -> str:
        line = await asyncio.to_thread(self._lines.get, timeout=TIMEOUT)
        text = json.loads(line)
        assert isinstance(text, str)
        return text

    def close(self) -> None:
        self._process.kill()
        self._process.wait()


@pytest.fixture(scope="module")
def target(xvfb_display: str) -> Iterator[Target]:
    """The Tk message box, focused and ready to receive keys."""
    box = Target()
    box.wait_ready()
    yield box
    box.close()


@pytest.fixture
def messenger(target: Target) -> MacroMessenger:
    """A messenger with short waits: the Tk box pastes synchronously."""
    return MacroMessenger(settle_seconds=0.05, key_pause_seconds=0.01)


def wait_for_clipboard(text: str) -> None:
    """Return once the clipboard serves `text` (xclip takes it over in the background)."""
    deadline = time.monotonic() + TIMEOUT
    while pyperclip.paste() != text:
        assert time.monotonic() < deadline, f"the clipboard never held {text!r}"
        time.sleep(0.01)


async def expect_only(target: Target, messenger: MacroMessenger, expected: list[str]) -> None:
    """The next messages are exactly `expected`, then nothing until a fresh sentinel."""
    assert [await target.next_message() for _ in expected] == expected
    await messenger.send("1", "sentinel", nonce="s")
    assert await target.next_message() == "sentinel"


async def test_ascii_text_arrives_intact(target: Target, messenger: MacroMessenger) -> None:
    await messenger.send("123", "hello from the relay, 100% ok!", nonce="n1")
    await expect_only(target, messenger, ["hello from the relay, 100% ok!"])


async def test_unicode_and_multiline_each_make_one_message(
    target: Target, messenger: MacroMessenger
) -> None:
    multiline = "first line\nsecond line\n\n  indented: café ✓"
    await messenger.send("123", "héllo ✓ 日本語", nonce="n1")
    await messenger.send("123", multiline, nonce="n2")
    await expect_only(target, messenger, ["héllo ✓ 日本語", multiline])


async def test_concurrent_sends_do_not_interleave(
    target: Target, messenger: MacroMessenger
) -> None:
    first = "\n".join(f"first reply, line {i}" for i in range(20))
    second = "\n".join(f"second reply, line {i} ✓" for i in range(20))
    await asyncio.gather(
        messenger.send("1", first, nonce="a"), messenger.send("2", second, nonce="b")
    )
    await expect_only(target, messenger, [first, second])


async def test_cancelled_send_finishes_before_the_next_starts(target: Target) -> None:
    slow = MacroMessenger(settle_seconds=0.3, key_pause_seconds=0.01)
    first = asyncio.create_task(slow.send("1", "the cancelled one", nonce="a"))
    await asyncio.to_thread(wait_for_clipboard, "the cancelled one")  # its thread is typing
    first.cancel()
    await slow.send("1", "the next one", nonce="b")
    with pytest.raises(asyncio.CancelledError):
        await first
    await expect_only(target, slow, ["the cancelled one", "the next one"])


async def test_clipboard_is_restored(target: Target, messenger: MacroMessenger) -> None:
    pyperclip.copy("the person's clipboard ✓")
    wait_for_clipboard("the person's clipboard ✓")
    await messenger.send("123", "a reply", nonce="n1")
    assert pyperclip.paste() == "the person's clipboard ✓"
    await expect_only(target, messenger, ["a reply"])


async def test_fail_safe_aborts_and_restores_clipboard(
    target: Target, messenger: MacroMessenger
) -> None:
    import pyautogui  # noqa: PLC0415 -- connects to $DISPLAY, which the fixture sets

    pyperclip.copy("kept")
    wait_for_clipboard("kept")
    pyautogui.moveTo(0, 0, _pause=False)
    try:
        with pytest.raises(MessengerError, match=r"channel 123 .*fail-safe \(mouse in a screen"):
            await messenger.send("123", "never typed", nonce="n1")
    finally:
        pyautogui.FAILSAFE = False  # the way out of the corner; the messenger turns it back on
        pyautogui.moveTo(*SCREEN_CENTRE, _pause=False)
    assert pyperclip.paste() == "kept"
    await expect_only(target, messenger, [])


def _send_in_subprocess(env: dict[str, str]) -> str:
    """Run one send in a fresh interpreter (pyautogui binds to a display once per process)."""
    code = (
        "import asyncio, sys\n"
        "from server.messengers.base import MessengerError\n"
        "from server.messengers.macro import MacroMessenger\n"
        "assert 'pyautogui' not in sys.modules, 'pyautogui imported eagerly'\n"
        "try:\n"
        "    asyncio.run(MacroMessenger().send('123', 'hi', nonce='n'))\n"
        "except MessengerError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_without_display_raises_clear_error() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    out = _send_in_subprocess(env)
    assert "the macro messenger needs a desktop session: $DISPLAY is not set" in out


def test_without_clipboard_tool_raises_clear_error(xvfb_display: str, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no xclip, xsel or wl-copy to be found
    env.pop("WAYLAND_DISPLAY", None)
    out = _send_in_subprocess(env)
    assert "cannot use the clipboard for channel 123: install xclip or xsel" in out
