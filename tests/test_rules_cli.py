"""`discord-auto-reply rules` through the real command line: against a running server (its control
connection, the plugins told at once) and with the server stopped (the database and the file)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from server.cli import rules_commands
from server.cli.main import main
from server.conversation.rule_sources import rule_object
from tests.fakes.openai_api import FakeOpenAI
from tests.relay_harness import (
    ROOT,
    PluginClient,
    RunningApp,
    run_cli,
    running_app,
    write_cli_config,
)
from tests.test_chosen_chats_e2e import RULES, next_of, openai_settings


async def test_rules_commands_go_through_the_running_server_and_plugins_hear_at_once(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_app(tmp_path, RULES, **openai_settings(fake_openai)) as running:
        config = str(write_cli_config(running, tmp_path / "config.json"))
        plugin = await PluginClient.connect(running.url)
        await plugin.wait_for_owner_frame("rules")

        added = await run_cli(
            "rules", "add", "500", "@dms", "--persona", "friendly", "--draft", "--label",
            "Sam (DMs)", "--config", config, cwd=tmp_path,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert added.stdout.splitlines() == [
            "Auto-reply on for Sam (DMs): persona friendly, drafts first, even while you are here."
        ]
        watch = await next_of(plugin, "watch")
        assert {"user": "500", "channel": "@dms"} in watch["watch"]
        told = await plugin.wait_for_owner_frame("rules", rules=running_rules(running))
        assert [rule["user"] for rule in told["rules"]] == ["111", "112", "500"]

        listed = await run_cli("rules", "--config", config, cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert lines[0].split() == [
            "SOURCE", "USER", "CHANNEL", "LABEL", "PERSONA", "MODE", "WHEN", "LAST", "REPLY",
        ]  # fmt: skip
        assert lines[1].split() == [
            "reply_config.py", "REPLY_TO[0]", "111", "222", "-", "default", "default", "default",
            "never",
        ]  # fmt: skip
        assert lines[2].split()[:5] == ["reply_config.py", "REPLY_TO[1]", "112", "*", "-"]
        assert lines[3].split() == [
            "Discord", "500", "@dms", "Sam", "(DMs)", "friendly", "draft", "default", "never",
        ]  # fmt: skip
        assert "server not running" not in listed.stdout

        refused = await run_cli("rules", "remove", "111", "222", "--config", config, cwd=tmp_path)
        assert refused.returncode == 1
        assert refused.stderr == (
            "discord-auto-reply: This chat is set in reply_config.py (REPLY_TO[0]); edit the file "
            "to change or stop it.\n"
        )
        bad = await run_cli("rules", "add", "sam", "@dms", "--config", config, cwd=tmp_path)
        assert bad.returncode == 2
        assert 'user: must be a Discord user id (digits) or "*"' in bad.stderr

        removed = await run_cli("rules", "remove", "500", "@dms", "--config", config, cwd=tmp_path)
        assert removed.returncode == 0, removed.stderr
        assert removed.stdout == "Auto-reply off for Sam (DMs).\n"
        watch = await next_of(plugin, "watch")
        assert {"user": "500", "channel": "@dms"} not in watch["watch"]
        await plugin.close()


def running_rules(running: RunningApp) -> list[dict[str, Any]]:
    """The rule objects the running app has now (no reply yet, so no last_reply to wait on)."""
    return [rule_object(rule, []) for rule in running.app.chosen.effective().rules]


def test_rules_commands_work_on_the_files_while_the_server_is_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "data" / "auto_reply.db"
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"WEBSOCKET_SECRET": "s", "WEBSOCKET_PORT": 9, "DATABASE": str(database)}),
        encoding="utf-8",
    )
    (tmp_path / "reply_config.py").write_text(RULES, encoding="utf-8")
    files = ["--config", str(config), "--reply-config", str(tmp_path / "reply_config.py")]

    added = cli("rules", "add", "500", "600", "--always", *files)
    assert added.returncode == 0, added.stderr
    assert added.stdout.splitlines() == [
        "Auto-reply on for user 500 in channel 600: persona default, replies sent, "
        "even while you are here.",
        rules_commands.SAVED_OFFLINE,
    ]
    with sqlite3.connect(database) as db:
        assert db.execute(
            "SELECT user_id, channel_id, reply_when FROM discord_rules"
        ).fetchall() == [("500", "600", "always")]

    listed = cli("rules", "list", "--json", *files)
    assert [(rule["source"], rule["user"]) for rule in json.loads(listed.stdout)] == [
        ("file", "111"),
        ("file", "112"),
        ("discord", "500"),
    ]
    plain = cli("rules", *files)
    assert plain.stdout.splitlines()[-1] == rules_commands.LISTED_OFFLINE

    unknown = cli("rules", "add", "500", "600", "--persona", "pirate", *files)
    assert unknown.returncode == 1
    assert "Unknown persona 'pirate'; PERSONAS has: friendly, formal." in unknown.stderr
    removed = cli("rules", "remove", "500", "600", *files)
    assert removed.stdout.splitlines() == [
        "Auto-reply off for user 500 in channel 600.",
        rules_commands.REMOVED_OFFLINE,
    ]
    assert cli("rules", "remove", "500", "600", *files).returncode == 1

    # In process too, as the console script runs it; the files may come before the action.
    assert main(["rules", "add", "501", "@dms", *files]) == 0
    monkeypatch.chdir(tmp_path)  # where reply_config.py is by default
    assert main(["rules", "--config", str(config), "remove", "501", "@dms"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Auto-reply on for user 501 in all your DMs: persona default, replies sent, "
        "only while you are away.",  # REPLY_WHEN "away", the default
        rules_commands.SAVED_OFFLINE,
        "Auto-reply off for user 501 in all your DMs.",
        rules_commands.REMOVED_OFFLINE,
    ]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m server ARGS` with no server listening."""
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
