"""`discord-auto-reply check` run as a person would, against the real server and the local fakes."""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server.cli.health_check import (
    CheckResult,
    path_works,
    problems,
    render_json,
    render_table,
    run_checks,
)
from server.config import Settings
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.discord_bot_api import FakeDiscordBot
from tests.fakes.openai_api import FakeOpenAI
from tests.relay_harness import SECRET, PluginClient, RunningApp, running_app

ROOT = Path(__file__).resolve().parent.parent
RULES = 'REPLY_TO = [("111", "222"), ("*", "333")]\n'
WRONG_TOKEN = "wrong-user-token.0123456789-SECRET"


@dataclass
class Report:
    code: int
    stdout: str
    stderr: str

    def rows(self) -> dict[str, str]:
        """Each table row's part -> the whole row."""
        found = {}
        for line in self.stdout.splitlines()[:-1]:
            part = line[3:].split("  ")[0].strip()
            found[part] = line
        return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_for(fake_openai: FakeOpenAI, fake_discord: FakeDiscord, **extra: Any) -> Any:
    """The settings of a relay using both fakes; what config.json holds for it."""
    return {
        "WEBSOCKET_SECRET": SECRET,
        "MESSENGER": "rest",
        "DISCORD_AUTHORIZATION": FakeDiscord.TOKEN,
        "DISCORD_API_BASE": fake_discord.base_url,
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": FakeOpenAI.API_KEY,
        "OPENAI_MODEL": "gpt-4o-mini",
        "LLM_BACKENDS": ["openai"],
        "LLM_MAX_RETRIES": 0,
        **extra,
    }


def write_config(folder: Path, values: dict[str, Any], rules: str = RULES) -> Path:
    config = folder / "config.json"
    config.write_text(json.dumps(values), encoding="utf-8")
    (folder / "reply_config.py").write_text(rules, encoding="utf-8")
    return config


