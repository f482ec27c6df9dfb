"""Relay benchmark: overhead, pair concurrency, throughput, memory and the unwatched-frame rate.

Runs the real server (`python -m server serve`) in a subprocess against the local fakes of
Discord and OpenAI, which run in this process with the websocket client that plays the plugin;
so the figures measure the relay's own work (websocket → SQLite → LLM HTTP → Discord HTTP), not
a model, and the RSS and CPU time read from /proc are the server's alone.
The server runs with COALESCE_SECONDS 0 (each message is answered on its own), REPLY_WHEN
"always" and the per-pair reply limits off (MAX_REPLIES_PER_MINUTE/HOUR 0): the benchmark sends
each pair far more than 4 messages a minute. Everything else is the default configuration,
logging at INFO to a file included.
The floor phase sends the burst and the paced messages again through `bench.http_floor`: the
relay's own LLM and Discord clients with nothing around them, so the figures show how much of
each is the relay and how much the HTTP libraries underneath.
Run: `make bench` (or `.venv/bin/python -m bench.relay_bench`); `--profile out.svg` records
the server with py-spy (`pip install py-spy`; not a dependency of the project).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI
from tests.http_connection import HttpConnection

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-websocket-secret-0123456789abcdef"
GUILD = "3000"
"""Every benchmark message is in a guild, so each reply names the message it answers."""
UNWATCHED = "9"
"""The user and channel of frames that no rule watches."""
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
MIB = 1024 * 1024
SETTLE_SECONDS = 1.0
FLOOR_WARM_UP = 50
"""Messages the library floor answers one at a time before it is measured."""
ACK_PREFIX = '{"type":"ack"'
"""How the server's acks start: counted without decoding them, so the client keeps up."""


def rules_for(pairs: int) -> str:
    """A reply_config.py watching `pairs` pairs: user 1000+n in channel 2000+n."""
    entries = ", ".join(f'("{1000 + n}", "{2000 + n}")' for n in range(pairs))
    return f'CONTEXT_MESSAGE = "bench"\nREPLY_TO = [{entries}]\n'


def message_frame(message_id: str, pair: int | None, content: str) -> str:
    """A `message` frame as the plugin sends it: from pair `pair`, or unwatched if None."""
    user, channel = (UNWATCHED, UNWATCHED) if pair is None else (f"{1000 + pair}", f"{2000 + pair}")
    frame = {
        "type": "message",
        "id": message_id,
        "channel": channel,
        "guild": GUILD,
        "author": {"id": user, "username": f"user{user}", "bot": False},
        "content": content,
        "timestamp": "2026-11-22T10:00:00.000000+00:00",
        "self": False,
        "nonce": None,
    }
    return json.dumps(frame)


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))]


