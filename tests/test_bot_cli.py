"""`discord-auto-reply bot` and `interactions` run as a person would, against the local fakes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from tests.bot_harness import DM_CHANNEL, FRIEND, fake_discord_bot
from tests.fakes.openai_api import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent
RULES = f'REPLY_TO = [("{FRIEND}", "{DM_CHANNEL}")]\n'


def write_config(tmp_path: Path, **values: Any) -> None:
    (tmp_path / "config.json").write_text(json.dumps(values), encoding="utf-8")
    (tmp_path / "reply_config.py").write_text(RULES, encoding="utf-8")


async def start_cli(tmp_path: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        *args,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run_cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    process = await start_cli(tmp_path, *args)
    _stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def read_until(process: asyncio.subprocess.Process, text: str) -> str:
    """The process's stderr up to and including the first line that contains `text`."""
    assert process.stderr is not None
    seen = ""
    while text not in seen:
        line = await asyncio.wait_for(process.stderr.readline(), 30)
        assert line, f"exited before printing {text!r}:\n{seen}"
        seen += line.decode()
    return seen


async def test_each_command_names_the_empty_key_it_needs(tmp_path: Path) -> None:
    write_config(tmp_path)
    code, stderr = await run_cli(tmp_path, "bot")
    assert code == 2
    assert stderr.startswith("discord-auto-reply: error: DISCORD_BOT_TOKEN is empty")
    code, stderr = await run_cli(tmp_path, "interactions")
    assert code == 2
    assert "DISCORD_PUBLIC_KEY is empty" in stderr
    write_config(tmp_path, DISCORD_PUBLIC_KEY="ab" * 32)
    code, stderr = await run_cli(tmp_path, "interactions")
    assert code == 2
    assert "DISCORD_APPLICATION_ID is empty" in stderr


async def test_a_refused_bot_token_exits_with_one_clear_line(tmp_path: Path) -> None:
    async with fake_discord_bot() as (api, gateway):
        write_config(
            tmp_path,
            DISCORD_BOT_TOKEN="wrong-bot-token-value",
            DISCORD_API_BASE=api.base_url,
            LLM_BACKENDS=["openai"],
        )
        code, stderr = await run_cli(tmp_path, "bot")
    assert code == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("discord-auto-reply: error: Discord refused DISCORD_BOT_TOKEN")
    assert not any("Traceback" in line or "ERROR" in line for line in lines)
    assert "wrong-bot-token-value" not in stderr
    assert gateway.identifies == []


async def test_the_bot_answers_and_stops_on_sigterm(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with fake_discord_bot() as (api, gateway):
        write_config(
            tmp_path,
            DISCORD_BOT_TOKEN=api.BOT_TOKEN,
            DISCORD_API_BASE=api.base_url,
            OPENAI_API_KEY=fake_openai.API_KEY,
            OPENAI_BASE_URL=fake_openai.base_url,
            LLM_BACKENDS=["openai"],
        )
        process = await start_cli(tmp_path, "bot")
        try:
            startup = await read_until(process, "registered 4 slash commands")
            await gateway.wait_until_ready()
            api.post_as_user(FRIEND, DM_CHANNEL, "are you there?")
            [reply] = await api.wait_for_messages(1, timeout=20)
            assert reply["content"] == "echo: are you there? [turns=1]"
        finally:
            process.send_signal(signal.SIGTERM)
            _stdout, rest = await asyncio.wait_for(process.communicate(), 30)
    output = startup + rest.decode()
    assert process.returncode == 0, output
    assert "LLM backends: openai" in output
    assert "watching 1 pair(s) and 0 persona(s) from reply_config.py" in output
    assert "answered user" in output
    assert "shutting down" in output
    assert api.BOT_TOKEN not in output
    assert fake_openai.API_KEY not in output


async def test_interactions_serves_until_sigterm(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    write_config(
        tmp_path,
        DISCORD_APPLICATION_ID="1180000000000000042",
        DISCORD_PUBLIC_KEY="ab" * 32,
        OPENAI_BASE_URL=fake_openai.base_url,
        LLM_BACKENDS=["openai"],
    )
    process = await start_cli(tmp_path, "interactions", "--port", "0")
    try:
        startup = await read_until(process, "watching 1 pair(s)")
    finally:
        process.send_signal(signal.SIGTERM)
        _stdout, rest = await asyncio.wait_for(process.communicate(), 30)
    output = startup + rest.decode()
    assert process.returncode == 0, output
    assert "DISCORD_BOT_TOKEN is empty: the slash commands are not registered" in output
    assert "interactions endpoint on http://127.0.0.1:" in output
