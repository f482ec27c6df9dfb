"""G4FBackend through fake g4f providers passed in directly: nothing reaches the network."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import g4f.debug
import pytest
from g4f.providers.base_provider import AsyncGeneratorProvider, ProviderModelMixin

from server.llm.base import ChatMessage, GenerationOptions, LLMError
from server.llm.g4f_backend import G4FBackend, g4f_installed

CHAT = [
    ChatMessage("system", "You are Sam."),
    ChatMessage("user", "are you coming tonight?"),
]
OPTIONS = GenerationOptions(max_tokens=50)


class EchoProvider(AsyncGeneratorProvider, ProviderModelMixin):
    """Answers in pieces, from the request, and remembers what it was asked."""

    working = True
    default_model = "fake-1"
    models: ClassVar[list[str]] = ["fake-1", "fake-2"]
    calls: ClassVar[list[dict[str, Any]]] = []

    @classmethod
    async def create_async_generator(
        cls, model: str, messages: list[dict[str, str]], **kwargs: Any
    ) -> AsyncIterator[str]:
        cls.calls.append({"model": model, "messages": messages, **kwargs})
        yield "sure, "
        yield f"re: {messages[-1]['content']}"


class FailingProvider(EchoProvider):
    @classmethod
    async def create_async_generator(
        cls, model: str, messages: list[dict[str, str]], **kwargs: Any
    ) -> AsyncIterator[str]:
        raise RuntimeError("provider is down")
        yield  # pragma: no cover - makes this an async generator


class HangingProvider(EchoProvider):
    @classmethod
    async def create_async_generator(
        cls, model: str, messages: list[dict[str, str]], **kwargs: Any
    ) -> AsyncIterator[str]:
        await asyncio.sleep(3600)
        yield "too late"


class SilentProvider(EchoProvider):
    @classmethod
    async def create_async_generator(
        cls, model: str, messages: list[dict[str, str]], **kwargs: Any
    ) -> AsyncIterator[str]:
        yield "  "


@pytest.fixture(autouse=True)
def fresh_calls() -> None:
    EchoProvider.calls.clear()


def test_g4f_is_installed_in_the_test_environment() -> None:
    assert g4f_installed()


async def test_reply_joins_the_providers_pieces() -> None:
    backend = G4FBackend(model="fake-2", provider=EchoProvider)

    reply = await backend.complete(CHAT, OPTIONS)

    assert reply == "sure, re: are you coming tonight?"
    [call] = EchoProvider.calls
    assert call["model"] == "fake-2"
    assert call["max_tokens"] == 50
    assert "temperature" not in call
    assert call["messages"][0] == {"role": "system", "content": "You are Sam."}
    assert g4f.debug.version_check is False


async def test_model_and_temperature_from_options() -> None:
    backend = G4FBackend(model="fake-2", provider=EchoProvider)

    await backend.complete(CHAT, GenerationOptions(max_tokens=9, model="fake-1", temperature=0.5))

    [call] = EchoProvider.calls
    assert (call["model"], call["max_tokens"], call["temperature"]) == ("fake-1", 9, 0.5)


async def test_provider_error_becomes_llm_error() -> None:
    backend = G4FBackend(provider=FailingProvider)

    with pytest.raises(LLMError, match=r"^g4f: RuntimeError: provider is down$"):
        await backend.complete(CHAT, OPTIONS)


async def test_hanging_provider_times_out() -> None:
    backend = G4FBackend(provider=HangingProvider, timeout=0.1)

    started = time.monotonic()
    with pytest.raises(LLMError, match=r"^g4f: timed out after 0\.1 s$"):
        await backend.complete(CHAT, OPTIONS)

    assert time.monotonic() - started < 1.0


async def test_blank_reply_is_an_error() -> None:
    backend = G4FBackend(provider=SilentProvider)

    with pytest.raises(LLMError, match=r"^g4f: empty completion$"):
        await backend.complete(CHAT, OPTIONS)


async def test_asyncio_is_not_patched_by_nest_asyncio() -> None:
    """g4f imports nest_asyncio2; only its sync paths and a few auth flows call apply()."""
    await G4FBackend(provider=EchoProvider).complete(CHAT, OPTIONS)

    assert not hasattr(asyncio, "_nest_patched")
    assert not hasattr(type(asyncio.get_running_loop()), "_nest_patched")
