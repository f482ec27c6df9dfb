"""The whole path over real sockets: plugin frame in, LLM request, Discord request out."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest
from g4f.Provider import ProviderLoader
from g4f.providers.base_provider import AsyncGeneratorProvider, ProviderModelMixin

from server.config import Settings
from server.conversation.relay import Relay
from server.conversation.rules import parse_rules
from server.delivery.echoes import EchoTracker
from server.llm.chain import BackendChain
from server.llm.openai_backend import OpenAIBackend
from server.messengers.rest import RestMessenger
from server.storage.conversations import ConversationStore
from server.storage.owner_store import OwnerStore
from server.transport.protocol import Author, IncomingMessage
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI, reply
from tests.relay_harness import PluginClient, running_app

RULES = (
    'CONTEXT_MESSAGE = "You are Sam\'s stand-in."\n'
    'REPLY_TO = [("111", "222"), ("112", "223"), ("*", "333"),\n'
    '            ("113", "224", {"persona": "Talk like a pirate.", "max_tokens": 42,'
    ' "model": "pirate-1", "memory_length": 0})]\n'
)


def rest_settings(fake_discord: FakeDiscord, fake_openai: FakeOpenAI, **extra: Any) -> Any:
    return {
        "MESSENGER": "rest",
        "DISCORD_AUTHORIZATION": FakeDiscord.TOKEN,
        "DISCORD_API_BASE": fake_discord.base_url,
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": FakeOpenAI.API_KEY,
        **extra,
    }


def user_texts(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


async def test_whole_path_frame_in_discord_post_out(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    async with running_app(tmp_path, RULES, **rest_settings(fake_discord, fake_openai)) as running:
        client = await PluginClient.connect(running.url)
        assert client.welcome["messenger"] == "rest"
        await client.message("1001", "111", "222", "are you around tonight?")
        [posted] = await fake_discord.wait_for_messages(1)

        [request] = fake_openai.requests
        persona, context = request["messages"][0]["content"].split("\n\n")
        assert persona == "You are Sam's stand-in."
        # One context line: who writes (the display name, else the username), the owner's time.
        assert re.fullmatch(
            r"You are answering user111 for the owner\. It is \w+day \d{4}-\d\d-\d\d, "
            r"\d\d:\d\d where the owner is\.",
            context,
        ), context
        assert request["messages"][-1] == {"role": "user", "content": "are you around tonight?"}
        assert request["max_tokens"] == 500
        assert posted["channel_id"] == "222"
        assert posted["content"] == "[auto-reply] echo: are you around tonight? [turns=1]"
        assert posted["allowed_mentions"] == {"parse": [], "replied_user": False}
        assert posted["enforce_nonce"] is True
        assert 0 < len(posted["nonce"]) <= 25
        assert posted.get("message_reference") is None  # DMs get plain messages
        assert "222" in fake_discord.typing
        await client.close()


async def test_typing_shows_only_once_a_reply_has_been_in_the_works_for_the_delay(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    settings = rest_settings(fake_discord, fake_openai, TYPING_DELAY_SECONDS=1.0)
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("1001", "111", "222", "quick one")
        await fake_discord.wait_for_messages(1)
        await running.app.relay.drain()  # the pair's worker is done, its typing task cancelled
        assert fake_discord.typing == []  # ready well within the delay: no typing request

        fake_openai.delay = 1.5
        await client.message("1002", "112", "223", "slow one")
        await fake_discord.wait_for_messages(2)
        assert set(fake_discord.typing) == {"223"}  # renewed every TYPING_INTERVAL_SECONDS
        paths = [request.path for request in fake_discord.requests]
        assert paths.index("/api/v9/channels/223/typing") < paths.index(
            "/api/v9/channels/223/messages"
        )
        await client.close()


async def test_guild_messages_are_answered_as_replies_and_rule_settings_apply(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    async with running_app(tmp_path, RULES, **rest_settings(fake_discord, fake_openai)) as running:
        client = await PluginClient.connect(running.url)
        await client.message("2001", "113", "224", "ahoy", guild="900")
        await client.message("2002", "113", "224", "again", guild="900")
        first, second = await fake_discord.wait_for_messages(2)
        assert first["message_reference"]["message_id"] == "2001"
        assert second["message_reference"]["message_id"] == "2002"
        request = fake_openai.requests[1]
        assert request["model"] == "pirate-1"
        assert request["max_tokens"] == 42
        assert request["messages"][0]["content"].startswith("Talk like a pirate.\n\nYou are")
        assert user_texts(request) == ["again"]  # memory_length 0 for this rule
        await client.close()


async def test_ignored_messages_are_acked_but_never_answered(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG, logger="server.conversation.relay")
    # No takeover here: the owner's message below must not pause the channel.
    settings = rest_settings(fake_discord, fake_openai, TAKEOVER_MINUTES=0.0)
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)  # each message() awaits its ack
        await client.message("3001", "999", "222", "not allow-listed")
        await client.message("3002", "111", "222", "a bot", bot=True)
        await client.message("3003", "111", "222", "   ")  # nothing at all to answer
        await client.message("3004", "9", "222", "the owner", is_self=True)
        await client.message("3005", "111", "222", "real one")
        await client.message("3005", "111", "222", "real one")  # the plugin re-sent its buffer
        [posted] = await fake_discord.wait_for_messages(1)
        await running.app.relay.drain()

        # Each message met its own fate, for its own reason.
        relay_lines = [
            r.getMessage() for r in caplog.records if r.name == "server.conversation.relay"
        ]
        for line in [
            "message 3001 ignored: pair is not allow-listed",
            "message 3002 ignored: author is a bot",
            "message 3003 ignored: nothing to answer (no text, attachment, sticker or forward)",
            "message 3005 already accepted; ignoring the re-send",
        ]:
            assert relay_lines.count(line) == 1, (line, relay_lines)
        # Only the owner's words and the real message are remembered; the real one is answered
        # once, with the owner's words as the owner's turn before it.
        store = running.app.store
        assert await store.conversation(("999", "222")) == []
        turns = await store.conversation(("111", "222"))
        assert [(t.kind, t.content) for t in turns] == [
            ("owner", "the owner"),
            ("message", "real one"),
            ("reply", "echo: real one [turns=2]"),
        ]
        [request] = fake_openai.requests
        assert [(m["role"], m["content"]) for m in request["messages"][1:]] == [
            ("assistant", "the owner"),
            ("user", "real one"),
        ]
        assert posted["content"] == "[auto-reply] echo: real one [turns=2]"
        assert len(fake_discord.messages) == 1
        await client.close()


async def test_memory_is_per_pair_and_rolls(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    settings = rest_settings(fake_discord, fake_openai, MEMORY_LENGTH=2)
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        for index, text in enumerate(["my name is Ann", "I like tea", "and cake", "who am I?"]):
            await client.message(f"40{index}", "111", "222", text)
            await fake_discord.wait_for_messages(index + 1)
        await client.message("4100", "112", "223", "hello from Bob")
        await fake_discord.wait_for_messages(5)
        await running.app.relay.drain()

        ann = next(r for r in fake_openai.requests if "who am I?" in user_texts(r))
        # Two remembered interactions (user + reply each), then the new message.
        assert [m["role"] for m in ann["messages"]] == [
            "system",
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
        ]
        assert user_texts(ann) == ["I like tea", "and cake", "who am I?"]
        assert ann["messages"][2]["content"] == "echo: I like tea [turns=3]"  # no prefix kept
        bob = next(r for r in fake_openai.requests if "hello from Bob" in user_texts(r))
        assert user_texts(bob) == ["hello from Bob"]
        assert not any("Ann" in m["content"] for m in bob["messages"])
        await client.close()


async def test_two_pairs_are_answered_concurrently(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    fake_openai.delay = 1.0
    async with running_app(tmp_path, RULES, **rest_settings(fake_discord, fake_openai)) as running:
        client = await PluginClient.connect(running.url)
        started = time.monotonic()
        await client.message("5001", "111", "222", "first pair")
        await client.message("5002", "112", "223", "second pair")
        await fake_discord.wait_for_messages(2, timeout=5)
        elapsed = time.monotonic() - started
        assert 1.0 <= elapsed < 1.7, elapsed
        await client.close()


async def test_messages_during_generation_are_answered_next_in_one_reply(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    fake_openai.delay = 0.3
    async with running_app(tmp_path, RULES, **rest_settings(fake_discord, fake_openai)) as running:
        client = await PluginClient.connect(running.url)
        for index in range(4):
            await client.message(f"600{index}", "111", "222", f"message {index}")
        first, second = await fake_discord.wait_for_messages(2)
        await running.app.relay.drain()
        assert first["content"] == "[auto-reply] echo: message 0 [turns=1]"
        assert second["content"] == "[auto-reply] echo: message 3 [turns=5]"
        assert len(fake_discord.messages) == 2
        # The second request saw the first reply, then each later message as its own turn.
        assert [(m["role"], m["content"]) for m in fake_openai.requests[1]["messages"][1:]] == [
            ("user", "message 0"),
            ("assistant", "echo: message 0 [turns=1]"),
            ("user", "message 1"),
            ("user", "message 2"),
            ("user", "message 3"),
        ]
        await client.close()


async def test_long_replies_are_split_under_discords_limit(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    paragraph = "word " * 300  # 1500 characters
    fake_openai.reply_fn = lambda messages: "\n\n".join([paragraph.strip()] * 3)
    settings = rest_settings(fake_discord, fake_openai, MAX_TOKENS=2000)
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("7001", "111", "222", "tell me a long story")
        posted = await fake_discord.wait_for_messages(3)
        assert all(len(p["content"]) <= 2000 for p in posted)
        assert all(p["content"].startswith("[auto-reply] ") for p in posted)
        assert len({p["nonce"] for p in posted}) == 3
        await running.app.relay.drain()
        assert len(fake_discord.messages) == 3
        await client.close()


async def test_a_split_reply_whose_second_part_fails_is_remembered_only_as_delivered(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="server.delivery.outbox")
    story = "\n\n".join(f"part{n} " + "word " * 300 for n in (1, 2, 3)).replace(" \n", "\n")

    def answer(messages: list[dict[str, Any]]) -> str:
        return story if messages[-1]["content"] == "tell me a long story" else reply(messages)

    def refuse_the_next_post(created: dict[str, Any]) -> None:
        if len(fake_discord.messages) == 1:  # part 1 is posted: part 2 gets a 403
            fake_discord.fail_next(403)

    fake_openai.reply_fn = answer
    fake_discord.message_listeners.append(refuse_the_next_post)
    settings = rest_settings(fake_discord, fake_openai, MAX_TOKENS=2000)
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("7101", "111", "222", "tell me a long story")
        [first] = await fake_discord.wait_for_messages(1)
        await running.app.relay.drain()
        statuses = [r.status for r in fake_discord.requests if r.path.endswith("/messages")]
        assert statuses == [200, 403]  # part 3 is not tried after part 2 failed
        assert first["content"].startswith("[auto-reply] part1 ")
        delivered = first["content"].removeprefix("[auto-reply] ")
        assert "reply to message 7101 not delivered (part 2 of 3): " in caplog.text
        assert "(1 of 3 parts, openai)" in caplog.text

        [_, stored] = await running.app.store.conversation(("111", "222"))
        assert (stored.kind, stored.content, stored.delivered) == ("reply", delivered, False)
        # The next request remembers what the person saw, not what was written.
        await client.message("7102", "111", "222", "and then?")
        await fake_discord.wait_for_messages(2)
        await running.app.relay.drain()
        history = [(m["role"], m["content"]) for m in fake_openai.requests[1]["messages"][1:]]
        assert history == [
            ("user", "tell me a long story"),
            ("assistant", delivered),
            ("user", "and then?"),
        ]
        await client.close()


async def test_a_429_is_waited_out_with_nothing_lost_or_duplicated(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    fake_discord.fail_next(429, 1, retry_after=0.2)
    async with running_app(tmp_path, RULES, **rest_settings(fake_discord, fake_openai)) as running:
        client = await PluginClient.connect(running.url)
        await client.message("8001", "111", "222", "one")
        await client.message("8002", "111", "222", "two")
        posted = await fake_discord.wait_for_messages(2)
        await running.app.relay.drain()
        statuses = [r.status for r in fake_discord.requests if r.path.endswith("/messages")]
        assert statuses == [429, 200, 200]
        assert [p["content"] for p in posted] == [
            "[auto-reply] echo: one [turns=1]",
            "[auto-reply] echo: two [turns=3]",
        ]
        await client.close()


async def test_llm_outage_sends_the_fallback_message_and_the_server_keeps_going(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail_next(500, 1)
    settings = rest_settings(fake_discord, fake_openai, FALLBACK_MESSAGE="Away, back soon.")
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("9001", "111", "222", "hello?")
        await client.message("9002", "111", "222", "still there?")
        first, second = await fake_discord.wait_for_messages(2)
        assert first["content"] == "[auto-reply] Away, back soon."
        assert second["content"].startswith("[auto-reply] echo: still there?")
        await client.close()


async def test_llm_outage_without_fallback_sends_nothing(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail_next(503, 1)
    async with running_app(tmp_path, RULES, **rest_settings(fake_discord, fake_openai)) as running:
        client = await PluginClient.connect(running.url)
        await client.message("9101", "111", "222", "hello?")
        await running.app.relay.drain()
        assert fake_discord.messages == []
        await client.close()


async def test_backends_are_tried_in_order(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    broken = FakeOpenAI()
    await broken.start()
    broken.fail_next(500, 10)
    settings = Settings(
        REPLY_PREFIX="", TYPING_INTERVAL_SECONDS=0.05, COALESCE_SECONDS=0.0, REPLY_WHEN="always"
    )
    store = ConversationStore(tmp_path / "db")
    await store.open()
    chain = BackendChain(
        [
            OpenAIBackend(
                api_key=FakeOpenAI.API_KEY, base_url=broken.base_url, model="a", max_retries=0
            ),
            OpenAIBackend(
                api_key=FakeOpenAI.API_KEY, base_url=fake_openai.base_url, model="b", max_retries=0
            ),
        ]
    )
    messenger = RestMessenger(FakeDiscord.TOKEN, fake_discord.base_url)
    relay = Relay(
        settings=settings,
        rules=lambda: parse_rules({"REPLY_TO": [("1", "2")]}, "rules"),
        llm=chain,
        messenger=messenger,
        store=store,
    )
    try:
        await relay.accept(message("1", "1", "2", "anyone?"))
        await relay.drain()
        assert [p["content"] for p in fake_discord.messages] == ["echo: anyone? [turns=1]"]
        assert len(broken.requests) == 1 and fake_openai.requests[0]["model"] == "b"
        [turns] = [await store.conversation(("1", "2"))]
        assert [(t.kind, t.backend) for t in turns] == [("message", None), ("reply", "openai")]
    finally:
        await store.close()
        await chain.aclose()
        await messenger.aclose()
        await broken.stop()


class StandInProvider(AsyncGeneratorProvider, ProviderModelMixin):
    """A g4f provider that answers from the request, without the network."""

    working = True
    default_model = "stand-in"
    models: ClassVar[list[str]] = ["stand-in"]

    @classmethod
    async def create_async_generator(
        cls, model: str, messages: list[dict[str, str]], **kwargs: Any
    ) -> AsyncIterator[str]:
        yield f"g4f here: {messages[-1]['content']}"


@pytest.mark.parametrize("fault", ["server error", "connection refused", "trickling stream"])
async def test_the_default_chain_falls_through_to_g4f(
    tmp_path: Path,
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    *,
    monkeypatch: pytest.MonkeyPatch,
    caplog: Any,
    fault: str,
) -> None:
    # Known to g4f by name, as G4F_PROVIDER names it, without loading a real provider.
    monkeypatch.setitem(ProviderLoader.loaded, "StandInProvider", StandInProvider)
    default = Settings().LLM_BACKENDS
    assert default == ["openai", "g4f"]
    settings = rest_settings(
        fake_discord,
        fake_openai,
        LLM_BACKENDS=default,
        G4F_PROVIDER="StandInProvider",
        LLM_TIMEOUT_SECONDS=1.0,
    )
    if fault == "server error":
        fake_openai.fail_next(500)
        expected = "HTTP 500 server_error"
    elif fault == "connection refused":
        settings["OPENAI_BASE_URL"] = f"http://127.0.0.1:{closed_port()}/v1"
        expected = "connection failed"
    else:
        fake_openai.reply_fn = lambda messages: "slowly " * 400
        fake_openai.chunk_delay = 0.1  # a token every 0.1 s, for 40 s
        expected = "timed out after 1.0 s"
    async with running_app(tmp_path, RULES, **settings) as running:
        assert running.app.llm.names == ["openai", "g4f"]
        client = await PluginClient.connect(running.url)
        await client.message("13001", "111", "222", "anyone there?")
        [posted] = await fake_discord.wait_for_messages(1, timeout=10)
        await running.app.relay.drain()
        assert posted["content"] == "[auto-reply] g4f here: anyone there?"
        assert "LLM backend openai failed: openai (127.0.0.1:" in caplog.text
        assert expected in caplog.text
        turns = await running.app.store.conversation(("111", "222"))
        assert [(t.kind, t.backend) for t in turns] == [("message", None), ("reply", "g4f")]
        assert len(fake_openai.requests) == (0 if fault == "connection refused" else 1)
        await client.close()


class HeldProvider(StandInProvider):
    """Blocks its thread on "hold on" until `release`, as a g4f provider's `requests.get` does."""

    holding = threading.Event()
    release = threading.Event()

    @classmethod
    async def create_async_generator(
        cls, model: str, messages: list[dict[str, str]], **kwargs: Any
    ) -> AsyncIterator[str]:
        if messages[-1]["content"] == "hold on":
            cls.holding.set()
            cls.release.wait(10)
        yield f"g4f here: {messages[-1]['content']}"


