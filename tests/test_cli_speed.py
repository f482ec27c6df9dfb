"""Commands that do not call a model answer at once: guarded by what they import, not by a clock.

Each command runs in a fresh interpreter (the real `main`), which then reports the heavy packages
it loaded: the LLM SDKs, discord.py, rich, aiohttp, apprise, the token encodings, the GUI macro,
and for the owner's light commands pydantic too (they read config.json as `OwnerSettings`).
bench/command_latency.py measures the times themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from server.cli.main import USER_ERRORS, build_parser
from tests.relay_harness import running_app, write_cli_config

ROOT = Path(__file__).resolve().parent.parent
HEAVY = (
    "openai",
    "httpx2",
    "httpcore2",
    "discord",
    "rich",
    "g4f",
    "aiohttp",
    "apprise",
    "bpe_openai",
    "pyautogui",
    "requests",
)
# `--help` and the parser need no validation, no event loop and no protocol.
HELP_ALSO_SPARES = ("pydantic", "asyncio", "websockets", "sqlite3")
# The owner's light commands check the few keys they read themselves (server/config_file.py).
LIGHT_ALSO_SPARES = ("pydantic",)
# With nothing listening at the server's address, the websocket client is never loaded.
STOPPED_ALSO_SPARES = ("websockets",)
PROBE = """
import json, sys
from server.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(sys.argv[0])))
print("LOADED " + json.dumps({"code": code, "loaded": loaded}))
"""


def run_command(cwd: Path, *args: str) -> tuple[int, list[str], str]:
    """Run the command line with `args` in a fresh interpreter: (exit code, heavy loaded, out)."""
    watched = json.dumps([*HEAVY, *HELP_ALSO_SPARES])
    result = subprocess.run(
        [sys.executable, "-c", PROBE.replace("sys.argv[0]", repr(watched)), *args],
        check=False,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = result.stdout.rpartition("LOADED ")[2]
    assert report, result.stdout + result.stderr
    found = json.loads(report)
    return found["code"], found["loaded"], result.stdout + result.stderr


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A config whose server is not running (its port is closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {"WEBSOCKET_PORT": port, "WEBSOCKET_SECRET": "speed-test-secret"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "reply_config.py").write_text('REPLY_TO = [("1", "2")]\n')
    return tmp_path


def subcommand_paths(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """Every command and subcommand of `parser`, e.g. ("memory", "list")."""
    paths: list[tuple[str, ...]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths.append((*prefix, name))
                paths.extend(subcommand_paths(sub, (*prefix, name)))
    return paths


COMMANDS = subcommand_paths(build_parser())


@pytest.mark.parametrize("command", [(), *COMMANDS], ids=lambda c: " ".join(c) or "top")
def test_help_loads_nothing_heavy(config_dir: Path, command: tuple[str, ...]) -> None:
    code, loaded, output = run_command(config_dir, *command, "--help")
    assert code == 0, output
    assert loaded == [], f"`{' '.join(command)} --help` loaded {loaded}"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_help_describes_it_with_examples(command: tuple[str, ...]) -> None:
    parser = build_parser()
    for name in command:  # down to the subcommand's own parser
        parser = next(
            action.choices[name]
            for action in parser._actions
            if isinstance(action, argparse._SubParsersAction)
        )
    text = parser.format_help()
    assert parser.description, f"`{' '.join(command)}` has no description"
    assert "examples:\n  discord-auto-reply " in text, text


@pytest.mark.parametrize(
    ("command", "allowed", "says"),
    [
        (("away", "status"), (), "is `discord-auto-reply serve` running?"),
        (("away", "note", "back at six"), (), "is `discord-auto-reply serve` running?"),
        (("drafts",), (), "no drafts waiting"),
        (("drafts", "discard", "7"), (), "no pending draft 7"),
        (("memory", "list"), (), "no conversations in"),
        (("memory", "export"), (), '"conversations": []'),
        (("history", "--json"), ("rich",), "[]"),  # history renders with rich
        (("history",), ("rich",), "nothing since"),
        (("plugin", "install", "--dir", "plugins"), (), "installed"),
        # With the server stopped, `rules` reads reply_config.py, whose rules pydantic checks.
        (("rules",), ("pydantic",), "server not running"),
        (("rules", "add", "sam", "@dms"), ("pydantic",), "user: must be a Discord user id"),
        # init writes a config that `serve` accepts: it validates every key.
        (("init", "--config", "new.json", "--no-plugin"), ("pydantic",), "Wrote new.json"),
        (("init", "--config", "new.json", "--llm", "g4f", "--no-plugin"), ("pydantic",), "Wrote"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else None,
)
def test_light_commands_leave_the_heavy_packages_unloaded(
    config_dir: Path, command: tuple[str, ...], allowed: tuple[str, ...], says: str
) -> None:
    _code, loaded, output = run_command(config_dir, *command)
    assert says in output
    assert "Traceback" not in output, output
    heavy = (*HEAVY, *LIGHT_ALSO_SPARES, *STOPPED_ALSO_SPARES)
    assert [name for name in loaded if name in heavy and name not in allowed] == [], output


async def test_light_commands_asking_the_running_server_leave_pydantic_unloaded(
    tmp_path: Path,
) -> None:
    """`rules` lists what the server sends (it parses no reply_config.py) and leaves checking a
    new rule to it; `away` and `drafts` ask it too."""
    rules = 'REPLY_TO = [("111", "222")]\n'
    async with running_app(tmp_path, rules, OPENAI_API_KEY="sk-not-used") as running:
        config = str(write_cli_config(running, tmp_path / "config.json"))
        for command, exit_code, says in (
            (("rules",), 0, "reply_config.py"),
            (("rules", "add", "5", "@dms"), 0, "Auto-reply on"),
            (("rules", "add", "sam", "@dms"), 2, "the server says: invalid rule_set frame: user:"),
            (("away", "status"), 0, "away switch:"),
            (("drafts", "send", "7"), 1, "error: "),
        ):
            code, loaded, output = await asyncio.to_thread(
                run_command, tmp_path, *command, "--config", config
            )
            assert (code, says in output) == (exit_code, True), output
            assert "server not running" not in output
            heavy = (*HEAVY, *LIGHT_ALSO_SPARES)
            assert [name for name in loaded if name in heavy] == [], (command, output)


def test_user_errors_name_real_exception_classes() -> None:
    for qualified in USER_ERRORS:
        module, _, name = qualified.rpartition(".")
        assert issubclass(getattr(importlib.import_module(module), name), Exception), qualified


SERVE_PROBE = """
import asyncio, json, sys
from pathlib import Path
from server.app import App
from server.config import load_settings

async def start_and_stop():
    app = App(load_settings(Path("config.json")), Path("reply_config.py"))
    await app.start()
    loaded = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(sys.argv[1])))
    await app.stop()
    return loaded

print("LOADED " + json.dumps(asyncio.run(start_and_stop())))
"""


def test_serve_is_ready_before_it_loads_an_llm_sdk(config_dir: Path) -> None:
    """With the default backends (openai, then g4f) `serve` listens before importing either SDK:
    each loads on its first request. A named G4F_PROVIDER is still checked at start."""
    result = subprocess.run(
        [sys.executable, "-c", SERVE_PROBE, json.dumps(["openai", "g4f", "discord", "pyautogui"])],
        check=False,
        cwd=config_dir,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "sk-not-used"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = result.stdout.rpartition("LOADED ")[2]
    assert report, result.stdout + result.stderr
    assert json.loads(report) == [], result.stderr
