"""The fake gateway and bot REST routes answer like Discord, for what discord.py does not cover."""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio

from tests.bot_harness import DM_CHANNEL, FRIEND, fake_discord_bot
from tests.fakes.discord_bot_api import FakeDiscordBot
from tests.fakes.discord_gateway import FakeGateway


@pytest_asyncio.fixture
async def fakes() -> AsyncIterator[tuple[FakeDiscordBot, FakeGateway, aiohttp.ClientSession]]:
    async with fake_discord_bot() as (api, gateway), aiohttp.ClientSession() as http:
        yield api, gateway, http


class GatewayClient:
    """A bare gateway client reading zlib-stream frames, as discord.py asks for them."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.inflate = zlib.decompressobj()

    async def receive(self) -> dict[str, Any]:
        frame = await self.socket.receive(timeout=5)
        assert frame.type is aiohttp.WSMsgType.BINARY, frame
        assert frame.data.endswith(b"\x00\x00\xff\xff")
        payload: dict[str, Any] = json.loads(self.inflate.decompress(frame.data))
        return payload

    async def send(self, op: int, data: object) -> None:
        await self.socket.send_str(json.dumps({"op": op, "d": data}))


async def connect(
    gateway: FakeGateway, http: aiohttp.ClientSession
) -> tuple[GatewayClient, dict[str, Any]]:
    socket = await http.ws_connect(f"{gateway.url}/?v=10&encoding=json&compress=zlib-stream")
    client = GatewayClient(socket)
    return client, await client.receive()


async def test_hello_heartbeat_and_a_refused_identify(
    fakes: tuple[FakeDiscordBot, FakeGateway, aiohttp.ClientSession],
) -> None:
    _api, gateway, http = fakes
    client, hello = await connect(gateway, http)
    assert hello == {"op": 10, "d": {"heartbeat_interval": 500}, "s": None, "t": None}
    await client.send(1, None)
    assert (await client.receive())["op"] == 11
    await client.send(2, {"token": "wrong", "intents": 0, "properties": {}})
    closed = await client.socket.receive(timeout=5)
    assert closed.type is aiohttp.WSMsgType.CLOSE
    assert closed.data == 4004
    assert gateway.heartbeats == 1


async def test_ready_then_message_content_only_where_the_intents_allow(
    fakes: tuple[FakeDiscordBot, FakeGateway, aiohttp.ClientSession],
) -> None:
    api, gateway, http = fakes
    client, _hello = await connect(gateway, http)
    guild_messages = 1 << 9  # no MESSAGE_CONTENT, no DIRECT_MESSAGES
    await client.send(2, {"token": api.BOT_TOKEN, "intents": guild_messages, "properties": {}})
    ready = await client.receive()
    assert (ready["op"], ready["t"], ready["s"]) == (0, "READY", 1)
    assert ready["d"]["user"]["id"] == api.BOT_ID
    api.post_as_user(FRIEND, DM_CHANNEL, "a DM: no DIRECT_MESSAGES intent, not sent")
    [channel] = api.guilds[next(iter(api.guilds))]
    api.post_as_user(FRIEND, channel, "unreadable without MESSAGE_CONTENT")
    api.post_as_user(FRIEND, channel, f"<@{api.BOT_ID}> readable", mentions_bot=True)
    first, second = await client.receive(), await client.receive()
    assert (first["t"], first["s"], first["d"]["content"]) == ("MESSAGE_CREATE", 2, "")
    assert first["d"]["guild_id"] == next(iter(api.guilds))
    assert (second["s"], second["d"]["content"]) == (3, f"<@{api.BOT_ID}> readable")

    await client.send(6, {"token": api.BOT_TOKEN, "session_id": "not-it", "seq": 3})
    assert (await client.receive())["op"] == 9  # INVALID_SESSION


async def test_interaction_callbacks_are_once_only_and_commands_are_validated(
    fakes: tuple[FakeDiscordBot, FakeGateway, aiohttp.ClientSession],
) -> None:
    api, _gateway, http = fakes
    interaction = api.new_interaction("reset", FRIEND, DM_CHANNEL)
    url = f"{api.base_url}/interactions/{interaction.id}/{interaction.token}/callback"
    async with http.post(url, json={"type": 5}) as first:
        assert first.status == 204
    async with http.post(url, json={"type": 5}) as again:
        assert again.status == 400
        assert (await again.json())["code"] == 40060
    async with http.post(url.replace(interaction.id, "1"), json={"type": 5}) as unknown:
        assert unknown.status == 404
        assert (await unknown.json())["code"] == 10062

    commands = f"{api.base_url}/applications/{api.APPLICATION_ID}/commands"
    bot = {"Authorization": f"Bot {api.BOT_TOKEN}"}
    async with http.put(commands, json=[{"name": "x"}]) as anonymous:
        assert anonymous.status == 401
    bad = [{"name": "Has Spaces", "description": "d"}]
    async with http.put(commands, json=bad, headers=bot) as refused:
        assert refused.status == 400
        assert (await refused.json())["code"] == 50035
    async with http.get(f"{api.base_url}/gateway/bot", headers=bot) as found:
        assert (await found.json())["url"] == api.gateway_url
