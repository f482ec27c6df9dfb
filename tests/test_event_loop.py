"""The loop `serve` runs on: uvloop where installed, asyncio's own where not (Windows)."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from server import event_loop


async def loop_type() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


def test_runs_on_uvloop_where_it_is_installed() -> None:
    assert event_loop.run(loop_type()) is uvloop.Loop


def test_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` now raises ImportError
    kind = event_loop.run(loop_type())
    assert kind is not uvloop.Loop
    assert issubclass(kind, asyncio.BaseEventLoop)
