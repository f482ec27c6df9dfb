"""Reasoning never reaches Discord: `strip_reasoning` alone, then through the backend chain
against the fake OpenAI server (streamed and not), and through the relay into memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.conversation.reasoning import strip_reasoning
from server.llm.base import ChatMessage, GenerationOptions, LLMError
from server.llm.chain import BackendChain
from server.llm.openai_backend import OpenAIBackend
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import NO_STREAMING, FakeOpenAI
from tests.relay_harness import PluginClient, running_app
from tests.test_relay import RULES, rest_settings

CHAT = [ChatMessage("system", "Reply briefly."), ChatMessage("user", "lunch?")]
OPTIONS = GenerationOptions(max_tokens=200)


@pytest.mark.parametrize(
    ("raw", "visible"),
    [
        ("<think>they want lunch\nsay yes</think>\n\nsure, noon?", "sure, noon?"),
        ("<thinking>hmm</thinking>sure", "sure"),
        ("<THINK>a</THINK>one <think>b</think>two", "one two"),
        ('<think type="x">a</think>ok', "ok"),
        ("the template opened it</think>ok then", "ok then"),
        ("<think>cut off at max_tokens, never closed", ""),
        ("fine <think>and then reasoning that never closes", "fine"),
        ("<think>only</think>  \n", ""),
        ("no reasoning here, I think", "no reasoning here, I think"),
        ("", ""),
    ],
)
def test_reasoning_blocks_are_cut(raw: str, visible: str) -> None:
    assert strip_reasoning(raw) == visible


@pytest.mark.parametrize("streamed", [True, False])
async def test_think_blocks_never_leave_the_chain(fake_openai: FakeOpenAI, streamed: bool) -> None:
    fake_openai.reply_fn = lambda messages: "<think>They ask about lunch. Say yes.</think> yes!"
    if not streamed:
        fake_openai.models["plain"] = NO_STREAMING
    backend = OpenAIBackend(
        api_key=FakeOpenAI.API_KEY, base_url=fake_openai.base_url, model="plain"
    )
    chain = BackendChain([backend])
    try:
        assert await chain.complete(CHAT, OPTIONS) == "yes!"
        assert fake_openai.requests[-1].get("stream", False) is streamed
    finally:
        await chain.aclose()


@pytest.mark.parametrize("streamed", [True, False])
async def test_reasoning_content_is_never_part_of_the_reply(
    fake_openai: FakeOpenAI, streamed: bool
) -> None:
    fake_openai.reasoning = "The user asks about lunch; agree briefly."
    fake_openai.reply_fn = lambda messages: "sure"
    if not streamed:
        fake_openai.models["plain"] = NO_STREAMING
    chain = BackendChain(
        [OpenAIBackend(api_key=FakeOpenAI.API_KEY, base_url=fake_openai.base_url, model="plain")]
    )
    try:
        assert await chain.complete(CHAT, OPTIONS) == "sure"
    finally:
        await chain.aclose()


@pytest.mark.parametrize("streamed", [True, False])
async def test_a_reply_of_only_reasoning_falls_through_to_the_next_backend(
    fake_openai: FakeOpenAI, streamed: bool
) -> None:
    thinker = FakeOpenAI()
    await thinker.start()
    thinker.reply_fn = lambda messages: "<think>I should answer but max_tokens ends here"
    if not streamed:
        thinker.models["a"] = NO_STREAMING
    chain = BackendChain(
        [
            OpenAIBackend(api_key=FakeOpenAI.API_KEY, base_url=thinker.base_url, model="a"),
            OpenAIBackend(api_key=FakeOpenAI.API_KEY, base_url=fake_openai.base_url, model="b"),
        ]
    )
    try:
        completion = await chain.answer(CHAT, OPTIONS)
        assert completion.text == "echo: lunch? [turns=1]"
        # Not retried: one request (two when the first taught that the model cannot stream).
        assert len(thinker.requests) == (1 if streamed else 2)
    finally:
        await chain.aclose()
        await thinker.stop()


async def test_only_reasoning_from_every_backend_is_an_error(fake_openai: FakeOpenAI) -> None:
    fake_openai.reply_fn = lambda messages: "<thinking>nothing to say</thinking>"
    chain = BackendChain(
        [OpenAIBackend(api_key=FakeOpenAI.API_KEY, base_url=fake_openai.base_url, model="a")]
    )
    try:
        with pytest.raises(LLMError, match="only with reasoning"):
            await chain.complete(CHAT, OPTIONS)
    finally:
        await chain.aclose()


async def test_the_relay_sends_and_remembers_the_reply_without_its_reasoning(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reasoning = "separate reasoning field"
    fake_openai.reply_fn = lambda messages: f"<think>plan {len(messages)}</think>noon works"
    settings = rest_settings(fake_discord, fake_openai)
    async with running_app(tmp_path, RULES, **settings) as running:
        client = await PluginClient.connect(running.url)
        await client.message("5001", "111", "222", "lunch?")
        [posted] = await fake_discord.wait_for_messages(1)
        await client.message("5002", "111", "222", "where?")
        await fake_discord.wait_for_messages(2)
        await running.app.relay.drain()
        await client.close()

    assert posted["content"] == "[auto-reply] noon works"
    remembered = [m["content"] for m in fake_openai.requests[-1]["messages"]]
    assert "noon works" in remembered
    assert not any("think" in text or "plan" in text for text in remembered)
    assert not any("think" in m["content"] for m in fake_discord.messages)
