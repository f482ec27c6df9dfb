"""The HTTP interactions endpoint, with real Ed25519 signatures, answering through the fake REST."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from nacl.signing import SigningKey

from server.bot.app import InteractionsServer
from server.bot.commands import REFUSAL
from server.config import ConfigError
from server.delivery.splitter import split_message
from tests.bot_harness import DM_CHANNEL, FRIEND, GUILD, GUILD_CHANNEL, STRANGER, bot_settings
from tests.fakes.discord_bot_api import EPHEMERAL, FakeDiscordBot
from tests.fakes.openai_api import FakeOpenAI

RULES = f'REPLY_TO = [("{FRIEND}", "*")]\nPERSONAS = {{"pirate": "Arr."}}\n'


@dataclass
class Endpoint:
    url: str
    api: FakeDiscordBot
    server: InteractionsServer
    http: aiohttp.ClientSession


@asynccontextmanager
async def endpoint(
    tmp_path: Path, llm: FakeOpenAI, *, bot_token: str | None = None, **api_options: float
) -> AsyncIterator[Endpoint]:
    """The real interactions server on a free port, answering through the fake REST API."""
    reply_config = tmp_path / "reply_config.py"
    reply_config.write_text(RULES, encoding="utf-8")
    api = FakeDiscordBot(**api_options)  # type: ignore[arg-type]
    api.add_guild(GUILD, GUILD_CHANNEL)
    await api.start()
    settings = bot_settings(
        api,
        llm,
        DISCORD_BOT_TOKEN=api.BOT_TOKEN if bot_token is None else bot_token,
        DISCORD_APPLICATION_ID=api.APPLICATION_ID,
        DISCORD_PUBLIC_KEY=api.public_key,
    )
    server = InteractionsServer(settings, reply_config, port=0)
    try:
        port = await server.start()
        async with aiohttp.ClientSession() as http:
            yield Endpoint(f"http://127.0.0.1:{port}/interactions", api, server, http)
    finally:
        await server.stop()
        await api.stop()


def signed(key: SigningKey, body: bytes, timestamp: str | None = None) -> dict[str, str]:
    stamp = timestamp or str(int(time.time()))
    return {
        "Content-Type": "application/json",
        "X-Signature-Ed25519": key.sign(stamp.encode() + body).signature.hex(),
        "X-Signature-Timestamp": stamp,
    }


async def test_pings_are_answered_and_the_commands_registered(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with endpoint(tmp_path, fake_openai) as ep:
        body = json.dumps({"type": 1, "id": "1", "application_id": ep.api.APPLICATION_ID}).encode()
        async with ep.http.post(ep.url, data=body, headers=signed(ep.api.signing_key, body)) as r:
            assert r.status == 200
            assert await r.json() == {"type": 1}
        assert ep.api.command_overwrites == 1
        assert [c["name"] for c in ep.api.commands] == ["reset", "persona", "ask", "session"]


async def test_missing_or_bad_signatures_are_401(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    async with endpoint(tmp_path, fake_openai) as ep:
        body = json.dumps({"type": 1}).encode()
        good = signed(ep.api.signing_key, body)
        attempts = {
            "no headers": {"Content-Type": "application/json"},
            "no timestamp": {k: v for k, v in good.items() if k != "X-Signature-Timestamp"},
            "no signature": {k: v for k, v in good.items() if k != "X-Signature-Ed25519"},
            "another key": signed(SigningKey.generate(), body),
            "not hex": {**good, "X-Signature-Ed25519": "zz" * 64},
            "other timestamp": {**good, "X-Signature-Timestamp": str(int(time.time()) + 1)},
        }
        for name, headers in attempts.items():
            async with ep.http.post(ep.url, data=body, headers=headers) as response:
                assert response.status == 401, name
        tampered = json.dumps({"type": 1, "x": 1}).encode()
        async with ep.http.post(ep.url, data=tampered, headers=good) as response:
            assert response.status == 401
        assert fake_openai.requests == []


async def test_a_command_is_deferred_then_its_answer_patched_in(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with endpoint(tmp_path, fake_openai) as ep:
        fake_openai.delay = 0.3  # longer than a synchronous answer would be allowed to take
        interaction = ep.api.new_interaction("ask", FRIEND, GUILD_CHANNEL, options={"prompt": "hi"})
        started = time.monotonic()
        status, answer = await ep.api.deliver(ep.url, interaction, ep.http)
        assert time.monotonic() - started < 0.3  # deferred before the LLM answered
        assert (status, answer) == (200, {"type": 5, "data": {}})
        original = await ep.api.wait_for_answer(interaction)
        assert original["content"] == "echo: hi [turns=1]"
        assert original["flags"] == 0  # /ask is for the channel
        [edit] = interaction.edits
        assert edit["allowed_mentions"] == {"parse": [], "replied_user": False}
        patches = [r for r in ep.api.requests if r.method == "PATCH"]
        assert patches[0].path == (
            f"/api/v10/webhooks/{ep.api.APPLICATION_ID}/{interaction.token}/messages/@original"
        )


async def test_personal_commands_are_deferred_ephemerally(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with endpoint(tmp_path, fake_openai) as ep:
        chosen = ep.api.new_interaction("persona", FRIEND, DM_CHANNEL, options={"name": "pirate"})
        status, answer = await ep.api.deliver(ep.url, chosen, ep.http)
        assert (status, answer) == (200, {"type": 5, "data": {"flags": EPHEMERAL}})
        original = await ep.api.wait_for_answer(chosen)
        assert original["content"] == "From now on I answer you here as “pirate”."
        assert original["flags"] & EPHEMERAL

        asked = ep.api.new_interaction("ask", FRIEND, DM_CHANNEL, options={"prompt": "yo"})
        await ep.api.deliver(ep.url, asked, ep.http)
        await ep.api.wait_for_answer(asked)
        assert fake_openai.requests[-1]["messages"][0] == {"role": "system", "content": "Arr."}


async def test_a_caller_no_rule_covers_is_refused_at_once(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with endpoint(tmp_path, fake_openai) as ep:
        interaction = ep.api.new_interaction("ask", STRANGER, DM_CHANNEL, options={"prompt": "x"})
        status, answer = await ep.api.deliver(ep.url, interaction, ep.http)
        assert status == 200
        assert answer == {
            "type": 4,
            "data": {
                "content": REFUSAL,
                "allowed_mentions": {"parse": [], "replied_user": False},
                "flags": EPHEMERAL,
            },
        }
        assert interaction.edits == []
        assert fake_openai.requests == []


async def test_a_long_answer_continues_in_follow_ups_within_the_rate_limit(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    text = "\n\n".join(f"Paragraph {i}. " + "x" * 900 for i in range(5))
    fake_openai.reply_fn = lambda _messages: text
    expected = split_message(text, 2000)
    assert len(expected) == 3
    # One request per 0.3 s per interaction: each follow-up meets a 429 first and waits it out.
    async with endpoint(tmp_path, fake_openai, limit=1, window=0.3) as ep:
        interaction = ep.api.new_interaction("ask", FRIEND, DM_CHANNEL, options={"prompt": "long"})
        await ep.api.deliver(ep.url, interaction, ep.http)
        original = await ep.api.wait_for_answer(interaction)
        followups = await ep.api.wait_for_followups(interaction, 2)
        assert [original["content"], *(f["content"] for f in followups)] == expected
        assert all(f["allowed_mentions"]["parse"] == [] for f in followups)
        assert all(not f["flags"] & EPHEMERAL for f in followups)
        webhook_statuses = [r.status for r in ep.api.requests if "/webhooks/" in r.path]
        assert webhook_statuses.count(429) >= 1
        assert [status for status in webhook_statuses if status != 429] == [200, 204, 204]


async def test_a_refused_bot_token_stops_the_start_with_the_key_named(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    with pytest.raises(ConfigError, match="DISCORD_BOT_TOKEN") as caught:
        async with endpoint(tmp_path, fake_openai, bot_token="wrong-token"):
            pass
    assert "wrong-token" not in str(caught.value)


async def test_without_a_bot_token_it_serves_without_registering(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with endpoint(tmp_path, fake_openai, bot_token="") as ep:
        interaction = ep.api.new_interaction("session", FRIEND, DM_CHANNEL, subcommand="list")
        await ep.api.deliver(ep.url, interaction, ep.http)
        original = await ep.api.wait_for_answer(interaction)
        assert original["content"] == "Your sessions here:\n• main (current)"
        assert ep.api.command_overwrites == 0
