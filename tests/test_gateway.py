"""The websocket gateway over real sockets: handshake, hello, frames, watch updates, redaction."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server import __version__, log_redaction
from tests.relay_harness import SECRET, PluginClient, running_app

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
