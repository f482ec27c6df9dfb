"""Draft mode over real sockets: drafts made, handed to the plugin, sent (after an edit),
discarded, expired, kept across a restart, and acted on from the command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from server.storage.owner_store import OwnerStore
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI
from tests.relay_harness import PluginClient, run_cli, running_app, write_cli_config
from tests.test_relay import rest_settings

RULES = (
    'CONTEXT_MESSAGE = "You stand in for Sam."\n'
    'REPLY_TO = [("111", "222"), ("112", "223", {"mode": "send"})]\n'
)


def draft_settings(fake_discord: FakeDiscord, fake_openai: FakeOpenAI, **extra: Any) -> Any:
    return rest_settings(fake_discord, fake_openai, MODE="draft", **extra)


async def act(client: PluginClient, draft_id: str, action: str, content: str | None = None) -> None:
    frame = {"type": "draft_action", "id": draft_id, "action": action, "content": content}
    await client.send_raw(json.dumps(frame))


async def test_a_draft_is_handed_to_the_plugin_and_sent_after_an_edit(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    async with running_app(
        tmp_path, RULES, **draft_settings(fake_discord, fake_openai, TYPING_INTERVAL_SECONDS=0.01)
    ) as running:
        client = await PluginClient.connect(running.url)
        await client.message("1001", "111", "222", "dinner at 8?", guild="900")
        draft = await client.wait_for_owner_frame("draft")
        assert draft["channel"] == "222" and draft["user"] == "111"
        assert draft["author"] == "user111"
        assert draft["message_id"] == "1001" and draft["guild"] == "900"
        assert draft["question"] == "dinner at 8?"
        assert draft["content"] == "echo: dinner at 8? [turns=1]"  # no prefix: it is added on send
        await running.app.relay.drain()
        assert fake_discord.messages == [] and fake_discord.typing == []  # nothing said, no typing

        await act(client, draft["id"], "send", "  Yes, see you at 8!  ")
        done = await client.wait_for_owner_frame("draft_done", id=draft["id"])
        assert done == {"type": "draft_done", "id": draft["id"], "status": "sent", "error": None}
        [posted] = fake_discord.messages
        assert posted["content"] == "[auto-reply] Yes, see you at 8!"
        assert posted["enforce_nonce"] is True and posted["nonce"]
        assert posted["message_reference"]["message_id"] == "1001"  # still a reply to the message

        # The sent text is the conversation's reply, so the next answer builds on it.
        await act(client, draft["id"], "send")  # a second Send does not post twice
        already = f"draft {draft['id']} is already sent"
        await client.wait_for_owner_frame("draft_done", id=draft["id"], error=already)
        await client.message("1002", "111", "222", "great")
        await client.wait_for_owner_frame("draft", message_id="1002")
        last_request = fake_openai.requests[-1]["messages"]
        assert {"role": "assistant", "content": "Yes, see you at 8!"} in last_request
        assert len(fake_discord.messages) == 1
        await client.close()


async def test_discard_drops_a_draft_and_a_rule_can_still_send_directly(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    async with running_app(tmp_path, RULES, **draft_settings(fake_discord, fake_openai)) as running:
        client = await PluginClient.connect(running.url)
        await client.message("1001", "111", "222", "lend me 50?")
        draft = await client.wait_for_owner_frame("draft")
        await act(client, draft["id"], "discard")
        done = await client.wait_for_owner_frame("draft_done", id=draft["id"])
        assert done["status"] == "discarded"
        await act(client, draft["id"], "send")
        already = f"draft {draft['id']} is already discarded"
        await client.wait_for_owner_frame("draft_done", id=draft["id"], error=already)

        await client.message("1002", "112", "223", "this rule sends")  # {"mode": "send"}
        [posted] = await fake_discord.wait_for_messages(1)
        assert posted["channel_id"] == "223"
        await running.app.relay.drain()
        drafts = await OwnerStore(running.app.store).drafts(pending_only=False)
        assert [(d.id, d.status) for d in drafts] == [(int(draft["id"]), "discarded")]
        await client.close()


async def test_a_draft_not_acted_on_expires(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    settings = draft_settings(fake_discord, fake_openai, DRAFT_EXPIRE_MINUTES=0.005)  # 0.3 s
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("1001", "111", "222", "quick question")
        draft = await client.wait_for_owner_frame("draft")
        done = await client.wait_for_owner_frame("draft_done", id=draft["id"], timeout=5.0)
        assert done["status"] == "expired"
        await act(client, draft["id"], "send")
        already = f"draft {draft['id']} is already expired"
        await client.wait_for_owner_frame("draft_done", id=draft["id"], error=already)
        assert fake_discord.messages == []
        await client.close()


async def test_a_failed_send_keeps_the_draft_and_a_double_send_posts_once(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    async with running_app(tmp_path, RULES, **draft_settings(fake_discord, fake_openai)) as running:
        client = await PluginClient.connect(running.url)
        await client.message("1001", "111", "222", "hello")
        draft = await client.wait_for_owner_frame("draft")
        fake_discord.fail_next(403)
        await act(client, draft["id"], "send")
        failed = await client.wait_for_owner_frame("draft_done", id=draft["id"], status="failed")
        assert "the draft is kept" in failed["error"]

        await act(client, draft["id"], "send")
        await act(client, draft["id"], "send")
        await client.wait_for_owner_frame("draft_done", id=draft["id"], status="sent")
        await asyncio.sleep(0.2)
        assert [m["content"] for m in fake_discord.messages] == [
            "[auto-reply] echo: hello [turns=1]"
        ]
        await client.close()


async def test_the_plugin_messenger_can_send_a_draft_the_plugin_itself_approved(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    settings = {
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": FakeOpenAI.API_KEY,
        "MESSENGER": "plugin",
        "MODE": "draft",
        "SEND_TIMEOUT_SECONDS": 3.0,
    }
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("1001", "111", "222", "hi")
        draft = await client.wait_for_owner_frame("draft")
        assert client.typing == []
        # The `send` frame comes back on this same connection and must be answered meanwhile.
        await act(client, draft["id"], "send")
        [send] = await client.wait_for_sends(1)
        assert send["content"] == "[auto-reply] echo: hi [turns=1]"
        done = await client.wait_for_owner_frame("draft_done", id=draft["id"])
        assert done["status"] == "sent"
        await client.close()


async def test_drafts_survive_a_restart_and_the_cli_lists_sends_and_discards_them(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    settings = draft_settings(fake_discord, fake_openai)
    async with running_app(tmp_path, RULES, **settings) as running:
        config = str(write_cli_config(running, tmp_path / "config.json"))
        client = await PluginClient.connect(running.url)
        await client.message("1001", "111", "222", "are you coming?")
        first = await client.wait_for_owner_frame("draft")
        await client.message("1002", "113", "224", "ignored: not allow-listed")
        await running.app.relay.drain()
        await client.close()

    async with running_app(tmp_path, RULES, **settings) as running:
        config = str(write_cli_config(running, tmp_path / "config.json"))  # a new port
        # A plugin that says hello after the restart gets the draft still pending.
        client = await PluginClient.connect(running.url)
        resent = await client.wait_for_owner_frame("draft")
        assert resent == first
        await client.message("1003", "111", "222", "hello??")
        second = await client.wait_for_owner_frame("draft", message_id="1003")

        listed = await run_cli("drafts", "--config", config, cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert "Drafts waiting" in listed.stdout
        assert "user111 (111)" in listed.stdout
        assert "echo: are you coming? [turns=1]" in listed.stdout
        assert "echo: hello?? [turns=2]" in listed.stdout  # the first draft is not in memory

        sent = await run_cli("drafts", "send", first["id"], "--config", config, cwd=tmp_path)
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.strip() == f"draft {first['id']} sent"
        [posted] = await fake_discord.wait_for_messages(1)
        assert posted["content"] == "[auto-reply] echo: are you coming? [turns=1]"
        await client.wait_for_owner_frame("draft_done", id=first["id"], status="sent")

        twice = await run_cli("drafts", "send", first["id"], "--config", config, cwd=tmp_path)
        assert twice.returncode == 1
        assert f"draft {first['id']} is already sent" in twice.stderr
        missing = await run_cli("drafts", "discard", "999", "--config", config, cwd=tmp_path)
        assert missing.returncode == 1 and "no draft 999" in missing.stderr
        await client.close()

    # With the server stopped, a draft can still be discarded (not sent) from the terminal.
    offline = await run_cli("drafts", "discard", second["id"], "--config", config, cwd=tmp_path)
    assert offline.returncode == 0, offline.stderr
    assert "discarded (the server is not running)" in offline.stdout
    cannot = await run_cli("drafts", "send", second["id"], "--config", config, cwd=tmp_path)
    assert cannot.returncode == 2 and "is `discord-auto-reply serve` running?" in cannot.stderr
    empty = await run_cli("drafts", "--config", config, cwd=tmp_path)
    assert empty.stdout.strip() == "no drafts waiting"
    usage = await run_cli("drafts", "send", "--config", config, cwd=tmp_path)
    assert usage.returncode == 2 and "drafts send|discard ID" in usage.stderr


async def test_the_summary_on_return_lists_the_drafts_still_waiting(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    settings = draft_settings(fake_discord, fake_openai, REPLY_WHEN="away")
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.send_raw(json.dumps({"type": "presence", "status": "idle"}))
        await client.message("1001", "111", "222", "first line\nsecond line", guild="900")
        draft = await client.wait_for_owner_frame("draft")
        await client.send_raw(json.dumps({"type": "presence", "status": "online"}))
        summary = await client.wait_for_owner_frame("summary")
        assert summary["chats"] == []  # nothing was said for the owner
        assert summary["drafts"] == [
            {
                "id": draft["id"],
                "user": "111",
                "author": "user111",
                "channel": "222",
                "guild": "900",
                "content": "echo: first line",
            }
        ]
        await client.close()
