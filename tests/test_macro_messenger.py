"""The macro messenger typing into a real Tk window on a private Xvfb display.

The Tk window stands for Discord's; a real websocket client plays the plugin, which opens the
channel (or not), says whether the window has focus, and reports the person's activity.
"""

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
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pyperclip
import pytest
import pytest_asyncio

from server.messengers.base import MessengerError
from server.messengers.macro import MacroMessenger
from server.transport.gateway import Gateway
from tests.fakes.openai_api import FakeOpenAI
from tests.relay_harness import PluginClient, RunningApp, opened, running_app

# Xvfb, xclip and select() on pipes: the real-window test runs on Linux (and the BSDs) only.
pytestmark = pytest.mark.posix

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(__file__).with_name("gui_target.py")
TIMEOUT = 10.0
XVFB_SCREEN = ("-screen", "0", "1280x720x24", "-nolisten", "tcp")
SCREEN_CENTRE = (640, 360)
IDLE = 0.5  # MACRO_IDLE_SECONDS in these tests
NO_RULES = "REPLY_TO = []\n"


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


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningApp]:
    """The real server with the macro messenger (built from the settings) and its gateway."""
    settings = {"MESSENGER": "macro", "SEND_TIMEOUT_SECONDS": 2.0, "MACRO_IDLE_SECONDS": IDLE}
    async with running_app(tmp_path, NO_RULES, **settings) as running:
        yield running


@pytest_asyncio.fixture
async def plugin(server: RunningApp) -> AsyncIterator[PluginClient]:
    """A connected plugin that shows every channel it is asked to open, focused."""
    client = await PluginClient.connect(server.url)
    yield client
    await client.close()


def macro(gateway: Gateway, **overrides: Any) -> MacroMessenger:
    """A messenger with short waits: the Tk box pastes synchronously."""
    options: dict[str, Any] = {
        "timeout": TIMEOUT,
        "idle_seconds": IDLE,
        "retry_seconds": 0.05,
        "settle_seconds": 0.05,
        "key_pause_seconds": 0.01,
    }
    return MacroMessenger(gateway, **{**options, **overrides})


@pytest.fixture
def messenger(target: Target, server: RunningApp, plugin: PluginClient) -> MacroMessenger:
    """A messenger guarded by the real gateway, with the plugin connected."""
    return macro(server.app.gateway)


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


async def test_cancelled_send_finishes_before_the_next_starts(
    target: Target, server: RunningApp, plugin: PluginClient
) -> None:
    slow = macro(server.app.gateway, settle_seconds=0.3)
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
    """Run one send in a fresh interpreter (pyautogui binds to a display once per process).

    The desktop is checked before the plugin is asked to move Discord: a guard that is asked
    anything fails the send.
    """
    code = (
        "import asyncio, sys\n"
        "from server.messengers.base import MessengerError\n"
        "from server.messengers.macro import MacroMessenger\n"
        "assert 'pyautogui' not in sys.modules, 'pyautogui imported eagerly'\n"
        "class NotAsked:\n"
        "    async def open_channel(self, channel_id, timeout):\n"
        "        raise AssertionError('the plugin was asked before the desktop was checked')\n"
        "    def last_activity(self):\n"
        "        raise AssertionError('the plugin was asked before the desktop was checked')\n"
        "try:\n"
        "    asyncio.run(MacroMessenger(NotAsked()).send('123', 'hi', nonce='n'))\n"
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


async def test_the_channel_is_opened_first_and_the_text_lands(
    target: Target, server: RunningApp, plugin: PluginClient
) -> None:
    app_macro = server.app.messenger  # as `serve` builds it from the settings
    assert isinstance(app_macro, MacroMessenger)
    await app_macro.send("123", "into the right chat ✓", nonce="n1")
    assert [frame["channel"] for _, frame in plugin.open_requests] == ["123"]
    await expect_only(target, app_macro, ["into the right chat ✓"])


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            lambda frame: opened(frame, channel="999", error="Discord still shows channel 999"),
            "Discord shows channel 999, not the reply's channel: Discord still shows channel 999",
        ),
        (lambda frame: opened(frame, focused=False), "does not have keyboard focus"),
        (lambda frame: None, "no plugin answered"),
    ],
    ids=["wrong channel", "no focus", "no answer"],
)
async def test_nothing_is_typed_without_the_channel_open_and_focused(
    target: Target,
    server: RunningApp,
    plugin: PluginClient,
    answer: Any,
    reason: str,
) -> None:
    plugin.answer_open = answer
    guarded = macro(server.app.gateway, timeout=0.6)
    with pytest.raises(MessengerError) as caught:
        await guarded.send("123", "must not be typed", nonce="n1")
    assert str(caught.value).startswith(
        "channel 123: the macro did not type the reply (SEND_TIMEOUT_SECONDS is 0.6): "
    )
    assert reason in str(caught.value)
    if answer(plugin.open_requests[0][1]) is not None:
        assert len(plugin.open_requests) >= 2, "asked again before giving up"
    plugin.answer_open = opened
    await expect_only(target, guarded, [])


