"""The event loop the long-running commands (`serve`, `bot`, `interactions`) run on."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on uvloop where it is installed (Linux and macOS), else on
    asyncio's own loop (Windows, where uvloop does not exist).

    uvloop is asyncio's loop written in C over libuv: the relay's websocket frames, SQLite hops
    and HTTP requests cost about a fifth less CPU on it (see docs/performance.md).
    """
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