async def check(folder: Path, *args: str) -> Report:
    """Run the real command in `folder` while this test's event loop serves the fakes."""
    clean = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "check",
        *args,
        cwd=folder,
        env={**clean, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Report(process.returncode, stdout.decode(), stderr.decode())


async def check_here(folder: Path, *args: str) -> Report:
    """What `check` prints and exits with, computed in this process (quicker than `check`)."""
    clean = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    results = await run_checks(folder / "config.json", folder / "reply_config.py", clean)
    text = render_json(results) if "--json" in args else render_table(results)
    return Report(0 if path_works(results) else 1, text + "\n", "")


@asynccontextmanager
async def relay(folder: Path, values: dict[str, Any]) -> AsyncIterator[RunningApp]:
    """The real server with these settings, and config.json saying where it listens."""
    async with running_app(folder, RULES, **values) as running:
        port = int(running.url.rsplit(":", 1)[1])
        write_config(folder, {**values, "WEBSOCKET_PORT": port})
        yield running


def assert_no_secret(report: Report, *secrets: str) -> None:
    for secret in (SECRET, FakeDiscord.TOKEN, FakeOpenAI.API_KEY, *secrets):
        assert secret not in report.stdout + report.stderr
        assert secret[:12] not in report.stdout + report.stderr


async def test_everything_working_exits_0_and_names_the_account(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_discord: FakeDiscord
) -> None:
    values = settings_for(fake_openai, fake_discord)
    async with relay(tmp_path, values) as running:
        plugin = await PluginClient.connect(running.url)
        report = await check(tmp_path)
        await plugin.close()

    assert report.code == 0, report.stdout + report.stderr
    rows = report.rows()
    assert list(rows) == [
        "config.json",
        "reply_config.py",
        "LLM openai",
        "server",
        "plugin",
        "messenger rest",
    ]
    assert all(row.startswith("✔") for row in rows.values())
    assert "messenger rest, LLM_BACKENDS openai" in rows["config.json"]
    assert "2 pair(s) in REPLY_TO" in rows["reply_config.py"]
    assert "openai (gpt-4o-mini at 127.0.0.1:" in rows["LLM openai"]
    assert " answered in " in rows["LLM openai"]
    assert "watching 2 pair(s), messenger rest" in rows["server"]
    assert "1 plugin(s) connected (1 over WebSocket)" in rows["plugin"]
    assert "signed in as Fake User (@fake-user)" in rows["messenger rest"]
    assert report.stdout.splitlines()[-1].startswith("ready:")
    assert [r.path for r in fake_discord.requests] == ["/api/v9/users/@me"]
    [asked] = fake_openai.requests
    assert asked["messages"][-1] == {"role": "user", "content": "Say hello."}
    assert_no_secret(report)


async def test_json_report_says_the_same(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_discord: FakeDiscord
) -> None:
    values = settings_for(fake_openai, fake_discord)
    async with relay(tmp_path, values) as running:
        plugin = await PluginClient.connect(running.url)
        report = await check(tmp_path, "--json")
        await plugin.close()

    assert report.code == 0
    answer = json.loads(report.stdout)
    assert answer["ok"] is True
    assert [(c["part"], c["ok"], c["kind"]) for c in answer["checks"]] == [
        ("config.json", True, "config"),
        ("reply_config.py", True, "rules"),
        ("LLM openai", True, "llm"),
        ("server", True, "server"),
        ("plugin", True, "plugin"),
        ("messenger rest", True, "messenger"),
    ]
    assert_no_secret(report)


async def test_failing_backend_exits_1_with_the_reason(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_discord: FakeDiscord
) -> None:
    values = settings_for(fake_openai, fake_discord)
    async with relay(tmp_path, values) as running:
        plugin = await PluginClient.connect(running.url)
        fake_openai.fail_next(503)
        report = await check_here(tmp_path)
        await plugin.close()

    assert report.code == 1
    rows = report.rows()
    assert rows["LLM openai"].startswith("✘")
    assert "HTTP 503 server_error: The engine is currently overloaded" in rows["LLM openai"]
    assert all(rows[part].startswith("✔") for part in ("server", "plugin", "messenger rest"))
    assert report.stdout.splitlines()[-1] == "not ready: fix LLM openai (none answered)"


async def test_bad_token_exits_1_and_never_shows_it(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_discord: FakeDiscord
) -> None:
    values = settings_for(fake_openai, fake_discord, DISCORD_AUTHORIZATION=WRONG_TOKEN)
    async with relay(tmp_path, values) as running:
        plugin = await PluginClient.connect(running.url)
        report = await check(tmp_path)
        json_report = await check_here(tmp_path, "--json")
        await plugin.close()

    assert report.code == json_report.code == 1
    row = report.rows()["messenger rest"]
    assert row.startswith("✘")
    assert "Discord refused DISCORD_AUTHORIZATION (HTTP 401)" in row
    assert fake_discord.requests[0].headers["Authorization"] == WRONG_TOKEN
    assert_no_secret(report, WRONG_TOKEN)
    assert_no_secret(json_report, WRONG_TOKEN)


async def test_wrong_openai_key_is_reported_without_the_key(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_discord: FakeDiscord
) -> None:
    key = "sk-proj-wrong-key-0123456789-SECRET-abcdef"
    write_config(tmp_path, {**settings_for(fake_openai, fake_discord), "OPENAI_API_KEY": key})

    report = await check_here(tmp_path)

    assert report.code == 1
    assert "HTTP 401 invalid_api_key" in report.rows()["LLM openai"]
    assert_no_secret(report, key, key[-10:])


async def test_no_server_running_exits_1(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_discord: FakeDiscord
) -> None:
    port = free_port()
    values = {**settings_for(fake_openai, fake_discord), "WEBSOCKET_PORT": port}
    write_config(tmp_path, values)

    report = await check(tmp_path)

    assert report.code == 1
    rows = report.rows()
    assert rows["LLM openai"].startswith("✔") and rows["messenger rest"].startswith("✔")
    assert f"no relay server at ws://127.0.0.1:{port}" in rows["server"]
    assert rows["plugin"].startswith("✘")
    assert report.stdout.splitlines()[-1] == "not ready: fix server, plugin"


async def test_server_without_a_plugin_exits_1(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_discord: FakeDiscord
) -> None:
    values = settings_for(fake_openai, fake_discord, MESSENGER="plugin")
    async with relay(tmp_path, values):
        report = await check_here(tmp_path)

    assert report.code == 1
    rows = report.rows()
    assert rows["server"].startswith("✔")
    assert "none connected: open Discord and enable DiscordAutoReply" in rows["plugin"]
    assert rows["messenger plugin"].startswith("✘")
    assert "messenger rest" not in rows  # the token is only checked for the REST messenger
    assert fake_discord.requests == []


async def test_plugin_messenger_with_a_plugin_exits_0(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_discord: FakeDiscord
) -> None:
    values = settings_for(fake_openai, fake_discord, MESSENGER="plugin")
    async with relay(tmp_path, values) as running:
        plugin = await PluginClient.connect(running.url)
        report = await check_here(tmp_path)
        assert plugin.sends == [] and plugin.typing == []  # the check posts nothing
        await plugin.close()

    assert report.code == 0, report.stdout
    assert "posts through the connected plugin" in report.rows()["messenger plugin"]


async def test_a_server_with_another_secret_or_messenger_is_named(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_discord: FakeDiscord
) -> None:
    values = settings_for(fake_openai, fake_discord)
    async with relay(tmp_path, {**values, "MESSENGER": "plugin"}) as running:
        port = int(running.url.rsplit(":", 1)[1])
        write_config(tmp_path, {**values, "WEBSOCKET_PORT": port})
        other_messenger = await check_here(tmp_path)
        write_config(tmp_path, {**values, "WEBSOCKET_PORT": port, "WEBSOCKET_SECRET": "x" * 32})
        other_secret = await check_here(tmp_path)

    assert other_messenger.code == other_secret.code == 1
    assert "but config.json says rest: restart the server" in other_messenger.rows()["server"]
    assert "refused the secret" in other_secret.rows()["server"]
    assert_no_secret(other_secret, "x" * 32)


async def test_broken_files_are_reported_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{\n  "WEBSOCKET_PORT": 1,\n  oops\n}\n')
    broken_json = await check_here(tmp_path)

    (tmp_path / "config.json").write_text(json.dumps({"WEBSOCKET_SECRET": "s" * 20}))
    (tmp_path / "reply_config.py").write_text('CONTEXT_MESSAGE = "hi"\nREPLY_TO = [("1", "2")\n')
    broken_rules = await check_here(tmp_path, "--json")

    assert broken_json.code == broken_rules.code == 1
    assert "config.json: not valid JSON (line 3" in broken_json.rows()["config.json"]
    assert len(broken_json.rows()) == 1
    [config, rules] = json.loads(broken_rules.stdout)["checks"][:2]
    assert config["ok"] is True
    assert rules["ok"] is False and "reply_config.py:2: SyntaxError" in rules["detail"]


async def test_macro_messenger_without_a_display(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"WEBSOCKET_SECRET": SECRET, "MESSENGER": "macro"})
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}

    results = await run_checks(config, tmp_path / "reply_config.py", {**env, "DISPLAY": ""})
    missing = await run_checks(config, tmp_path / "reply_config.py", {**env, "DISPLAY": ":987"})

    [row] = [r for r in results if r.part == "messenger macro"]
    assert not row.ok and row.detail == "no desktop session: $DISPLAY is not set"
    [row] = [r for r in missing if r.part == "messenger macro"]
    assert not row.ok and row.detail  # pyautogui's own words about the missing display
    assert row.kind == "messenger" and row.needed


