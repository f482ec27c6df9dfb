"""The command line, run as a person would: init, serve (start-up lines, errors), plugin install."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        check=False,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_init_then_refuses_to_overwrite(tmp_path: Path) -> None:
    first = cli("init", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    secret = json.loads((tmp_path / "config.json").read_text())["WEBSOCKET_SECRET"]
    again = cli("init", cwd=tmp_path)
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert json.loads((tmp_path / "config.json").read_text())["WEBSOCKET_SECRET"] == secret


@dataclass
class Serving:
    """A `serve` subprocess and the log lines it wrote up to "watching"."""

    process: subprocess.Popen[str]
    lines: list[str]

    def stop(self, signum: int) -> str:
        """Send `signum`; return the whole log once the server has exited with 0."""
        assert self.process.stderr is not None
        self.process.send_signal(signum)
        rest = self.process.stderr.read()
        assert self.process.wait(timeout=10) == 0, "".join(self.lines) + rest
        return "".join(self.lines) + rest


def serve_until_ready(tmp_path: Path, python_args: list[str]) -> Serving:
    """Start `python PYTHON_ARGS serve -vv` in `tmp_path`; return once it says it is ready."""
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "WEBSOCKET_PORT": 0,
                "WEBSOCKET_SECRET": "s3cret-value-for-the-test",
                "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
                "OPENAI_MODEL": "llama3.1",
                "LLM_BACKENDS": ["openai"],
            }
        )
    )
    (tmp_path / "reply_config.py").write_text('REPLY_TO = [("1", "2"), ("*", "3")]\n')
    process = subprocess.Popen(
        [sys.executable, *python_args, "serve", "-vv"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "server: ready (started in" in line:
            break
    return Serving(process, lines)


@pytest.mark.posix
def test_serve_prints_clear_startup_lines_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    output = serve_until_ready(tmp_path, ["-m", "server"]).stop(signal.SIGTERM)
    assert "listening on ws://127.0.0.1:" in output
    assert "LLM backends: openai (llama3.1 at 127.0.0.1:9)" in output
    assert "messenger: plugin" in output
    assert "watching 2 pair(s) from reply_config.py" in output
    assert re.search(r"ready \(started in \d+\.\d\d s\); Ctrl-C stops", output)
    assert "shutting down" in output
    assert "s3cret-value" not in output


# The server as it runs on Windows: the event loop has no signal handlers, so Ctrl-C reaches
# asyncio.run's own SIGINT handler, which cancels the main task and then raises KeyboardInterrupt.
SERVE_WITHOUT_LOOP_SIGNAL_HANDLERS = """
import asyncio, sys
def refuse(self, *args, **kwargs):
    raise NotImplementedError("no loop signal handlers, as on Windows")
type(asyncio.new_event_loop()).add_signal_handler = refuse
from server.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.posix  # sends SIGINT, which Windows' Popen.send_signal cannot
def test_ctrl_c_shuts_down_cleanly_without_loop_signal_handlers(tmp_path: Path) -> None:
    serving = serve_until_ready(tmp_path, ["-c", SERVE_WITHOUT_LOOP_SIGNAL_HANDLERS])
    output = serving.stop(signal.SIGINT)
    assert "shutting down" in output
    assert "Traceback" not in output
    assert "KeyboardInterrupt" not in output


def test_serve_names_the_key_and_file_of_a_bad_setting(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"WEBSOCKET_PORT": "x", "Z": 1}))
    result = cli("serve", cwd=tmp_path)
    assert result.returncode == 2
    assert "config.json" in result.stderr
    assert "WEBSOCKET_PORT" in result.stderr
    assert "unknown key 'Z'" in result.stderr


def test_serve_on_a_busy_port_says_so_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "reply_config.py").write_text('REPLY_TO = [("1", "2")]\n')
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {"WEBSOCKET_SECRET": "s3cret-value-for-the-test", "WEBSOCKET_PORT": str(port)}
        result = cli("serve", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "address already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert "s3cret-value" not in result.stderr


def test_serve_refuses_a_remote_bind_without_allow_remote(tmp_path: Path) -> None:
    env = {"WEBSOCKET_SECRET": "x" * 32, "WEBSOCKET_HOST": "0.0.0.0"}
    result = cli("serve", "--reply-config", str(ROOT / "reply_config.py"), cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "--allow-remote" in result.stderr


def test_serve_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    result = cli("serve", "--reply-config", str(ROOT / "reply_config.py"), cwd=tmp_path)
    assert result.returncode == 2
    assert "WEBSOCKET_SECRET is empty" in result.stderr


def test_serve_reports_a_broken_reply_config(tmp_path: Path) -> None:
    (tmp_path / "reply_config.py").write_text('REPLY_TO = [("USER_ID", "CHANNEL_ID")]\n')
    result = cli("serve", cwd=tmp_path, env={"WEBSOCKET_SECRET": "x" * 32})
    assert result.returncode == 2
    assert "reply_config.py: REPLY_TO[0]: user: must be a Discord id" in result.stderr


def test_plugin_install_fills_in_the_config_and_refuses_without_a_secret(tmp_path: Path) -> None:
    refused = cli("plugin", "install", "--dir", str(tmp_path / "plugins"), cwd=tmp_path)
    assert refused.returncode == 2
    assert "WEBSOCKET_SECRET is empty" in refused.stderr

    (tmp_path / "config.json").write_text(
        json.dumps({"WEBSOCKET_SECRET": "plugin-secret", "WEBSOCKET_PORT": 9911})
    )
    installed = cli("plugin", "install", "--dir", str(tmp_path / "plugins"), cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    plugin = (tmp_path / "plugins" / "discord-auto-reply.plugin.js").read_text()
    assert '"port": 9911, "secret": "plugin-secret"' in plugin
    assert "enable DiscordAutoReply" in installed.stdout


def test_optional_heavy_packages_are_imported_only_by_their_backends(tmp_path: Path) -> None:
    code = (
        "import sys, server.cli.main, server.app\n"
        "heavy = ('g4f', 'pyautogui', 'pyperclip', 'requests')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout.strip() == "[]"
