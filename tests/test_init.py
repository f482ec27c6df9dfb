"""`discord-auto-reply init` as a person and a script run it: a local server found on the probe
ports (the fake OpenAI server), none found, OpenAI's key checked against the fake (good, 401),
the questions answered in a real terminal (a pty), and an existing file never replaced unasked."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import select
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tests.fakes.openai_api import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": ""}


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def init(tmp_path: Path, *args: str) -> tuple[int, str]:
    """Run `init --config tmp_path/config.json ARGS` without a terminal; (exit code, output)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "init",
        "--config",
        str(tmp_path / "config.json"),
        *args,
        cwd=tmp_path,
        env=ENV,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    return await process.wait(), output.decode()


class TerminalRun:
    """`init` in a pseudo-terminal, as typed by a person: wait for a prompt, answer it."""

    def __init__(self, cwd: Path, *args: str) -> None:
        command = [sys.executable, "-m", "server", "init", *args]
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: stdin, stdout and the controlling terminal are the pty
            os.chdir(cwd)
            os.execve(sys.executable, command, ENV)
        self.transcript = ""
        self._seen = 0  # where the next prompt is looked for

    def _read(self, deadline: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # EIO: the child has closed the terminal
                chunk = b""
            if not chunk:
                raise EOFError(self.transcript)
            self.transcript += chunk.decode(errors="replace").replace("\r\n", "\n")

    def expect(self, text: str, timeout: float = 20.0) -> None:
        """Wait until `text` is printed (after what the last `expect` found)."""
        deadline = time.monotonic() + timeout
        while text not in self.transcript[self._seen :]:
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.transcript}"
            self._read(deadline)
        self._seen = self.transcript.index(text, self._seen) + len(text)

    def answer(self, prompt: str, line: str) -> None:
        """Wait for `prompt`, then type `line` and Enter."""
        self.expect(prompt)
        os.write(self.fd, line.encode() + b"\r")

    def finish(self, timeout: float = 20.0) -> int:
        """Read to the end; the exit code."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self._read(deadline)
        except EOFError:
            pass
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


async def in_terminal(run: TerminalRun, steps: list[tuple[str, str]]) -> int:
    """Answer each (prompt, line) in turn, off the event loop (the fake server runs on it)."""

    def drive() -> int:
        for prompt, line in steps:
            run.answer(prompt, line)
        return run.finish()

    return await asyncio.to_thread(drive)


def config_of(tmp_path: Path) -> dict[str, object]:
    values: dict[str, object] = json.loads((tmp_path / "config.json").read_text())
    return values


@pytest_asyncio.fixture
async def local_server() -> AsyncIterator[FakeOpenAI]:
    """The fake as a local server: no key needed, one model (`fake-gpt`)."""
    fake = FakeOpenAI(require_key=False)
    await fake.start()
    yield fake
    await fake.stop()


async def test_finds_the_local_server_on_the_probe_ports_and_writes_its_model(
    tmp_path: Path, local_server: FakeOpenAI
) -> None:
    ports = f"{closed_port()},{local_server.port}"
    code, output = await init(tmp_path, "--llm", "local", "--probe-ports", ports, "--no-plugin")
    assert code == 0, output
    config = config_of(tmp_path)
    assert config["OPENAI_BASE_URL"] == local_server.base_url
    assert config["OPENAI_MODEL"] == FakeOpenAI.MODEL
    assert config["LLM_BACKENDS"] == ["openai"]
    assert len(str(config["WEBSOCKET_SECRET"])) >= 32
    assert f"server on port {local_server.port}" in output
    assert "Next: enable the plugin in Discord (Settings → Plugins)" in output
    assert "plugin install" in output  # --no-plugin: how to install it later


async def test_no_local_server_found_writes_nothing_and_names_the_ports(tmp_path: Path) -> None:
    first, second = closed_port(), closed_port()
    started = time.monotonic()
    code, output = await init(tmp_path, "--llm", "local", "--probe-ports", f"{first},{second}")
    assert code == 2
    assert "no local OpenAI-compatible server answered GET /v1/models" in output
    assert f"127.0.0.1 ports {first}, {second}" in output
    assert not (tmp_path / "config.json").exists()
    assert time.monotonic() - started < 10


async def test_a_given_base_url_that_is_down_needs_a_model_name(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    code, output = await init(tmp_path, "--llm", "local", "--base-url", url)
    assert code == 2
    assert "give --model NAME" in output
    code, output = await init(tmp_path, "--llm", "local", "--base-url", url, "--model", "qwen3")
    assert code == 0, output
    assert config_of(tmp_path)["OPENAI_BASE_URL"] == url
    assert config_of(tmp_path)["OPENAI_MODEL"] == "qwen3"


async def test_openai_key_checked_with_one_request_good_then_refused(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    base = ["--llm", "openai", "--base-url", fake_openai.base_url, "--no-plugin"]
    code, output = await init(tmp_path, *base, "--api-key", FakeOpenAI.API_KEY)
    assert code == 0, output
    assert "The key works (1 models available)" in output
    assert config_of(tmp_path)["OPENAI_API_KEY"] == FakeOpenAI.API_KEY
    assert FakeOpenAI.API_KEY not in output
    assert fake_openai.requests == []  # the check asked /models only, no completion

    (tmp_path / "config.json").unlink()
    wrong = "sk-wrong-key-that-must-never-be-printed-9876"
    code, output = await init(tmp_path, *base, "--api-key", wrong)
    assert code == 2
    assert "refused the key (HTTP 401: invalid_api_key); nothing written" in output
    assert "9876" not in output and "sk-wr" not in output  # not even OpenAI's masked echo
    assert not (tmp_path / "config.json").exists()


async def test_openai_without_a_key_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    code, output = await init(tmp_path, "--llm", "openai")
    assert code == 2
    assert "--api-key KEY or OPENAI_API_KEY" in output


async def test_g4f_choice_and_an_existing_file_kept_unless_forced(tmp_path: Path) -> None:
    code, output = await init(tmp_path, "--llm", "g4f", "--no-plugin")
    assert code == 0, output
    secret = config_of(tmp_path)["WEBSOCKET_SECRET"]
    assert config_of(tmp_path)["LLM_BACKENDS"] == ["g4f"]

    code, output = await init(tmp_path, "--llm", "none")
    assert code == 2
    assert "already exists; not changing it (--force updates its LLM settings" in output
    assert config_of(tmp_path)["LLM_BACKENDS"] == ["g4f"]

    edited = {**config_of(tmp_path), "MAX_TOKENS": 123}  # the owner's own edit
    (tmp_path / "config.json").write_text(json.dumps(edited))
    code, output = await init(tmp_path, "--llm", "none", "--force", "--no-plugin")
    assert code == 0, output
    assert "LLM settings unchanged; its other keys kept" in output
    assert config_of(tmp_path) == edited

    code, output = await init(tmp_path, "--base-url", "http://127.0.0.1:9/v1", "--model", "m")
    assert code == 2  # a script's --base-url implies a local server; the file is still there
    code, output = await init(
        tmp_path, "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--force", "--no-plugin"
    )
    assert code == 0, output
    updated = config_of(tmp_path)
    assert updated["LLM_BACKENDS"] == ["openai"]
    assert (updated["OPENAI_BASE_URL"], updated["OPENAI_MODEL"]) == ("http://127.0.0.1:9/v1", "m")
    assert updated["MAX_TOKENS"] == 123
    assert updated["WEBSOCKET_SECRET"] == secret  # the installed plugin still fits
    assert (tmp_path / "config.json").stat().st_mode & 0o077 == 0


async def test_in_a_terminal_it_offers_the_server_found_and_installs_the_plugin(
    tmp_path: Path, local_server: FakeOpenAI
) -> None:
    plugins = tmp_path / "plugins"
    run = TerminalRun(
        tmp_path, "--probe-ports", f"{local_server.port}", "--plugin-dir", str(plugins)
    )
    code = await in_terminal(
        run,
        [
            ("Choice [2]: ", ""),  # the local server found is the default
            ("Install the BetterDiscord plugin into", "y"),
        ],
    )
    assert code == 0, run.transcript
    assert f"found: server on port {local_server.port} at {local_server.base_url}" in run.transcript
    config = config_of(tmp_path)
    assert (config["OPENAI_BASE_URL"], config["OPENAI_MODEL"]) == (
        local_server.base_url,
        FakeOpenAI.MODEL,
    )
    plugin = (plugins / "discord-auto-reply.plugin.js").read_text()
    assert f'"secret": "{config["WEBSOCKET_SECRET"]}"' in plugin
    assert "right-click a DM → Auto-reply → Auto-reply to NAME here." in run.transcript


async def test_in_a_terminal_the_key_is_asked_unechoed_and_asked_again_when_refused(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    wrong = "sk-typed-wrong-4321"
    run = TerminalRun(
        tmp_path, "--probe-ports", str(closed_port()), "--base-url", fake_openai.base_url
    )
    code = await in_terminal(
        run,
        [
            ("Choice [1]: ", "1"),
            ("OpenAI API key (not shown as you type): ", wrong),
            ("Keep this key anyway? [y/N] ", "n"),
            ("OpenAI API key (not shown as you type): ", FakeOpenAI.API_KEY),
            ("Model [gpt-4o-mini]: ", FakeOpenAI.MODEL),
            ("Install the BetterDiscord plugin into", "n"),
        ],
    )
    assert code == 0, run.transcript
    assert "refused the key (HTTP 401: invalid_api_key)" in run.transcript
    assert "The key works" in run.transcript
    assert wrong not in run.transcript and FakeOpenAI.API_KEY not in run.transcript
    assert re.search(r"none answering now", run.transcript)
    config = config_of(tmp_path)
    assert (config["OPENAI_API_KEY"], config["OPENAI_MODEL"]) == (
        FakeOpenAI.API_KEY,
        FakeOpenAI.MODEL,
    )


async def test_in_a_terminal_an_existing_file_is_replaced_only_on_yes(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"WEBSOCKET_SECRET": "kept"}')
    run = TerminalRun(tmp_path, "--probe-ports", str(closed_port()))
    code = await in_terminal(run, [("Update its LLM settings (every other key kept)? [y/N] ", "")])
    assert code == 0, run.transcript
    assert "as it was" in run.transcript
    assert (tmp_path / "config.json").read_text() == '{"WEBSOCKET_SECRET": "kept"}'