@pytest.fixture
def display() -> Iterator[str]:
    """A private Xvfb server; its display name."""
    for tool in ("Xvfb", "xclip"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `make system-deps`", pytrace=False)
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], 10)
        number = os.read(read_fd, 16).decode().strip() if ready else ""
        assert number, "Xvfb did not start"
        yield f":{number}"
    finally:
        os.close(read_fd)
        server.kill()
        server.wait()


async def test_macro_messenger_on_a_desktop(tmp_path: Path, display: str) -> None:
    config = write_config(tmp_path, {"WEBSOCKET_SECRET": SECRET, "MESSENGER": "macro"})
    xauthority = tmp_path / "Xauthority"
    xauthority.touch()  # python3-xlib refuses to connect without one
    env = {**os.environ, "DISPLAY": display, "XAUTHORITY": str(xauthority)}

    results = await run_checks(config, tmp_path / "reply_config.py", env)

    [row] = [r for r in results if r.part == "messenger macro"]
    assert row.ok, row.detail
    assert row.detail == f"pyautogui reaches {display}, and the clipboard works"


# --- The verdict and the table, without I/O.


def row(part: str, ok: bool, kind: Any = "server", needed: bool = True) -> CheckResult:
    return CheckResult(part, ok, f"{part} detail", kind, needed)


