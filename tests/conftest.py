"""Shared fixtures: local fakes of the Discord REST API and of an OpenAI-compatible server."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator

# g4f writes usage logs under its config dir; keep them out of the home directory.
os.environ.setdefault("G4F_CONFIG_DIR", tempfile.mkdtemp(prefix="g4f-test-"))

import pytest_asyncio

from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI


@pytest_asyncio.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A fake Discord REST API on 127.0.0.1, accepting the token `FakeDiscord.TOKEN`."""
    fake = FakeDiscord()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest_asyncio.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """A fake OpenAI-compatible API on 127.0.0.1, accepting the key `FakeOpenAI.API_KEY`."""
    fake = FakeOpenAI()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
