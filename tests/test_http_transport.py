"""The plugin's HTTP transport over real sockets: the whole path, replays, refusals and bounds.

The real plugin runs over it in tests/plugin (DAR_TRANSPORT=http) and in Chromium with Local
Network Access enforced (tests/browser/test_lna_fallback.py); these check the server's side.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.transport import local_server
from tests.fakes.openai_api import FakeOpenAI
from tests.http_connection import HttpClosed, HttpConnection, http_base
from tests.relay_harness import SECRET, PluginClient, running_app

RULES = 'CONTEXT_MESSAGE = "hi"\nREPLY_TO = [("111", "222")]\n'
HELLO = json.dumps({"type": "hello", "secret": SECRET, "client": "test", "version": "1"})
AUTH = {"Authorization": f"Bearer {SECRET}"}


def message(message_id: str, content: str = "hello") -> str:
    frame = {
        "type": "message",
        "id": message_id,
        "channel": "222",
        "author": {"id": "111", "username": "friend"},
        "content": content,
    }
    return json.dumps(frame)


def llm(fake_openai: FakeOpenAI) -> dict[str, Any]:
    return {"OPENAI_BASE_URL": fake_openai.base_url, "OPENAI_API_KEY": FakeOpenAI.API_KEY}


async def open_session(http: aiohttp.ClientSession, base: str) -> str:
    async with http.post(f"{base}/plugin/open", headers=AUTH) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["session"])


async def post(http: aiohttp.ClientSession, base: str, session: str, *frames: str) -> int:
    url = f"{base}/plugin/frames?session={session}"
    async with http.post(url, data="\n".join(frames), headers=AUTH) as response:
        return response.status


async def poll(
    http: aiohttp.ClientSession, base: str, session: str, after: int, wait: float = 5.0
) -> dict[str, Any]:
    url = f"{base}/plugin/poll?session={session}&after={after}&wait={wait}"
    async with http.get(url, headers=AUTH) as response:
        assert response.status == 200, await response.text()
        answer: dict[str, Any] = json.loads(await response.text())
        return answer


async def poll_until(
    http: aiohttp.ClientSession, base: str, session: str, kind: str
) -> list[dict[str, Any]]:
    """Poll (confirming nothing) until a frame of type `kind` came; every entry so far."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        entries: list[dict[str, Any]] = (await poll(http, base, session, 0, wait=1))["frames"]
        if any(entry["frame"]["type"] == kind for entry in entries):
            return entries
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {kind} frame")