async def test_a_g4f_provider_that_blocks_does_not_stall_the_relay(
    tmp_path: Path,
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(ProviderLoader.loaded, "HeldProvider", HeldProvider)
    HeldProvider.holding.clear()
    HeldProvider.release.clear()
    settings = rest_settings(
        fake_discord, fake_openai, LLM_BACKENDS=["g4f"], G4F_PROVIDER="HeldProvider"
    )
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        try:
            await client.message("14001", "111", "222", "hold on")
            assert await asyncio.to_thread(HeldProvider.holding.wait, 5)
            # While that request blocks its thread: pings, acks and other pairs' replies go on.
            await asyncio.wait_for(await client.connection.ping(), 5)
            await client.message("14002", "112", "223", "quick one")
            [posted] = await fake_discord.wait_for_messages(1)
            assert posted["content"] == "[auto-reply] g4f here: quick one"
            assert not HeldProvider.release.is_set()
        finally:
            HeldProvider.release.set()
        _, posted = await fake_discord.wait_for_messages(2, timeout=10)
        assert posted["content"] == "[auto-reply] g4f here: hold on"
        await client.close()


async def test_own_echoes_are_not_remembered_but_manual_replies_are(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    async with relay_over_rest(
        tmp_path, fake_discord, fake_openai, EchoTracker(), [("1", "2")]
    ) as (relay, store):
        await relay.accept(message("10", "1", "2", "ping"))
        await relay.drain()
        [posted] = fake_discord.messages
        # Discord echoes our reply back as the owner's message, with our nonce.
        await relay.accept(
            message("11", "9", "2", posted["content"], is_self=True, nonce=posted["nonce"])
        )
        await relay.accept(message("12", "9", "2", "typed by hand", is_self=True))
        await relay.drain()
        turns = await store.recent(("1", "2"), 10)
        assert [(t.role, t.content) for t in turns] == [
            ("user", "ping"),
            ("assistant", "echo: ping [turns=1]"),
            ("assistant", "typed by hand"),
        ]


@asynccontextmanager
async def relay_over_rest(
    tmp_path: Path,
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    echoes: EchoTracker,
    rules: list[tuple[str, str]],
) -> AsyncIterator[tuple[Relay, ConversationStore]]:
    """A Relay on the REST messenger with `echoes`, the default takeover, and its store."""
    settings = Settings(TYPING_INTERVAL_SECONDS=0.05, COALESCE_SECONDS=0.0, REPLY_WHEN="always")
    backend = OpenAIBackend(api_key=FakeOpenAI.API_KEY, base_url=fake_openai.base_url, model="m")
    messenger = RestMessenger(FakeDiscord.TOKEN, fake_discord.base_url)
    store = ConversationStore(tmp_path / "db")
    await store.open()
    relay = Relay(
        settings=settings,
        rules=lambda: parse_rules({"REPLY_TO": rules}, "rules"),
        llm=BackendChain([backend]),
        messenger=messenger,
        store=store,
        echoes=echoes,
    )
    try:
        yield relay, store
    finally:
        await relay.aclose()
        await store.close()
        await backend.aclose()
        await messenger.aclose()


@pytest.mark.parametrize("nonce", [None, "1300000000000000000"], ids=["no nonce", "client's nonce"])
async def test_an_echo_without_our_nonce_is_recognised_by_channel_and_text(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI, nonce: str | None
) -> None:
    # The macro's path: Discord's client posts what was typed with a nonce of its own, or none.
    async with relay_over_rest(
        tmp_path, fake_discord, fake_openai, EchoTracker(), [("1", "2")]
    ) as (relay, store):
        await relay.accept(message("10", "1", "2", "ping"))
        await relay.drain()
        [posted] = fake_discord.messages
        await relay.accept(message("11", "9", "2", posted["content"], is_self=True, nonce=nonce))
        await relay.accept(message("12", "1", "2", "still there?"))
        await relay.drain()
        # Not taken for the owner's own words: no takeover, and nothing remembered twice.
        assert [p["content"] for p in fake_discord.messages] == [
            "[auto-reply] echo: ping [turns=1]",
            "[auto-reply] echo: still there? [turns=3]",
        ]
        turns = await store.conversation(("1", "2"))
        assert [t.kind for t in turns] == ["message", "reply", "message", "reply"]


async def test_each_part_sent_matches_one_echo_in_its_own_chat(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    async with relay_over_rest(
        tmp_path, fake_discord, fake_openai, EchoTracker(), [("1", "2"), ("1", "3")]
    ) as (relay, store):
        await relay.accept(message("20", "1", "2", "ping"))
        await relay.drain()
        [posted] = fake_discord.messages
        text = posted["content"]
        await relay.accept(message("21", "9", "3", text, is_self=True))  # the same, elsewhere
        await relay.accept(message("22", "9", "2", text, is_self=True))  # the echo
        await relay.accept(message("23", "9", "2", text, is_self=True))  # the owner, by hand
        await relay.drain()
        assert [(t.kind, t.content) for t in await store.conversation(("1", "3"))] == [
            ("owner", text)
        ]
        assert [(t.kind, t.content) for t in await store.conversation(("1", "2"))] == [
            ("message", "ping"),
            ("reply", "echo: ping [turns=1]"),
            ("owner", text),
        ]


@pytest.mark.parametrize(("age", "is_echo"), [(59.0, True), (61.0, False)])
async def test_an_echo_is_expected_only_for_the_trackers_ttl(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI, age: float, is_echo: bool
) -> None:
    now = [1000.0]
    echoes = EchoTracker(ttl=60.0, clock=lambda: now[0])
    async with relay_over_rest(tmp_path, fake_discord, fake_openai, echoes, [("1", "2")]) as (
        relay,
        store,
    ):
        await relay.accept(message("30", "1", "2", "ping"))
        await relay.drain()
        [posted] = fake_discord.messages
        now[0] += age
        await relay.accept(message("31", "9", "2", posted["content"], is_self=True))
        await relay.accept(message("32", "1", "2", "hello?"))
        await relay.drain()
        kinds = [t.kind for t in await store.conversation(("1", "2"))]
        if is_echo:
            assert kinds == ["message", "reply", "message", "reply"]
            assert len(fake_discord.messages) == 2
        else:  # too late to be ours: the owner wrote it, and the relay steps aside
            assert kinds == ["message", "reply", "owner", "message"]
            assert len(fake_discord.messages) == 1


async def test_messages_left_that_can_no_longer_be_answered_say_why_in_the_history(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    async with relay_over_rest(
        tmp_path, fake_discord, fake_openai, EchoTracker(), [("1", "2")]
    ) as (
        relay,
        store,
    ):
        old = await store.record_message(("1", "2"), "40", "1", "from long ago")
        await store.record_message(("5", "6"), "41", "5", "no longer watched")
        await store.database.run(
            lambda db: db.execute("UPDATE turns SET at = at - 3600 WHERE id = ?", (old,))
        )
        await relay.start()  # as after a restart: REPLY_WITHIN_MINUTES is 10
        await relay.drain()
        assert fake_discord.messages == [] and fake_openai.requests == []
        history = await OwnerStore(store).history(0)
        assert [(e.kind, e.user, e.text) for e in history[:2]] == [
            ("message", "1", "from long ago"),
            ("message", "5", "no longer watched"),
        ]
        assert {(e.kind, e.user, e.text) for e in history[2:]} == {
            ("skipped", "1", "too old after a restart"),
            ("skipped", "5", "no longer allow-listed"),
        }
        assert await store.pending_messages() == []


async def test_plugin_messenger_sends_through_the_connected_plugin(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    settings = {
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": FakeOpenAI.API_KEY,
        "MESSENGER": "plugin",
    }
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("11001", "111", "222", "via the client please", guild="77")
        [send] = await client.wait_for_sends(1)
        assert send["channel"] == "222"
        assert send["content"] == "[auto-reply] echo: via the client please [turns=1]"
        assert send["reply_to"] == "11001"
        assert "222" in client.typing
        await running.app.relay.drain()
        await client.close()


async def test_plugin_messenger_reports_a_failed_send(
    tmp_path: Path, fake_openai: FakeOpenAI, caplog: Any
) -> None:
    settings = {
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": FakeOpenAI.API_KEY,
        "SEND_TIMEOUT_SECONDS": 0.3,
    }
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        client.answer_sends = False
        await client.message("12001", "111", "222", "hello")
        await client.wait_for_sends(1)
        await running.app.relay.drain()
        assert "no answer from the plugin within 0.3 s" in caplog.text
        await client.close()


def closed_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def message(
    message_id: str,
    user: str,
    channel: str,
    content: str,
    *,
    is_self: bool = False,
    nonce: str | None = None,
) -> IncomingMessage:
    return IncomingMessage(
        type="message",
        id=message_id,
        channel=channel,
        author=Author(id=user),
        content=content,
        is_self=is_self,
        nonce=nonce,
    )
