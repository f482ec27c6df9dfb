"""The real gateway on its own, driven from stdin, for the plugin's Node tests of the macro guard.

`python -m tests.gateway_driver --secret S` prints `listening on PORT`, then answers each stdin
line with one JSON line on stdout:

- `open CHANNEL TIMEOUT`: the plugin's `opened` answer to `Gateway.open_channel`, or `{"error": …}`
- `activity`: `{"last_activity": …}`, the gateway's `last_activity()` (epoch seconds or null)

It exits at the end of stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from server.config import DEFAULT_ORIGINS
from server.transport.gateway import Gateway


async def _answer(gateway: Gateway, line: str) -> dict[str, object]:
    match line.split():
        case ["open", channel, timeout]:
            try:
                opened = await gateway.open_channel(channel, float(timeout))
            except (TimeoutError, ConnectionError) as exc:
                return {"error": type(exc).__name__}
            return opened.model_dump()
        case ["activity"]:
            return {"last_activity": gateway.last_activity()}
        case _:
            return {"error": f"unknown command {line!r}"}


async def main(secret: str) -> None:
    """Serve on a free loopback port until stdin ends."""
    gateway = Gateway(
        secret=secret,
        allowed_origins=list(DEFAULT_ORIGINS),
        accept=lambda message: None,
        watch_list=lambda: [],
        messenger_name="macro",
    )
    server = await gateway.start("127.0.0.1", 0)
    print(f"listening on {server.port}", flush=True)
    try:
        while line := await asyncio.to_thread(sys.stdin.readline):
            print(json.dumps(await _answer(gateway, line.strip())), flush=True)
    finally:
        await server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--secret", required=True)
    asyncio.run(main(parser.parse_args().secret))
