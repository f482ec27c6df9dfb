"""The library floor: the two HTTP requests every reply needs, made by the relay's own clients
alone, with nothing around them.

`bench.relay_bench` runs this in a subprocess with the server's own config.json, on the server's
event loop. It reads one message per line on stdin (`<message id> <pair> <text>`), asks the LLM
through `OpenAIBackend` (the streamed completion the relay asks for) and posts the answer through
`RestMessenger` as a reply to that message. No websocket, database, rules or memory: the
benchmark times these messages exactly as it times the relay's, and the difference is what the
relay itself adds.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from server.config import load_settings
from server.delivery.outbox import new_nonce
from server.event_loop import run
from server.llm.base import ChatMessage, GenerationOptions
from server.llm.chain import build_backend
from server.messengers.rest import RestMessenger


async def relay_without_relay(config: Path, persona: str) -> None:
    """Answer every message read on stdin until it closes, each in its own task, with `persona`
    as the system message."""
    settings = load_settings(config)
    backend = build_backend(settings, "openai")
    messenger = RestMessenger(settings.DISCORD_AUTHORIZATION, settings.DISCORD_API_BASE)
    options = GenerationOptions(max_tokens=settings.MAX_TOKENS)
    context = ChatMessage("system", persona)

    async def answer(message_id: str, pair: int, text: str) -> None:
        reply = await backend.complete([context, ChatMessage("user", text)], options)
        channel = f"{2000 + pair}"  # as bench.relay_bench.rules_for names the pair's channel
        await messenger.send(channel, reply, nonce=new_nonce(), reply_to=message_id)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks: set[asyncio.Task[None]] = set()
    print("ready", flush=True)
    while line := await reader.readline():
        message_id, pair, text = line.decode().rstrip("\n").split(" ", 2)
        task = asyncio.create_task(answer(message_id, int(pair), text))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    await backend.aclose()
    await messenger.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", type=Path, required=True, help="the server's config.json")
    parser.add_argument("--persona", default="bench", help="the system message")
    args = parser.parse_args()
    run(relay_without_relay(args.config, args.persona))


if __name__ == "__main__":
    main()
