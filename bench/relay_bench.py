"""Relay benchmark: per-message overhead, pair concurrency and throughput, over real sockets.

Runs the real App against the local fakes of Discord and OpenAI, so the figures measure the
relay's own overhead (websocket → LLM HTTP → Discord HTTP), not a model.
Run: `make bench` (or `.venv/bin/python -m bench.relay_bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path

from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI
from tests.relay_harness import PluginClient, running_app


def rules_for(pairs: int) -> str:
    entries = ", ".join(f'("{1000 + n}", "{2000 + n}")' for n in range(pairs))
    return f'CONTEXT_MESSAGE = "bench"\nREPLY_TO = [{entries}]\n'


async def run(messages: int, pairs: int, llm_delay: float) -> None:
    discord = FakeDiscord(limit=100_000, window=1.0)
    openai = FakeOpenAI()
    await discord.start()
    await openai.start()
    settings = {
        "MESSENGER": "rest",
        "DISCORD_AUTHORIZATION": FakeDiscord.TOKEN,
        "DISCORD_API_BASE": discord.base_url,
        "OPENAI_BASE_URL": openai.base_url,
        "OPENAI_API_KEY": FakeOpenAI.API_KEY,
        "TYPING_INTERVAL_SECONDS": 8.0,
        # One pair gets hundreds of replies here: the per-pair guard rails would stop them.
        "MAX_REPLIES_PER_MINUTE": 0,
        "MAX_REPLIES_PER_HOUR": 0,
    }
    with tempfile.TemporaryDirectory() as tmp:
        async with running_app(Path(tmp), rules_for(pairs), **settings) as running:
            client = await PluginClient.connect(running.url)

            # 1. Overhead of one message, one at a time: frame sent -> Discord POST received.
            latencies = []
            for n in range(messages):
                started = time.perf_counter()
                await client.message(f"1{n:08d}", "1000", "2000", f"message {n}")
                await discord.wait_for_messages(len(discord.messages) + 1, timeout=10)
                latencies.append(time.perf_counter() - started)
            cut = sorted(latencies)
            print(f"overhead, {messages} sequential messages (LLM answers at once):")
            print(
                f"  median {statistics.median(cut) * 1000:.2f} ms, "
                f"p95 {cut[int(0.95 * len(cut)) - 1] * 1000:.2f} ms"
            )

            # 2. Concurrency: one message in each of `pairs` pairs with a slow LLM.
            openai.delay = llm_delay
            before = len(discord.messages)
            started = time.perf_counter()
            for n in range(pairs):
                await client.message(f"2{n:08d}", f"{1000 + n}", f"{2000 + n}", "hello")
            await discord.wait_for_messages(before + pairs, timeout=60)
            elapsed = time.perf_counter() - started
            print(f"concurrency, {pairs} pairs with a {llm_delay:.2f} s LLM:")
            print(
                f"  all answered in {elapsed:.3f} s = {elapsed / llm_delay:.2f}x one reply "
                f"(sequential would be {pairs:.0f}x)"
            )

            # 3. Throughput: `messages` messages spread over `pairs` pairs, LLM answers at once.
            openai.delay = 0.0
            before = len(discord.messages)
            started = time.perf_counter()
            for n in range(messages):
                pair = n % pairs
                await client.message(f"3{n:08d}", f"{1000 + pair}", f"{2000 + pair}", "hi")
            await discord.wait_for_messages(before + messages, timeout=120)
            elapsed = time.perf_counter() - started
            print(f"throughput, {messages} messages over {pairs} pairs:")
            print(f"  {messages / elapsed:.0f} replies/s ({elapsed:.2f} s)")
            await client.close()
    await discord.stop()
    await openai.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--llm-delay", type=float, default=0.5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args.messages, args.pairs, args.llm_delay))


if __name__ == "__main__":
    main()
