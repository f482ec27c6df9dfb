"""G4FBackend through fake g4f providers passed in directly: nothing reaches the network."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import g4f.debug
import pytest
from g4f.providers.base_provider import AsyncGeneratorProvider, ProviderModelMixin

from server.config import ConfigError, Settings
from server.llm.base import ChatMessage, GenerationOptions, LLMError
from server.llm.chain import BackendChain, build_backend_chain
from server.llm.g4f_backend import G4FBackend, g4f_installed

ROOT = Path(__file__).resolve().parent.parent

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


class SleepyProvider(EchoProvider):
    """Blocks its thread for 0.5 s inside its async code, as g4f's Pollinations does when it
    fetches its model list with `requests.get`; `sleeping` is set meanwhile."""

    sleeping = threading.Event()

    @classmethod
    async def create_async_generator(
        cls, model: str, messages: list[dict[str, str]], **kwargs: Any
    ) -> AsyncIterator[str]:
        cls.sleeping.set()
        time.sleep(0.5)  # noqa: ASYNC251 - the blocking call under test
        cls.sleeping.clear()
        yield "rested"


class StuckProvider(EchoProvider):
    """Blocks its thread until `release` is set, then reports whether it was cancelled."""

    blocked = threading.Event()
    release = threading.Event()
    ended = threading.Event()
    outcome: ClassVar[list[str]] = []

    @classmethod
    async def create_async_generator(
        cls, model: str, messages: list[dict[str, str]], **kwargs: Any
    ) -> AsyncIterator[str]:
        cls.blocked.set()
        cls.release.wait(10)
        try:
            await asyncio.sleep(0)
            cls.outcome.append("went on")
        except asyncio.CancelledError:
            cls.outcome.append("cancelled")
            raise
        finally:
            cls.ended.set()
        yield "too late"


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

    with pytest.raises(
        LLMError, match=r"^g4f \(FailingProvider\): RuntimeError: provider is down$"
    ):
        await backend.complete(CHAT, OPTIONS)


async def test_hanging_provider_times_out() -> None:
    backend = G4FBackend(provider=HangingProvider, timeout=0.1)

    started = time.monotonic()
    with pytest.raises(LLMError, match=r"^g4f \(HangingProvider\): timed out after 0\.1 s$"):
        await backend.complete(CHAT, OPTIONS)

    assert time.monotonic() - started < 1.0


async def test_a_provider_that_blocks_does_not_stop_the_event_loop() -> None:
    backend = G4FBackend(provider=SleepyProvider)
    ticks_while_blocked = 0

    async def tick() -> None:
        nonlocal ticks_while_blocked
        while True:
            await asyncio.sleep(0.01)
            ticks_while_blocked += SleepyProvider.sleeping.is_set()

    ticker = asyncio.create_task(tick())
    try:
        reply = await backend.complete(CHAT, OPTIONS)
    finally:
        ticker.cancel()

    assert reply == "rested"
    assert ticks_while_blocked >= 3  # none at all if the provider ran on this loop


async def test_a_timeout_returns_while_the_provider_is_still_blocked() -> None:
    backend = G4FBackend(provider=StuckProvider, timeout=0.1)
    for event in (StuckProvider.blocked, StuckProvider.release, StuckProvider.ended):
        event.clear()
    StuckProvider.outcome.clear()

    with pytest.raises(LLMError, match=r"^g4f \(StuckProvider\): timed out after 0\.1 s$"):
        await backend.complete(CHAT, OPTIONS)

    assert StuckProvider.blocked.is_set() and not StuckProvider.ended.is_set()
    StuckProvider.release.set()
    assert await asyncio.to_thread(StuckProvider.ended.wait, 10)
    assert StuckProvider.outcome == ["cancelled"]  # told to stop at its next await
    for thread in threading.enumerate():
        if thread.name == "g4f-request":
            await asyncio.to_thread(thread.join, 10)
            assert not thread.is_alive()


async def test_blank_reply_is_an_error() -> None:
    backend = G4FBackend(provider=SilentProvider)

    with pytest.raises(LLMError, match=r"^g4f \(SilentProvider\): empty completion$"):
        await backend.complete(CHAT, OPTIONS)


async def test_asyncio_is_not_patched_by_nest_asyncio() -> None:
    """g4f imports nest_asyncio2; only its sync paths and a few auth flows call apply()."""
    await G4FBackend(provider=EchoProvider).complete(CHAT, OPTIONS)

    assert not hasattr(asyncio, "_nest_patched")
    assert not hasattr(type(asyncio.get_running_loop()), "_nest_patched")


async def test_failure_falls_through_with_the_providers_name_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    chain = BackendChain([G4FBackend(provider=FailingProvider), G4FBackend(provider=EchoProvider)])

    reply = await chain.complete(CHAT, OPTIONS)

    assert reply == "sure, re: are you coming tonight?"
    assert "LLM backend g4f failed: g4f (FailingProvider): RuntimeError: provider is down" in (
        caplog.text
    )


def test_provider_is_chosen_by_name_from_the_config(tmp_path: Path) -> None:
    settings = Settings(LLM_BACKENDS=["g4f"], G4F_PROVIDER="Pollinations", G4F_MODEL="openai")

    [backend] = build_backend_chain(settings, tmp_path).backends

    assert isinstance(backend, G4FBackend)
    assert backend.provider_name == "Pollinations"
    assert repr(backend) == "G4FBackend(provider='Pollinations', model='openai')"
    assert repr(G4FBackend()) == "G4FBackend(provider='auto', model='')"


@pytest.mark.parametrize("names", ["NoSuchProvider", "Pollinations NoSuchProvider"])
def test_unknown_provider_is_a_config_error_naming_the_key(tmp_path: Path, names: str) -> None:
    settings = Settings(LLM_BACKENDS=["g4f"], G4F_PROVIDER=names)

    with pytest.raises(ConfigError, match=r"^G4F_PROVIDER: g4f has no provider named 'NoSuch"):
        build_backend_chain(settings, tmp_path)


def run_isolated(code: str, home: Path, **env: str) -> dict[str, Any]:
    """Run `code` in a fresh interpreter (g4f reads its folder once, at import) with HOME=home."""
    clean = {k: v for k, v in os.environ.items() if k != "G4F_CONFIG_DIR"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=home,
        env={**clean, "HOME": str(home), "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    answer: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return answer


G4F_FILES = """
import asyncio, json, pathlib
from server.llm.g4f_backend import G4FBackend
from server.llm.base import ChatMessage, GenerationOptions
G4FBackend(config_dir=pathlib.Path("cfg").resolve())  # as the server does: g4f is not yet imported
from tests.test_g4f_backend import EchoProvider
backend = G4FBackend(provider=EchoProvider, config_dir=pathlib.Path("elsewhere").resolve())
reply = asyncio.run(backend.complete([ChatMessage("user", "hi")], GenerationOptions(max_tokens=5)))
import g4f.config, g4f.cookies
print(json.dumps({"reply": reply, "config": str(g4f.config.CONFIG_DIR),
                  "cookies": g4f.cookies.get_cookies_dir(), "cache": g4f.config.get_cache_dir()}))
"""


def test_g4f_files_go_under_the_config_folder_not_home(tmp_path: Path) -> None:
    found = run_isolated(G4F_FILES, tmp_path)

    folder = tmp_path / "cfg" / ".g4f"
    assert found["reply"] == "sure, re: hi"
    assert found["config"] == str(folder)
    assert found["cookies"] == str(folder / "cookies")
    assert found["cache"] == str(folder / "cache")
    assert not (tmp_path / ".g4f").exists() and not (tmp_path / ".config").exists()
    assert not (tmp_path / "elsewhere").exists()  # read once, as g4f is first imported


def test_an_explicit_g4f_config_dir_is_respected(tmp_path: Path) -> None:
    mine = tmp_path / "mine"

    found = run_isolated(G4F_FILES, tmp_path, G4F_CONFIG_DIR=str(mine))

    assert found["config"] == str(mine)
    assert not (tmp_path / "cfg").exists()