async def test_a_channel_that_opens_late_is_typed_into_once(
    target: Target, plugin: PluginClient, messenger: MacroMessenger
) -> None:
    def late(frame: dict[str, Any]) -> dict[str, Any]:
        """Discord is still on the old channel the first time it is asked."""
        return opened(frame, channel="100" if len(plugin.open_requests) == 1 else None)

    plugin.answer_open = late
    await messenger.send("123", "after a retry", nonce="n1")
    assert len(plugin.open_requests) == 2
    plugin.answer_open = opened
    await expect_only(target, messenger, ["after a retry"])


async def test_without_a_plugin_the_macro_refuses_to_type(
    target: Target, server: RunningApp
) -> None:
    guarded = macro(server.app.gateway, timeout=0.3)
    with pytest.raises(MessengerError, match=r"^channel 123: .*no plugin answered"):
        await guarded.send("123", "must not be typed", nonce="n1")
    client = await PluginClient.connect(server.url)
    try:
        await expect_only(target, guarded, [])
    finally:
        await client.close()


async def wait_for_activity(server: RunningApp) -> float:
    """The activity time once the gateway has taken the plugin's report."""
    deadline = time.monotonic() + TIMEOUT
    while (seen := server.app.gateway.last_activity()) is None:
        assert time.monotonic() < deadline, "the gateway never saw the activity"
        await asyncio.sleep(0.01)
    return seen


async def test_recent_activity_defers_the_send_until_the_person_is_idle(
    target: Target, server: RunningApp, plugin: PluginClient, messenger: MacroMessenger
) -> None:
    await plugin.activity(time.time())
    active_at = await wait_for_activity(server)
    await messenger.send("123", "once you stopped", nonce="n1")
    [(asked_at, _)] = plugin.open_requests
    assert asked_at - active_at >= IDLE, "Discord was moved while the person was active"
    await expect_only(target, messenger, ["once you stopped"])


async def test_activity_lasting_past_the_timeout_gives_up_without_moving_discord(
    target: Target, server: RunningApp, plugin: PluginClient
) -> None:
    await plugin.activity(time.time())
    await wait_for_activity(server)
    guarded = macro(server.app.gateway, idle_seconds=30.0, timeout=1.0)
    with pytest.raises(MessengerError, match=r"^channel 123: .*you used Discord [\d.]+ s ago"):
        await guarded.send("123", "must not be typed", nonce="n1")
    assert plugin.open_requests == []
    await expect_only(target, macro(server.app.gateway), [])


async def test_the_macros_own_keys_do_not_defer_its_next_message(
    target: Target, server: RunningApp, plugin: PluginClient
) -> None:
    guarded = macro(server.app.gateway, idle_seconds=30.0, timeout=1.0)
    await guarded.send("123", "part one", nonce="n1")
    assert await target.next_message() == "part one"
    await plugin.activity(time.time())  # the plugin saw our Enter key in Discord's window
    await wait_for_activity(server)
    await guarded.send("123", "part two", nonce="n2")
    await expect_only(target, guarded, ["part two"])


async def test_the_relay_gives_up_with_one_log_line_naming_the_channel(
    target: Target, tmp_path: Path, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    settings = {
        "MESSENGER": "macro",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": FakeOpenAI.API_KEY,
        "SEND_TIMEOUT_SECONDS": 0.5,
    }
    async with running_app(tmp_path, 'REPLY_TO = [("111", "222")]\n', **settings) as running:
        client = await PluginClient.connect(running.url)
        client.answer_open = lambda frame: opened(frame, channel="999")
        await client.message("5001", "111", "222", "hello?")
        await running.app.relay.drain()
        errors = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
        assert len(errors) == 1, errors
        expected = "reply to message 5001 not delivered (part 1 of 1): channel 222: "
        assert errors[0].startswith(expected)
        assert "Discord shows channel 999" in errors[0]
        client.answer_open = opened
        await expect_only(target, macro(running.app.gateway), [])
        await client.close()


async def test_the_typed_reply_coming_back_from_discord_is_known_as_ours(
    target: Target, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    settings = {
        "MESSENGER": "macro",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": FakeOpenAI.API_KEY,
        "SEND_TIMEOUT_SECONDS": TIMEOUT,
        "MACRO_IDLE_SECONDS": IDLE,
    }
    async with running_app(tmp_path, 'REPLY_TO = [("111", "222")]\n', **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("5101", "111", "222", "hello?")
        typed = await target.next_message()
        assert typed == "[auto-reply] echo: hello? [turns=1]"
        # Discord shows the typed text as the owner's message, with its client's own nonce.
        await client.message("5102", "9", "222", typed, is_self=True, nonce="1300000000000000001")
        await client.message("5103", "111", "222", "and now?")
        # Answered, so no takeover; [turns=3], so the echo was not remembered as the owner's.
        assert await target.next_message() == "[auto-reply] echo: and now? [turns=3]"
        await running.app.relay.drain()
        turns = await running.app.store.conversation(("111", "222"))
        assert [t.kind for t in turns] == ["message", "reply", "message", "reply"]
        await client.close()