BASE = [row("config.json", True, "config"), row("server", True), row("plugin", True, "plugin")]


def test_one_answering_backend_is_enough() -> None:
    results = [
        *BASE,
        row("LLM openai", False, "llm", needed=False),
        row("LLM g4f", True, "llm", needed=False),
    ]

    assert path_works(results) and problems(results) == []
    table = render_table(results)
    assert "✘  LLM openai   LLM openai detail (another backend answers)" in table
    assert table.endswith("ready: messages can be answered and the replies posted")


def test_no_answering_backend_is_one_problem() -> None:
    results = [
        *BASE,
        row("LLM openai", False, "llm", needed=False),
        row("LLM g4f", False, "llm", needed=False),
    ]

    assert not path_works(results)
    assert problems(results) == ["LLM openai and LLM g4f (none answered)"]
    assert "(another backend answers)" not in render_table(results)


def test_a_needed_part_failing_stops_the_path() -> None:
    results = [*BASE, row("LLM openai", True, "llm", needed=False), row("plugin", False, "plugin")]

    assert problems(results) == ["plugin"]
    assert not path_works([row("config.json", False, "config")])
    assert not path_works([])


def test_table_without_unicode_and_json() -> None:
    results = [*BASE, row("LLM openai", False, "llm", needed=False)]

    table = render_table(results, unicode=False)
    assert table.splitlines()[0] == "OK    config.json  config.json detail"
    assert table.splitlines()[3].startswith("FAIL  LLM openai")
    assert json.loads(render_json(results)) == {
        "ok": False,
        "checks": [
            {"part": r.part, "ok": r.ok, "detail": r.detail, "kind": r.kind, "needed": r.needed}
            for r in results
        ],
    }


async def test_a_plugin_over_the_http_transport_counts_as_connected(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_discord: FakeDiscord
) -> None:
    values = settings_for(fake_openai, fake_discord)
    async with relay(tmp_path, values) as running:
        plugin = await PluginClient.connect(running.url, transport="http")
        report = await check(tmp_path)
        await plugin.close()
    rows = report.rows()
    assert rows["plugin"].startswith("✔"), rows
    assert "1 plugin(s) connected (1 over HTTP (BdApi.Net.fetch))" in rows["plugin"]


@pytest.mark.parametrize("flavour", ["discord", "spacebar"])
async def test_the_bot_s_slash_commands_are_registered_or_the_refusal_is_named(
    tmp_path: Path, fake_openai: FakeOpenAI, flavour: str
) -> None:
    """With DISCORD_BOT_TOKEN, check registers the commands as `bot` does; a server that refuses
    them (Spacebar: no max_length) gets a row naming the command, not needed for the path."""
    api = FakeDiscordBot(flavour=flavour)
    await api.start()
    try:
        values = {
            "WEBSOCKET_SECRET": SECRET,
            "DISCORD_BOT_TOKEN": FakeDiscordBot.BOT_TOKEN,
            "DISCORD_API_BASE": api.base_url,
            "OPENAI_BASE_URL": fake_openai.base_url,
            "OPENAI_API_KEY": FakeOpenAI.API_KEY,
            "LLM_BACKENDS": ["openai"],
        }
        write_config(tmp_path, values)
        report = await check_here(tmp_path)
    finally:
        await api.stop()
    row = report.rows()["bot slash commands"]
    if flavour == "discord":
        assert row.startswith("✔") and "/reset, /persona, /ask, /session registered" in row
        assert [command["name"] for command in api.commands] == [
            "reset",
            "persona",
            "ask",
            "session",
        ]
    else:
        assert row.startswith("✘") and "In /persona.options.0: must NOT have additional" in row
        assert "the bot still answers messages" in row
        assert api.commands == []
    assert FakeDiscordBot.BOT_TOKEN not in report.stdout