def py_spy() -> str:
    """The py-spy next to this Python (a virtual environment's), else the one on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy") or "py-spy"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def spread(latencies: list[float]) -> str:
    """Median, p95, p99 and max of `latencies`."""
    return (
        f"median {ms(statistics.median(latencies))}, p95 {ms(percentile(latencies, 0.95))}, "
        f"p99 {ms(percentile(latencies, 0.99))}, max {ms(max(latencies))}"
    )


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds process `pid` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


Send = Callable[[str, int, str], Awaitable[None]]
"""Sends message (id, pair, text) to what is measured: the relay, or the library floor."""


class ServerProcess:
    """`python -m server serve` in a subprocess, logging to a file; its RSS and CPU time."""

    def __init__(self, folder: Path, settings: dict[str, Any], pairs: int) -> None:
        self.config = folder / "config.json"
        self.rules = folder / "reply_config.py"
        self.log = folder / "server.log"
        self.config.write_text(json.dumps(settings), encoding="utf-8")
        self.rules.write_text(rules_for(pairs), encoding="utf-8")
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it listens."""
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "server",
                "serve",
                "--config",
                str(self.config),
                "--reply-config",
                str(self.rules),
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"listening on (ws://\S+)", self.log.read_text(errors="replace"))
            if found:
                self.url = found[1]
                return
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the server did not start; its log:\n{self.tail()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss(self) -> float:
        """Resident memory in bytes (Linux /proc)."""
        fields = Path(f"/proc/{self.pid}/statm").read_text().split()
        return int(fields[1]) * PAGE_SIZE

    def cpu(self) -> float:
        """User plus system CPU seconds used so far (Linux /proc)."""
        return cpu_seconds(self.pid)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def problems(self) -> list[str]:
        """The warnings and errors the server logged."""
        text = self.log.read_text(errors="replace")
        return [line for line in text.splitlines() if " WARNING " in line or " ERROR " in line]

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


class FloorProcess:
    """`bench.http_floor` in a subprocess: each message's two HTTP requests, made by the relay's
    own clients with the server's config, and nothing else."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 60.0) -> None:
        """Start it and wait until it reads messages."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.http_floor", "--config", str(self.config),
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self.process.stdout is not None
        ready = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if ready.strip() != b"ready":
            raise RuntimeError(f"bench.http_floor did not start: {ready!r}")

    def cpu(self) -> float:
        """User plus system CPU seconds used so far (Linux /proc)."""
        assert self.process is not None
        return cpu_seconds(self.process.pid)

    async def send(self, message_id: str, pair: int, content: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(f"{message_id} {pair} {content}\n".encode())
        await self.process.stdin.drain()

    async def stop(self) -> None:
        """Close its input; it exits once every message is answered."""
        if self.process is not None and self.process.stdin is not None:
            self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@dataclass
class Replies:
    """When each reply reached the fake Discord, by the id of the message it answers."""

    at: dict[str, float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def listen(self, message: dict[str, Any]) -> None:
        reference = message.get("message_reference") or {}
        self.at.setdefault(str(reference.get("message_id")), time.perf_counter())
        self.changed.set()

    async def wait_for(self, ids: Iterable[str], timeout: float) -> None:
        """Wait until every message in `ids` has its reply."""
        waiting = set(ids)
        deadline = time.monotonic() + timeout
        while True:
            waiting = {message_id for message_id in waiting if message_id not in self.at}
            if not waiting:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(waiting)} message(s) got no reply in {timeout} s")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)


class BenchClient:
    """A client that speaks like the plugin, over a WebSocket or HTTP, and counts the acks."""

    def __init__(self, connection: ClientConnection | HttpConnection) -> None:
        self.connection = connection
        self.acks = 0
        self.errors: list[str] = []
        self._target = 0
        self._reached = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str, transport: str = "websocket") -> BenchClient:
        """Say hello over a WebSocket, or over the HTTP transport (`transport="http"`)."""
        connection: ClientConnection | HttpConnection
        if transport == "http":
            connection = await HttpConnection.open(url, SECRET)
        else:
            # No keepalive pings: on loopback they only time out behind a flood of frames.
            connection = await connect(url, max_queue=None, ping_interval=None)
        hello = {"type": "hello", "secret": SECRET, "client": "bench", "version": "1"}
        await connection.send(json.dumps(hello))
        welcome = json.loads(await asyncio.wait_for(connection.recv(), 10))
        assert welcome["type"] == "welcome", welcome
        return cls(connection)

    async def _read(self) -> None:
        async for text in self.connection:
            frame = {"type": "ack"} if str(text).startswith(ACK_PREFIX) else json.loads(text)
            if frame["type"] == "ack":
                self.acks += 1
                if self.acks >= self._target:
                    self._reached.set()
            elif frame["type"] == "error":
                self.errors.append(frame["error"])

    async def send(self, frame: str) -> None:
        await self.connection.send(frame)

    async def wait_for_acks(self, count: int, timeout: float = 60.0) -> None:
        """Wait until `count` acks have arrived in all."""
        self._target = count
        self._reached.clear()
        if self.acks < count:
            await asyncio.wait_for(self._reached.wait(), timeout)

    async def close(self) -> None:
        await self.connection.close()
        self._reader.cancel()


@dataclass
class Bench:
    server: ServerProcess
    client: BenchClient
    openai: FakeOpenAI
    replies: Replies
    results: list[tuple[str, str, bool]] = field(default_factory=list)
    """Each target: what it asks, the figure measured, whether it is met."""
    figures: dict[str, float] = field(default_factory=dict)
    """The relay's burst seconds, steady median and steady CPU per message, for the library
    floor to compare with."""
    _sent: int = 0
    sequential_median: float | None = None
    """The WebSocket's median in the sequential phase, for the HTTP transport to compare with."""

    def target(self, what: str, figure: str, met: bool) -> None:
        self.results.append((what, figure, met))

    def next_id(self, phase: int) -> str:
        self._sent += 1
        return f"{phase}{self._sent:09d}"

    async def message(self, message_id: str, pair: int, content: str) -> float:
        """Send a message and wait for its ack; when it was sent."""
        started = time.perf_counter()
        await self.client.send(message_frame(message_id, pair, content))
        await self.client.wait_for_acks(self.client.acks + 1)
        return started

    async def sequential(self, messages: int, pairs: int) -> None:
        """1. Overhead of one message at a time: frame sent → Discord POST received."""
        latencies = []
        for n in range(messages):
            message_id = self.next_id(1)
            started = await self.message(message_id, n % pairs, f"message {n}")
            await self.replies.wait_for([message_id], timeout=10)
            latencies.append(self.replies.at[message_id] - started)
        print(f"overhead, {messages} sequential messages (LLM answers at once):")
        print(
            f"  median {ms(statistics.median(latencies))}, "
            f"p95 {ms(percentile(latencies, 0.95))}, p99 {ms(percentile(latencies, 0.99))}"
        )
        self.sequential_median = statistics.median(latencies)

    async def over_http(self, messages: int, pairs: int) -> None:
        """1b. The same overhead over the plugin's HTTP transport: frames posted, acks polled."""
        websocket = self.client
        self.client = await BenchClient.connect(self.server.url, "http")
        try:
            latencies = []
            for n in range(messages):
                message_id = self.next_id(7)
                started = await self.message(message_id, n % pairs, f"over http {n}")
                await self.replies.wait_for([message_id], timeout=10)
                latencies.append(self.replies.at[message_id] - started)
        finally:
            await self.client.close()
            self.client = websocket
        median = statistics.median(latencies)
        print(f"overhead over the HTTP transport, {messages} sequential messages:")
        print(f"  median {ms(median)}, p95 {ms(percentile(latencies, 0.95))}")
        if self.sequential_median is not None:
            added = median - self.sequential_median
            print(f"  {ms(added)} more than over the WebSocket")
            self.target("HTTP median minus the WebSocket's", ms(added), added < 0.003)

    async def to_relay(self, message_id: str, pair: int, content: str) -> None:
        """Send a message to the relay, as the plugin would."""
        await self.client.send(message_frame(message_id, pair, content))

    async def burst(self, send: Send, pairs: int, llm_delay: float) -> float:
        """One message in each of `pairs` pairs at once, with a slow LLM: seconds until the
        last reply."""
        self.openai.delay = llm_delay
        ids = [self.next_id(2) for _ in range(pairs)]
        started = time.perf_counter()
        for pair, message_id in enumerate(ids):
            await send(message_id, pair, "hello")
        await self.replies.wait_for(ids, timeout=60)
        self.openai.delay = 0.0
        return max(self.replies.at[message_id] for message_id in ids) - started

    async def paced(self, send: Send, rate: float, seconds: float, pairs: int) -> list[float]:
        """`rate` messages/s spread over `pairs` pairs: each one's seconds to its reply."""
        sent: dict[str, float] = {}
        start = time.perf_counter()
        for n in range(round(rate * seconds)):
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            message_id = self.next_id(3)
            sent[message_id] = time.perf_counter()
            await send(message_id, n % pairs, f"steady {n}")
        await self.replies.wait_for(sent, timeout=60)
        return [self.replies.at[message_id] - at for message_id, at in sent.items()]

    async def concurrency(self, pairs: int, llm_delay: float) -> None:
        """2. One message in each of `pairs` pairs at once, with a slow LLM."""
        elapsed = self.figures["burst"] = await self.burst(self.to_relay, pairs, llm_delay)
        print(f"concurrency, {pairs} pairs with a {llm_delay:.2f} s LLM:")
        print(
            f"  all answered in {elapsed:.3f} s = {elapsed / llm_delay:.2f}x one reply "
            f"(sequential would be {pairs}x)"
        )
        self.target(
            f"{pairs} pairs x {llm_delay:g} s LLM: all answered < {1.3 * llm_delay:g} s",
            f"{elapsed:.3f} s",
            elapsed < 1.3 * llm_delay,
        )

    async def steady(self, rate: float, seconds: float, pairs: int) -> None:
        """3. Overhead at a steady `rate` messages/s spread over `pairs` pairs."""
        cpu = self.server.cpu()
        latencies = await self.paced(self.to_relay, rate, seconds, pairs)
        cpu = self.figures["steady cpu"] = (self.server.cpu() - cpu) / len(latencies)
        print(f"overhead at {rate:g} messages/s, {len(latencies)} messages over {pairs} pairs:")
        print(f"  {spread(latencies)}")
        print(f"  server CPU {ms(cpu)} per message")
        median, p99 = statistics.median(latencies), percentile(latencies, 0.99)
        self.figures["steady median"] = median
        self.target(f"overhead at {rate:g}/s: median < 5 ms", ms(median), median < 0.005)
        self.target(f"overhead at {rate:g}/s: p99 < 20 ms", ms(p99), p99 < 0.020)

    async def floor(self, args: argparse.Namespace) -> None:
        """2 and 3 again through bench.http_floor: the same two HTTP requests per message,
        made by the relay's own clients with nothing else, so what the relay adds shows."""
        floor = FloorProcess(self.server.config)
        await floor.start()
        try:
            for n in range(FLOOR_WARM_UP):  # as the sequential phase warms the relay up
                message_id = self.next_id(6)
                await floor.send(message_id, n % args.pairs, f"warm-up {n}")
                await self.replies.wait_for([message_id], timeout=10)
            await asyncio.sleep(args.settle)
            elapsed = await self.burst(floor.send, args.pairs, args.llm_delay)
            await asyncio.sleep(args.settle)
            cpu = floor.cpu()
            latencies = await self.paced(floor.send, args.rate, args.rate_seconds, args.pairs)
            cpu = (floor.cpu() - cpu) / len(latencies)
        finally:
            await floor.stop()
        median = statistics.median(latencies)
        print("library floor: the same messages through OpenAIBackend and RestMessenger alone")
        print("(bench/http_floor.py: no websocket, database, rules or memory):")
        relay = self.figures
        print(f"  {args.pairs} pairs x {args.llm_delay:.2f} s LLM: all answered in {elapsed:.3f} s")
        print(f"  at {args.rate:g} messages/s: {spread(latencies)}")
        print(f"  CPU {ms(cpu)} per message")
        if "burst" in relay:
            print(f"  the relay adds {relay['burst'] - elapsed:+.3f} s to the burst")
        if "steady median" in relay:
            print(
                f"  the relay adds {ms(relay['steady median'] - median)} to the median and "
                f"{ms(relay['steady cpu'] - cpu)} of CPU per message"
            )

    async def volume(self, messages: int, pairs: int, window: int) -> None:
        """4. `messages` messages over `pairs` pairs, at most `window` unanswered at a time:
        throughput, server CPU per message, and RSS after each half."""
        print(f"throughput and memory, {messages} messages over {pairs} pairs:")
        print(f"  RSS before: {self.server.rss() / MIB:.1f} MiB")
        rss: list[float] = []
        cpu_before, started = self.server.cpu(), time.perf_counter()
        for half in range(2):
            ids: list[str] = []
            for n in range(messages // 2):
                while len(ids) - self._answered(ids) >= window:
                    self.replies.changed.clear()
                    await asyncio.wait_for(self.replies.changed.wait(), 30)
                message_id = self.next_id(4)
                ids.append(message_id)
                await self.message(message_id, n % pairs, f"volume {half} {n}")
            await self.replies.wait_for(ids, timeout=120)
            await asyncio.sleep(0.5)  # let the last replies be recorded
            rss.append(self.server.rss())
        elapsed = time.perf_counter() - started
        cpu = self.server.cpu() - cpu_before
        print(f"  {messages / elapsed:.0f} replies/s ({elapsed:.1f} s, at most {window} waiting)")
        print(f"  server CPU {cpu / messages * 1000:.2f} ms per message")
        print(
            f"  RSS after {messages // 2}: {rss[0] / MIB:.1f} MiB, after {messages}: "
            f"{rss[1] / MIB:.1f} MiB (second half: {(rss[1] - rss[0]) / MIB:+.1f} MiB)"
        )
        self.target(
            f"RSS after {messages} messages < 120 MiB",
            f"{rss[1] / MIB:.1f} MiB",
            rss[1] < 120 * MIB,
        )
        growth = rss[1] - rss[0]
        self.target(
            f"RSS growth over the second {messages // 2} < 5 MiB",
            f"{growth / MIB:+.1f} MiB",
            growth < 5 * MIB,
        )

    def _answered(self, ids: list[str]) -> int:
        return sum(1 for message_id in ids if message_id in self.replies.at)

    async def unwatched(self, frames: int, window: int = 1000) -> None:
        """5. A flood of frames from a pair nobody watches, at most `window` of them unacked:
        acked and dropped per second."""
        texts = [message_frame(self.next_id(5), None, "not for us") for _ in range(frames)]
        acks, cpu_before = self.client.acks, self.server.cpu()
        started = time.perf_counter()
        for sent, text in enumerate(texts):
            if sent - (self.client.acks - acks) >= window:
                await self.client.wait_for_acks(acks + sent - window // 2)
            await self.client.send(text)
        await self.client.wait_for_acks(acks + frames, timeout=120)
        elapsed = time.perf_counter() - started
        cpu = self.server.cpu() - cpu_before
        print(f"unwatched frames, {frames} sent, at most {window} unacked:")
        print(
            f"  {frames / elapsed:.0f} acked and dropped per second "
            f"(server CPU {cpu / frames * 1e6:.1f} µs per frame)"
        )
        rate = frames / elapsed
        self.target(
            "unwatched frames acked and dropped >= 20,000/s", f"{rate:.0f}/s", rate >= 20_000
        )

    def report(self) -> None:
        """The issue's targets, each with its figure."""
        if not self.results:
            return
        print("targets:")
        width = max(len(what) for what, _, _ in self.results)
        for what, figure, met in self.results:
            print(f"  {what:<{width}}  {figure:>10}  {'met' if met else 'MISSED'}")


async def measured(phase: Awaitable[None], settle: float) -> None:
    """Run a phase once the server has settled (a phase ends at its last reply's POST, with the
    server still recording deliveries), with this process's own garbage collection kept out of
    the figures: the fakes keep every request, and a full collection over them stalled them for
    up to 75 ms."""
    await asyncio.sleep(settle)
    gc.collect()
    gc.freeze()
    await phase


async def run(args: argparse.Namespace) -> None:
    discord = FakeDiscord(limit=1_000_000, window=1.0)
    openai = FakeOpenAI()
    replies = Replies()
    discord.message_listeners.append(replies.listen)
    await discord.start()
    await openai.start()
    settings = {
        "WEBSOCKET_PORT": 0,
        "WEBSOCKET_SECRET": SECRET,
        "MESSENGER": "rest",
        "DISCORD_AUTHORIZATION": FakeDiscord.TOKEN,
        "DISCORD_API_BASE": discord.base_url,
        "OPENAI_BASE_URL": openai.base_url,
        "OPENAI_API_KEY": FakeOpenAI.API_KEY,
        "LLM_BACKENDS": ["openai"],
        "COALESCE_SECONDS": 0.0,
        "REPLY_WHEN": "always",
        "MAX_REPLIES_PER_MINUTE": 0,
        "MAX_REPLIES_PER_HOUR": 0,
    }
    profiler: asyncio.subprocess.Process | None = None
    with tempfile.TemporaryDirectory() as tmp:
        settings["DATABASE"] = str(Path(tmp) / "auto_reply.db")
        server = ServerProcess(Path(tmp), settings, max(args.pairs, args.volume_pairs))
        await server.start()
        try:
            if args.profile:
                profiler = await asyncio.create_subprocess_exec(
                    py_spy(), "record", "--nonblocking", "--pid", str(server.pid),
                    "--output", str(args.profile), "--format", args.profile_format,
                )  # fmt: skip
            print(f"server pid {server.pid}, idle RSS {server.rss() / MIB:.1f} MiB")
            client = await BenchClient.connect(server.url)
            bench = Bench(server, client, openai, replies)
            phases = set(args.phases.split(","))
            if "sequential" in phases:
                await measured(bench.sequential(args.messages, args.pairs), args.settle)
            if "http" in phases:
                await measured(bench.over_http(args.messages, args.pairs), args.settle)
            if "concurrency" in phases:
                await measured(bench.concurrency(args.pairs, args.llm_delay), args.settle)
            if "steady" in phases:
                await measured(bench.steady(args.rate, args.rate_seconds, args.pairs), args.settle)
            if "floor" in phases:
                await measured(bench.floor(args), args.settle)
            if "volume" in phases:
                await measured(
                    bench.volume(args.volume, args.volume_pairs, args.window), args.settle
                )
            if "unwatched" in phases:
                await measured(bench.unwatched(args.unwatched), args.settle)
            bench.report()
            if client.errors:
                errors = len(client.errors)
                print(f"the server answered {errors} error frame(s), the first: {client.errors[0]}")
            await client.close()
        finally:
            await server.stop()
            if profiler is not None:
                await profiler.wait()
        problems = server.problems()
        if problems:
            print(f"the server logged {len(problems)} warning(s) or error(s), the first:")
            print("  " + "\n  ".join(problems[:5]))
    await discord.stop()
    await openai.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=200, help="sequential messages")
    parser.add_argument("--pairs", type=int, default=100, help="pairs answered at once")
    parser.add_argument("--llm-delay", type=float, default=1.0, help="LLM delay for --pairs")
    parser.add_argument("--rate", type=float, default=50.0, help="steady messages per second")
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument("--volume", type=int, default=10_000, help="messages for throughput")
    parser.add_argument("--volume-pairs", type=int, default=1_000)
    parser.add_argument("--window", type=int, default=100, help="most unanswered at a time")
    parser.add_argument("--unwatched", type=int, default=50_000, help="unwatched frames")
    parser.add_argument(
        "--phases",
        default="sequential,http,concurrency,steady,floor,volume,unwatched",
        help="comma-separated phases to run",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=SETTLE_SECONDS,
        help="seconds of quiet before each phase (less for a run whose figures are not read)",
    )
    parser.add_argument("--profile", type=Path, help="record the server with py-spy to this file")
    parser.add_argument("--profile-format", default="flamegraph", help="py-spy's --format")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