async def test_a_message_over_http_is_acked_and_answered_through_the_plugin(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_app(tmp_path, RULES, MESSENGER="plugin", **llm(fake_openai)) as running:
        plugin = await PluginClient.connect(running.url, transport="http")
        assert plugin.welcome["type"] == "welcome"
        await plugin.message("7", "111", "222", "are you there?")
        [sent] = await plugin.wait_for_sends(1)
        assert sent["content"] == "[auto-reply] echo: are you there? [turns=1]"
        assert plugin.typing == ["222"] or "222" in plugin.typing
        await plugin.close()


async def test_a_poll_that_broke_on_the_way_gets_the_same_frames_again(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """Frames stay until a poll confirms them: the `send` frame is never lost to a broken poll.

    Nothing answers the `send`: a short SEND_TIMEOUT_SECONDS ends its wait, so the shutdown does
    not wait its grace out."""
    async with (
        running_app(
            tmp_path, RULES, MESSENGER="plugin", SEND_TIMEOUT_SECONDS=1.0, **llm(fake_openai)
        ) as running,
        aiohttp.ClientSession() as http,
    ):
        base = http_base(running.url)
        session = await open_session(http, base)
        assert await post(http, base, session, HELLO, message("7")) == 200
        first = await poll_until(http, base, session, "send")
        kinds = [entry["frame"]["type"] for entry in first]
        assert kinds[0] == "welcome" and "ack" in kinds and "send" in kinds
        again = (await poll(http, base, session, after=0))["frames"]
        assert again[: len(first)] == first  # nothing confirmed: everything again, same numbers
        last = first[-1]["seq"]
        later = (await poll(http, base, session, after=last, wait=0.2))["frames"]
        assert all(entry["seq"] > last for entry in later)


async def test_a_held_poll_answers_as_soon_as_a_frame_is_sent_even_after_a_long_idle(
    tmp_path: Path,
) -> None:
    """A poll held longer than Net.fetch's default 3 s timeout still delivers, and at once."""
    async with (
        running_app(tmp_path, RULES) as running,
        aiohttp.ClientSession() as http,
    ):
        base = http_base(running.url)
        session = await open_session(http, base)
        await post(http, base, session, HELLO)
        after = 0
        while entries := (await poll(http, base, session, after, wait=0.5))["frames"]:
            after = entries[-1]["seq"]  # the welcome and the greeting, confirmed
        held = asyncio.create_task(poll(http, base, session, after, wait=20))
        await asyncio.sleep(3.5)
        assert not held.done()
        sent_at = time.monotonic()
        running.app.gateway.broadcast({"type": "watch", "watch": []})
        answer = await asyncio.wait_for(held, 5)
        assert time.monotonic() - sent_at < 0.5
        assert [entry["frame"]["type"] for entry in answer["frames"]] == ["watch"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {SECRET}x"},
        {"Authorization": SECRET},
        {},
    ],
)
async def test_without_the_secret_every_route_is_refused_and_nothing_is_stored(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with (
        running_app(tmp_path, RULES, MESSENGER="plugin", **llm(fake_openai)) as running,
        aiohttp.ClientSession() as http,
    ):
        base = http_base(running.url)
        session = await open_session(http, base)  # a real session, so only the secret is wrong
        async with http.post(f"{base}/plugin/open", headers=headers) as response:
            assert response.status == 401
        routes = [
            ("POST", f"{base}/plugin/frames?session={session}"),
            ("GET", f"{base}/plugin/poll?session={session}&after=0&wait=0"),
            ("POST", f"{base}/plugin/close?session={session}"),
        ]
        for method, url in routes:
            body = "\n".join([HELLO, message("7")])
            async with http.request(method, url, headers=headers, data=body) as response:
                assert response.status == 401, url
        await asyncio.sleep(0.2)
        assert fake_openai.requests == []
        assert running.app.gateway._status()["plugins"] == 0
    assert "bad secret" in caplog.text
    assert SECRET not in caplog.text and "wrong" not in caplog.text


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://discord.com"},  # allowed for the WebSocket, never sent by Net.fetch
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Host": "evil.example:8765"},  # a page that rebound its name to 127.0.0.1
    ],
)
async def test_requests_a_web_page_could_send_are_refused_with_403(
    tmp_path: Path, fake_openai: FakeOpenAI, headers: dict[str, str]
) -> None:
    async with (
        running_app(tmp_path, RULES, MESSENGER="plugin", **llm(fake_openai)) as running,
        aiohttp.ClientSession() as http,
    ):
        base = http_base(running.url)
        session = await open_session(http, base)
        async with http.post(f"{base}/plugin/open", headers={**AUTH, **headers}) as response:
            assert response.status == 403
        url = f"{base}/plugin/frames?session={session}"
        body = "\n".join([HELLO, message("7")])
        async with http.post(url, data=body, headers={**AUTH, **headers}) as response:
            assert response.status == 403
        await asyncio.sleep(0.2)
        assert fake_openai.requests == []
        assert running.app.gateway._status()["plugins"] == 0


async def test_a_wrong_secret_in_the_hello_closes_the_session_with_4001(tmp_path: Path) -> None:
    async with running_app(tmp_path, RULES) as running:
        connection = await HttpConnection.open(running.url, SECRET)
        await connection.send(json.dumps({"type": "hello", "secret": "nope"}))
        with pytest.raises(HttpClosed) as closed:
            await asyncio.wait_for(connection.recv(), 5)
        assert closed.value.code == 4001
        await connection.close()


