"""Chats chosen from Discord, over real sockets: a plugin sets, lists and removes rules, and the
relay answers by them at once, across a restart; over both transports."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_api import FakeOpenAI
from tests.relay_harness import PluginClient, running_app

RULES = (
    'CONTEXT_MESSAGE = "You are Sam\'s stand-in."\n'
    'PERSONAS = {"friendly": "You are warm.", "formal": "You are formal."}\n'
    'REPLY_TO = [("111", "222"), ("112", "*", {"persona": "You are formal."})]\n'
)
TRANSPORTS = ["websocket", "http"]


def openai_settings(fake_openai: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    """Replies written by the fake OpenAI server and posted through the plugin (`send`)."""
    return {
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": FakeOpenAI.API_KEY,
        **extra,
    }


async def request(client: PluginClient, frame: dict[str, Any]) -> dict[str, Any]:
    """Send an owner frame and wait for its `rule_result` (or `rules`) answer."""
    kind = "rules" if frame["type"] == "rules" else "rule_result"
    before = len(client.owner_frames)
    await client.send_raw(json.dumps(frame))
    for _ in range(500):
        for answer in client.owner_frames[before:]:
            if answer["type"] == kind:
                return answer
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {kind} answer to {frame}: {client.owner_frames[before:]}")


async def next_of(client: PluginClient, kind: str) -> dict[str, Any]:
    """The next frame of `kind` on the plain frame queue (watch, error), skipping others."""
    while True:
        frame = await client.next_frame()
        if frame["type"] == kind:
            return frame


def by_pair(rules_frame: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(rule["user"], rule["channel"]): rule for rule in rules_frame["rules"]}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_rule_set_from_discord_answers_at_once_survives_a_restart_and_stops_on_remove(
    tmp_path: Path, fake_openai: FakeOpenAI, transport: str
) -> None:
    settings = openai_settings(fake_openai)
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url, transport=transport)
        greeting = await client.wait_for_owner_frame("rules")
        assert greeting["personas"] == ["friendly", "formal"]
        # MODE and REPLY_WHEN as configured (the harness sets REPLY_WHEN "always").
        assert greeting["defaults"] == {"mode": "send", "reply_when": "always"}
        assert by_pair(greeting)[("112", "*")] == {
            "user": "112",
            "channel": "*",
            "source": "file",
            "label": None,
            "persona": "formal",
            "mode": None,
            "reply_when": None,
            "last_reply": None,
            "where": "reply_config.py REPLY_TO[1]",
        }
        # Not yet chosen: ignored.
        await client.message("5001", "500", "600", "hello?", guild="700")
        await asyncio.sleep(0.1)
        assert client.sends == []

        result = await request(
            client,
            {
                "type": "rule_set",
                "user": "500",
                "channel": "600",
                "persona": "friendly",
                "mode": None,
                "reply_when": None,
                "label": "#general · My Server",
            },
        )
        assert result["ok"] is True
        assert result["text"] == (
            "Auto-reply on for #general · My Server: persona friendly, replies sent, "
            "even while you are here."
        )
        assert result["rule"]["source"] == "discord" and result["rule"]["where"] == "Discord"
        watch = await next_of(client, "watch")
        assert {"user": "500", "channel": "600"} in watch["watch"]
        # Every plugin is told the new rules before the answer comes.
        assert [frame["type"] for frame in client.owner_frames[-2:]] == ["rules", "rule_result"]
        assert by_pair(client.owner_frames[-2])[("500", "600")]["persona"] == "friendly"

        await client.message("5002", "500", "600", "are you there?", guild="700")
        [sent] = await client.wait_for_sends(1)
        assert sent["channel"] == "600"
        assert fake_openai.requests[-1]["messages"][0]["content"].startswith("You are warm.")
        await client.close()

    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url, transport=transport)
        assert {"user": "500", "channel": "600"} in client.welcome["watch"]
        greeting = await client.wait_for_owner_frame("rules")
        kept = by_pair(greeting)[("500", "600")]
        assert kept["label"] == "#general · My Server"
        assert kept["last_reply"] is not None  # the reply before the restart
        await client.message("5003", "500", "600", "still there?", guild="700")
        await client.wait_for_sends(1)

        removed = await request(client, {"type": "rule_remove", "user": "500", "channel": "600"})
        assert removed == {
            "type": "rule_result",
            "ok": True,
            "text": "Auto-reply off for #general · My Server.",
            "rule": None,
        }
        watch = await next_of(client, "watch")
        assert {"user": "500", "channel": "600"} not in watch["watch"]
        await client.message("5004", "500", "600", "hello again", guild="700")
        await asyncio.sleep(0.2)
        assert len(client.sends) == 1
        again = await request(client, {"type": "rule_remove", "user": "500", "channel": "600"})
        assert again["ok"] is False and again["text"] == "No Discord rule for this chat."
        await client.close()


async def test_every_plugin_hears_of_a_change_and_a_dms_rule_answers_only_in_dms(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_app(tmp_path, RULES, **openai_settings(fake_openai)) as running:
        setter = await PluginClient.connect(running.url)
        other = await PluginClient.connect(running.url, transport="http")
        await other.wait_for_owner_frame("rules")
        result = await request(
            setter,
            {"type": "rule_set", "user": "500", "channel": "@dms", "label": "Sam (all DMs)"},
        )
        assert result["ok"], result
        assert result["text"].startswith("Auto-reply on for Sam (all DMs): persona default")
        await next_of(setter, "watch")
        watch = await next_of(other, "watch")
        assert {"user": "500", "channel": "@dms"} in watch["watch"]
        await other.wait_for_owner_frame("rules")
        assert ("500", "@dms") in by_pair(other.owner_frames[-1])

        await setter.message("6001", "500", "800", "in a server", guild="700")
        await asyncio.sleep(0.2)
        assert setter.sends == [] and other.sends == []
        await setter.message("6002", "500", "801", "in our DM")
        sends = await other.wait_for_sends(1)  # the newest plugin posts
        assert [frame["channel"] for frame in sends] == ["801"]
        await setter.close()
        await other.close()


async def test_file_rules_cannot_be_changed_or_removed_from_discord(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_app(tmp_path, RULES, **openai_settings(fake_openai)) as running:
        client = await PluginClient.connect(running.url)
        refusal = (
            "This chat is set in reply_config.py (REPLY_TO[1]); edit the file to change or stop it."
        )
        for frame in (
            {"type": "rule_remove", "user": "112", "channel": "*"},
            {"type": "rule_set", "user": "111", "channel": "222", "mode": "draft"},
        ):
            answer = await request(client, frame)
            assert answer["ok"] is False
        assert answer["text"] == refusal.replace("[1]", "[0]")
        removed = await request(client, {"type": "rule_remove", "user": "112", "channel": "*"})
        assert removed["text"] == refusal

        unknown = await request(
            client, {"type": "rule_set", "user": "500", "channel": "600", "persona": "pirate"}
        )
        assert unknown["text"] == "Unknown persona 'pirate'; PERSONAS has: friendly, formal."
        everywhere = await request(client, {"type": "rule_set", "user": "500", "channel": "*"})
        assert everywhere["ok"] is False and "reply_config.py" in everywhere["text"]
        anyone = await request(client, {"type": "rule_set", "user": "*", "channel": "@dms"})
        assert anyone["ok"] is False and "name a user" in anyone["text"]
        listed = await request(client, {"type": "rules"})
        assert [rule["source"] for rule in listed["rules"]] == ["file", "file"]
        await client.close()


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (
            {"type": "rule_set", "user": "@dms", "channel": "600"},
            'invalid rule_set frame: user: must be a Discord user id (digits) or "*"',
        ),
        (
            {"type": "rule_set", "user": "500", "channel": "general"},
            'invalid rule_set frame: channel: must be a Discord channel id (digits) or "@dms"',
        ),
        (
            {"type": "rule_set", "user": "500", "channel": "600", "label": "x" * 201},
            "invalid rule_set frame: label: String should have at most 200 characters",
        ),
        (
            {"type": "rule_set", "user": "500", "channel": "600", "mode": "loud"},
            "invalid rule_set frame: mode: Input should be 'send' or 'draft'",
        ),
        ({"type": "rule_remove", "user": "500"}, "invalid rule_remove frame: channel"),
    ],
)
async def test_a_bad_rule_frame_gets_a_clear_error_and_changes_nothing(
    tmp_path: Path, fake_openai: FakeOpenAI, frame: dict[str, Any], expected: str
) -> None:
    async with running_app(tmp_path, RULES, **openai_settings(fake_openai)) as running:
        client = await PluginClient.connect(running.url)
        await client.send_raw(json.dumps(frame))
        error = await next_of(client, "error")
        assert error["error"].startswith(expected), error
        assert len(running.app.chosen.effective().rules) == 2
        await client.close()


async def test_a_file_reload_retells_the_merged_rules_and_a_lost_persona_warns_once(
    tmp_path: Path, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_app(tmp_path, RULES, **openai_settings(fake_openai)) as running:
        running.app.rules_watcher._interval = 0.05
        client = await PluginClient.connect(running.url)
        await request(
            client, {"type": "rule_set", "user": "500", "channel": "600", "persona": "friendly"}
        )
        await next_of(client, "watch")
        caplog.set_level(logging.WARNING, logger="server.owner.chosen_chats")
        edited = RULES.replace('"friendly": "You are warm.", ', "")
        edited += 'REPLY_TO.append(("113", "224"))\n'
        (tmp_path / "reply_config.py").write_text(edited, encoding="utf-8")
        await running.app.rules_watcher.reload_if_changed()
        watch = await next_of(client, "watch")
        assert watch["watch"] == [
            {"user": "111", "channel": "222"},
            {"user": "112", "channel": "*"},
            {"user": "113", "channel": "224"},
            {"user": "500", "channel": "600"},
        ]
        rules = await client.wait_for_owner_frame("rules", personas=["formal"])
        assert by_pair(rules)[("500", "600")]["persona"] == "friendly"  # as chosen, though lost
        await client.message("7001", "500", "600", "hi", guild="700")
        await client.wait_for_sends(1)
        assert fake_openai.requests[-1]["messages"][0]["content"].startswith("You are Sam's")
        warnings = [r.getMessage() for r in caplog.records if "PERSONAS" in r.getMessage()]
        assert len(warnings) == 1 and "'friendly'" in warnings[0]
        await client.close()
