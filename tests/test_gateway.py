"""The websocket gateway over real sockets: handshake, hello, frames, watch updates, redaction."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server import __version__, log_redaction
from tests.fakes.openai_api import FakeOpenAI
from tests.relay_harness import SECRET, PluginClient, opened, running_app

RULES = 'CONTEXT_MESSAGE = "hi"\nREPLY_TO = [("111", "222"), ("*", "333")]\n'


async def test_good_hello_gets_welcome_with_watch_list(tmp_path: Path) -> None:
    async with running_app(tmp_path, RULES) as running:
        client = await PluginClient.connect(running.url)
        assert client.welcome == {
            "type": "welcome",
            "server_version": __version__,
            "protocol": 1,
            "watch": [{"user": "111", "channel": "222"}, {"user": "*", "channel": "333"}],
            "messenger": "plugin",
        }
        await client.close()


@pytest.mark.parametrize("origin", ["https://discord.com", "https://canary.discord.com"])
async def test_discord_origins_are_accepted(tmp_path: Path, origin: str) -> None:
    async with (
        running_app(tmp_path, RULES) as running,
        connect(
            running.url,
            origin=origin,  # type: ignore[arg-type]
        ) as ws,
    ):
        await ws.send(json.dumps({"type": "hello", "secret": SECRET}))
        assert json.loads(await ws.recv())["type"] == "welcome"


async def test_foreign_origin_is_refused_with_403(tmp_path: Path) -> None:
    async with running_app(tmp_path, RULES) as running:
        with pytest.raises(InvalidStatus) as caught:
            await connect(running.url, origin="https://evil.example")  # type: ignore[arg-type]
        assert caught.value.response.status_code == 403


@pytest.mark.parametrize(
    "hello",
    [
        {"type": "hello", "secret": "wrong"},
        {"type": "hello"},
        {"type": "hello", "secret": SECRET[:-1]},
    ],
)
async def test_wrong_or_missing_secret_closes_4001(
    tmp_path: Path, hello: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    async with running_app(tmp_path, RULES) as running, connect(running.url) as ws:
        await ws.send(json.dumps(hello))
        with pytest.raises(ConnectionClosed) as caught:
            await ws.recv()
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 4001
    assert "bad secret" in caplog.text
    assert "127.0.0.1:" in caplog.text  # the peer is named


async def test_no_hello_in_time_closes_4002(tmp_path: Path) -> None:
    async with (
        running_app(tmp_path, RULES, HELLO_TIMEOUT_SECONDS=0.1) as running,
        connect(running.url) as ws,
    ):
        with pytest.raises(ConnectionClosed) as caught:
            await ws.recv()
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 4002


async def test_first_frame_must_be_hello(tmp_path: Path) -> None:
    async with running_app(tmp_path, RULES) as running, connect(running.url) as ws:
        await ws.send(json.dumps({"type": "sent", "nonce": "1", "ok": True}))
        with pytest.raises(ConnectionClosed) as caught:
            await ws.recv()
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 4002


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"type": "shout"}', "unknown frame type 'shout'"),
        ('{"type": "message", "id": "1"}', "invalid message frame: channel: Field required"),
        (
            json.dumps(
                {
                    "type": "message",
                    "id": 1,
                    "channel": "2",
                    "author": {"id": "3"},
                    "content": "x",
                }
            ),
            "id: Input should be a valid string",
        ),
        ('{"type": "activity"}', "invalid activity frame: at: Field required"),
        (
            '{"type": "opened", "nonce": "n", "ok": true}',
            "invalid opened frame: focused: Field required",
        ),
        (b"\x00binary", "binary frames are not part of protocol v1"),
        ('{"type": "hello", "secret": "again"}', "already authenticated"),
    ],
)
async def test_malformed_frames_get_an_error_and_the_connection_stays_open(
    tmp_path: Path, frame: str | bytes, expected: str
) -> None:
    async with running_app(tmp_path, RULES) as running:
        client = await PluginClient.connect(running.url)
        await client.send_raw(frame)
        answer = await client.next_frame()
        assert answer["type"] == "error"
        assert expected in answer["error"]
        await client.message("42", "111", "222", "")  # still usable: a message is acked
        await client.close()


async def test_frames_over_one_mebibyte_are_refused(tmp_path: Path) -> None:
    async with running_app(tmp_path, RULES) as running:
        client = await PluginClient.connect(running.url)
        await client.send_raw("x" * (1024 * 1024 + 1))
        await asyncio.wait_for(client.connection.wait_closed(), 5)
        assert client.connection.close_code == 1009


async def test_rule_changes_are_pushed_as_watch_frames(tmp_path: Path) -> None:
    async with running_app(tmp_path, RULES) as running:
        client = await PluginClient.connect(running.url)
        path = tmp_path / "reply_config.py"
        path.write_text('REPLY_TO = [("555", "666")]\n', encoding="utf-8")
        stat = path.stat()
        os.utime(path, (stat.st_atime, stat.st_mtime + 5))
        assert await running.app.rules_watcher.reload_if_changed()
        assert await client.next_frame() == {
            "type": "watch",
            "watch": [{"user": "555", "channel": "666"}],
        }
        await client.close()
        later = await PluginClient.connect(running.url)  # welcomed with the new rules too
        assert later.welcome["watch"] == [{"user": "555", "channel": "666"}]
        await later.close()


async def test_websocket_debug_logs_never_show_the_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    redactor = log_redaction.install([SECRET], [caplog.handler])
    logging.getLogger("websockets").setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG):
            async with running_app(tmp_path, RULES) as running:
                client = await PluginClient.connect(running.url)
                await client.close()
                async with connect(running.url) as ws:
                    await ws.send(json.dumps({"type": "hello", "secret": SECRET + "-wrong"}))
                    with pytest.raises(ConnectionClosed):
                        await ws.recv()
    finally:
        caplog.handler.removeFilter(redactor)
        logging.getLogger("websockets").setLevel(logging.NOTSET)
    assert "TEXT" in caplog.text  # websockets really logged frames at debug level
    assert SECRET not in caplog.text
    assert SECRET[:12] not in caplog.text
    assert "[redacted]" in caplog.text


async def test_open_channel_is_answered_only_by_an_opened_frame_with_its_nonce(
    tmp_path: Path,
) -> None:
    async with running_app(tmp_path, RULES) as running:
        client = await PluginClient.connect(running.url)
        client.answer_open = lambda frame: None
        asking = asyncio.create_task(running.app.gateway.open_channel("222", 5.0))
        [frame] = await client.wait_for_open_requests(1)
        assert frame == {"type": "open_channel", "nonce": frame["nonce"], "channel": "222"}
        for wrong in (
            {"type": "sent", "nonce": frame["nonce"], "ok": True},  # a `send`'s answer
            opened({**frame, "nonce": "other"}),
        ):
            await client.send_raw(json.dumps(wrong))
        await asyncio.sleep(0.1)
        assert not asking.done()
        await client.send_raw(json.dumps(opened(frame, focused=False)))
        answer = await asking
        assert (answer.channel, answer.ok, answer.focused) == ("222", True, False)
        await client.close()


async def test_open_channel_fails_when_the_plugin_disconnects_or_never_comes(
    tmp_path: Path,
) -> None:
    async with running_app(tmp_path, RULES) as running:
        with pytest.raises(TimeoutError):
            await running.app.gateway.open_channel("222", 0.1)
        client = await PluginClient.connect(running.url)
        client.answer_open = lambda frame: None
        asking = asyncio.create_task(running.app.gateway.open_channel("222", 5.0))
        await client.wait_for_open_requests(1)
        await client.close()
        with pytest.raises(ConnectionError, match="disconnected before answering"):
            await asking


async def test_activity_reports_keep_the_latest_time_and_never_the_future(tmp_path: Path) -> None:
    async with running_app(tmp_path, RULES) as running:
        gateway = running.app.gateway
        assert gateway.last_activity() is None
        client = await PluginClient.connect(running.url)
        now = time.time()
        await client.activity(now - 5.0)
        await client.activity(now - 10.0)  # late and out of order: ignored
        await client.message("1", "111", "222", "")  # acked after the frames before it
        assert gateway.last_activity() == pytest.approx(now - 5.0, abs=0.001)
        await client.activity(now + 3600.0)
        await client.message("2", "111", "222", "")
        seen = gateway.last_activity()
        assert seen is not None
        assert now <= seen <= time.time()
        await client.close()


CLI_HELLO = json.dumps({"type": "hello", "secret": SECRET, "client": "cli", "role": "cli"})


async def status_of(ws: ClientConnection) -> dict[str, object]:
    await ws.send('{"type": "status"}')
    answer: dict[str, object] = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return answer


async def test_cli_client_is_welcomed_and_told_the_status(tmp_path: Path) -> None:
    async with running_app(tmp_path, RULES) as running, connect(running.url) as ws:
        await ws.send(CLI_HELLO)
        welcome = json.loads(await ws.recv())
        assert (welcome["type"], welcome["messenger"]) == ("welcome", "plugin")

        assert await status_of(ws) == {
            "type": "status",
            "server_version": __version__,
            "plugins": 0,
            "transports": {},
            "watching": 2,
            "messenger": "plugin",
        }
        plugin = await PluginClient.connect(running.url)
        over_http = await PluginClient.connect(running.url, transport="http")
        status = await status_of(ws)
        assert (status["plugins"], status["transports"]) == (2, {"websocket": 1, "http": 1})
        await plugin.close()
        await over_http.close()
        for _ in range(100):  # the server notices the close a moment later
            if (await status_of(ws))["plugins"] == 0:
                break
            await asyncio.sleep(0.02)
        assert (await status_of(ws))["plugins"] == 0


async def test_cli_client_may_only_ask_for_status(tmp_path: Path) -> None:
    async with running_app(tmp_path, RULES) as running, connect(running.url) as ws:
        await ws.send(CLI_HELLO)
        await ws.recv()
        frame = {
            "type": "message",
            "id": "1",
            "channel": "222",
            "author": {"id": "111"},
            "content": "hi",
        }
        await ws.send(json.dumps(frame))
        answer = json.loads(await ws.recv())
        assert answer == {
            "type": "error",
            "error": "a cli client may not send 'message' frames",
        }
        await ws.send("not json")
        assert "not valid JSON" in json.loads(await ws.recv())["error"]
        assert (await status_of(ws))["type"] == "status"  # still open


async def test_unknown_role_is_a_bad_hello(tmp_path: Path) -> None:
    async with running_app(tmp_path, RULES) as running, connect(running.url) as ws:
        await ws.send(json.dumps({"type": "hello", "secret": SECRET, "role": "admin"}))
        with pytest.raises(ConnectionClosed) as caught:
            await ws.recv()
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 4002


async def test_replies_go_to_the_plugin_never_to_a_newer_cli_client(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    settings = {"OPENAI_BASE_URL": fake_openai.base_url, "OPENAI_API_KEY": FakeOpenAI.API_KEY}
    async with running_app(tmp_path, RULES, **settings) as running:
        plugin = await PluginClient.connect(running.url)
        async with connect(running.url) as cli:
            await cli.send(CLI_HELLO)
            await cli.recv()
            await plugin.message("7", "111", "222", "still there?")
            [sent] = await plugin.wait_for_sends(1)
            assert sent["content"] == "[auto-reply] echo: still there? [turns=1]"
            assert plugin.typing  # the typing indicator went to the plugin too
            path = tmp_path / "reply_config.py"
            path.write_text('REPLY_TO = [("555", "666")]\n', encoding="utf-8")
            stat = path.stat()
            os.utime(path, (stat.st_atime, stat.st_mtime + 5))
            assert await running.app.rules_watcher.reload_if_changed()
            assert (await plugin.next_frame())["type"] == "watch"
            # The cli client got nothing but the answer to its own status request.
            assert await status_of(cli) == {
                "type": "status",
                "server_version": __version__,
                "plugins": 1,
                "transports": {"websocket": 1},
                "watching": 1,
                "messenger": "plugin",
            }
        await plugin.close()