async def test_no_hello_in_time_closes_the_session_with_4002(tmp_path: Path) -> None:
    async with running_app(tmp_path, RULES, HELLO_TIMEOUT_SECONDS=0.1) as running:
        connection = await HttpConnection.open(running.url, SECRET)
        with pytest.raises(HttpClosed) as closed:
            await asyncio.wait_for(connection.recv(), 5)
        assert closed.value.code == 4002
        await connection.close()


async def test_a_frame_over_the_limit_is_refused_and_ends_the_session_with_1009(
    tmp_path: Path,
) -> None:
    async with (
        running_app(tmp_path, RULES) as running,
        aiohttp.ClientSession() as http,
    ):
        base = http_base(running.url)
        session = await open_session(http, base)
        await post(http, base, session, HELLO)
        huge = message("8", "x" * local_server.MAX_FRAME_BYTES)
        assert await post(http, base, session, huge) == 413
        answer = await poll(http, base, session, 0)
        assert answer["closed"]["code"] == 1009


async def test_a_session_nobody_polls_ends_and_sessions_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_server, "SESSION_IDLE_SECONDS", 0.3)
    monkeypatch.setattr(local_server, "SWEEP_INTERVAL_SECONDS", 0.05)
    async with running_app(tmp_path, RULES) as running, aiohttp.ClientSession() as http:
        base = http_base(running.url)
        gone = await open_session(http, base)
        await post(http, base, gone, HELLO)
        for plugins in (1, 0):  # connected, until its session is swept for want of polls
            for _ in range(100):
                if running.app.gateway._status()["plugins"] == plugins:
                    break
                await asyncio.sleep(0.02)
            assert running.app.gateway._status()["plugins"] == plugins
        async with http.get(f"{base}/plugin/poll?session={gone}&after=0", headers=AUTH) as response:
            assert response.status == 404

        polled = [await open_session(http, base) for _ in range(local_server.MAX_HTTP_SESSIONS)]
        held = [asyncio.create_task(poll(http, base, s, 0, wait=2)) for s in polled[1:]]
        await asyncio.sleep(0.1)
        await open_session(http, base)  # one too many: the stalest (never polled) goes
        assert len(running.app._server.sessions) == local_server.MAX_HTTP_SESSIONS  # type: ignore[union-attr]
        async with http.get(
            f"{base}/plugin/poll?session={polled[0]}&after=0", headers=AUTH
        ) as response:
            assert response.status == 404
        for task in held:
            task.cancel()


async def test_a_new_session_replacing_an_old_one_ends_it_at_once(tmp_path: Path) -> None:
    """A plugin whose link broke names its old session: what waited on it does not wait 15 s."""
    async with running_app(tmp_path, RULES) as running, aiohttp.ClientSession() as http:
        base = http_base(running.url)
        old = await open_session(http, base)
        await post(http, base, old, HELLO)
        async with http.post(f"{base}/plugin/open?replaces={old}", headers=AUTH) as response:
            assert response.status == 200
        answer = await poll(http, base, old, 0, wait=1)
        assert answer["closed"] == {
            "code": 1000,
            "reason": "replaced by a new session of the client",
        }
        for _ in range(100):
            if running.app.gateway._status()["plugins"] == 0:
                break
            await asyncio.sleep(0.02)
        assert running.app.gateway._status()["plugins"] == 0


async def test_a_posted_line_that_is_not_utf8_gets_an_error_and_the_others_are_read(
    tmp_path: Path,
) -> None:
    async with running_app(tmp_path, RULES) as running, aiohttp.ClientSession() as http:
        base = http_base(running.url)
        session = await open_session(http, base)
        body = b"\n".join([HELLO.encode(), b'{"type": "status"}\xff', message("9").encode()])
        async with http.post(
            f"{base}/plugin/frames?session={session}", data=body, headers=AUTH
        ) as response:
            assert response.status == 200
        entries = await poll_until(http, base, session, "ack")
        kinds = [entry["frame"]["type"] for entry in entries]
        assert kinds[0] == "welcome" and "error" in kinds and "ack" in kinds, kinds
