"""Soak: exactly one reply per message through LLM faults, Discord faults and `kill -9`.

Runs the real server as a subprocess (`python -m server serve`, REST messenger) against the local
fakes of Discord and OpenAI, which live in this process and inject faults at random: the LLM
answers 5xx, slowly, past its timeout or with nothing; Discord answers 429 (bucket and global),
5xx, or 502 after posting. A websocket client plays the plugin (hello, message frames, unacked
frames kept and re-sent in order after each reconnect), while the server is killed with SIGKILL
and restarted at random moments. Each pair sends its next message once the last one is answered.

At the end every Discord message created is mapped to the message it answers by identity: its
nonce, which the server recorded in its database with the reply before posting it (its
`message_reference` in guild channels and the fake LLM's echo of the text must agree). A table
says how many were sent, answered, answered more than once, never answered, or left expired.
Exit code 1 when a message was answered twice (or a reply answers nothing) or not at all.

Run by hand, not in `make test`: `make soak`, or
`.venv/bin/python -m bench.soak --messages 1000 --kills 10`. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from server.conversation.recovery import RETRY_MAX_SECONDS
from server.messengers.rest import backoff_delay
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FAILURES, FakeOpenAI, error_body, reply

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "[auto-reply] "
FALLBACK = "Sorry, I can't answer right now (soak fallback)."
GUILD = "1300000000000000000"
LLM_TIMEOUT = 2.0
REPLY_WAIT = 180.0
"""How long a pair waits for one reply before counting it unanswered and going on."""
LATE_REPOST_SECONDS = 2 * max(RETRY_MAX_SECONDS, backoff_delay(1.0, 3))
"""How long the soak watches for late re-posts after its last restart: twice the longest wait
before the server sends a reply again: the recovery's resend backoff (capped at 30 s), or the REST
messenger's retry backoff (1, 3, 5, then 7 s between its 5 attempts), whichever is longer."""
MAX_FAULTS_PER_POST = 2
"""Injected Discord failures per reply part (nonce): the REST messenger makes 5 attempts."""
RESTART_KILLS = 0.25
"""The share of kills that come soon after a restart rather than at a point of the traffic."""
_ECHO = re.compile(r"echo: (.*) \[turns=\d+\]", re.DOTALL)


@dataclass(frozen=True)
class Faults:
    """How often each fault is injected (per LLM request, per Discord POST)."""

    llm_5xx: float = 0.10
    llm_timeout: float = 0.02
    llm_empty: float = 0.03
    llm_max_delay: float = 0.4
    discord: float = 0.10


@dataclass(frozen=True)
class Message:
    """A message the soak sends as someone in a watched pair."""

    id: str
    pair: int
    channel: str
    user: str
    guild: str | None
    text: str

    def frame(self) -> dict[str, Any]:
        """The `message` frame the plugin forwards for it."""
        return {
            "type": "message",
            "id": self.id,
            "channel": self.channel,
            "guild": self.guild,
            "author": {"id": self.user, "username": f"soak{self.pair}", "bot": False},
            "content": self.text,
            "timestamp": datetime.now(UTC).isoformat(timespec="microseconds"),
            "self": False,
            "nonce": None,
        }


def plan(messages: int, pairs: int) -> list[list[Message]]:
    """The messages of each pair, in the order sent; every text unique. Even pairs talk in a
    guild channel (replies carry a `message_reference`), odd ones in DMs."""
    conversations: list[list[Message]] = [[] for _ in range(pairs)]
    for n in range(messages):
        pair = n % pairs
        conversations[pair].append(
            Message(
                id=str(1_400_000_000_000_000_000 + n),
                pair=pair,
                channel=str(1_200_000_000_000_000_000 + pair),
                user=str(1_100_000_000_000_000_000 + pair),
                guild=GUILD if pair % 2 == 0 else None,
                text=f"soak message {n} from pair {pair}",
            )
        )
    return conversations


@dataclass
class Ledger:
    """What was sent, and every message Discord created while the soak ran."""

    sent: dict[str, Message] = field(default_factory=dict)
    by_text: dict[str, str] = field(default_factory=dict)
    posts: list[dict[str, Any]] = field(default_factory=list)
    """Every message Discord created, in order, as the fake Discord made it (with its nonce)."""
    outstanding: dict[str, str] = field(default_factory=dict)
    """Channel → the message waiting for its reply there (one per pair at a time)."""
    answered: dict[str, asyncio.Event] = field(default_factory=dict)
    heard: set[str] = field(default_factory=set)
    """The messages that seem answered so far (pacing only; `attribute` counts)."""

    def send(self, message: Message) -> asyncio.Event:
        """Note `message` as sent; the event is set when a reply to it seems to arrive."""
        self.sent[message.id] = message
        self.by_text[message.text] = message.id
        self.outstanding[message.channel] = message.id
        event = self.answered[message.id] = asyncio.Event()
        return event

    def created(self, discord_message: dict[str, Any]) -> None:
        """Keep a message Discord created, and let the pair it seems to answer go on."""
        self.posts.append(discord_message)
        target = self.likely_target(discord_message)
        if target is None:
            return
        self.heard.add(target)
        if self.outstanding.get(self.sent[target].channel) == target:
            del self.outstanding[self.sent[target].channel]
        self.answered[target].set()

    def likely_target(self, discord_message: dict[str, Any]) -> str | None:
        """The sent message this reply seems to answer while the soak runs: the one it references,
        the one whose text it echoes, or for a fallback in a DM the one waiting in the channel.
        Good enough to pace the pairs, not to count: a late fallback would be taken for the
        answer to the next message (`attribute` counts by identity)."""
        content = str(discord_message.get("content", "")).removeprefix(PREFIX)
        reference = str((discord_message.get("message_reference") or {}).get("message_id"))
        if reference in self.sent:
            return reference
        echo = _ECHO.fullmatch(content)
        if echo is not None:
            return self.by_text.get(echo.group(1))
        if content == FALLBACK:
            return self.outstanding.get(str(discord_message.get("channel_id")))
        return None


@dataclass(frozen=True)
class Answer:
    """What the relay recorded for one reply part it posted: the message it answers, which part."""

    message: str
    part: int


def recorded_answers(database: Path) -> dict[str, Answer]:
    """Nonce → what the relay's database says that reply part answers: a reply is recorded with
    the nonces of its parts and the message it follows before any part is posted."""
    try:
        with contextlib.closing(sqlite3.connect(database)) as db:
            rows = db.execute(
                "SELECT p.nonce, p.part, m.discord_id FROM reply_parts p"
                " JOIN turns r ON r.id = p.reply_id JOIN turns m ON m.id = r.follows"
                " WHERE m.discord_id IS NOT NULL"
            ).fetchall()
    except sqlite3.Error as exc:
        print(f"could not read {database}: {exc}", file=sys.stderr)
        return {}
    return {str(nonce): Answer(str(message), int(part)) for nonce, part, message in rows}


@dataclass(frozen=True)
class Attribution:
    """The replies each sent message got, counted by identity, and the messages that fit none."""

    replies: Counter[str]
    """Every sent message → how many replies Discord shows for it (first parts posted)."""
    fallbacks: int
    reposted: int
    """Later parts of a reply posted more than once."""
    unattributed: list[str]
    """Replies that answer no message the soak sent (or none the relay recorded)."""
    mismatched: list[str]
    """Replies that reference or echo another message than the one they answer."""


def attribute(ledger: Ledger, answers: dict[str, Answer]) -> Attribution:
    """Credit every message Discord created to the message it answers by its nonce (`answers`,
    as the relay recorded it), never by the channel it is in, so that a late duplicate and a
    missing reply in one channel cannot cancel out. Its `message_reference` and the fake LLM's
    echo, where present, must name the same message."""
    replies: Counter[str] = Counter(dict.fromkeys(ledger.sent, 0))
    posted: Counter[str] = Counter()
    fallbacks = reposted = 0
    unattributed: list[str] = []
    mismatched: list[str] = []
    for post in ledger.posts:
        content = str(post.get("content", "")).removeprefix(PREFIX)
        nonce = str(post.get("nonce"))
        answer = answers.get(nonce)
        if answer is None or answer.message not in ledger.sent:
            unattributed.append(content)
            continue
        posted[nonce] += 1
        if answer.part > 0:
            if posted[nonce] > 1:
                reposted += 1
            continue
        replies[answer.message] += 1
        if content == FALLBACK:
            fallbacks += 1
        reference = (post.get("message_reference") or {}).get("message_id")
        echo = _ECHO.fullmatch(content)
        if reference not in (None, answer.message) or (
            echo is not None and echo.group(1) != ledger.sent[answer.message].text
        ):
            mismatched.append(content)
    return Attribution(replies, fallbacks, reposted, unattributed, mismatched)


@dataclass(frozen=True)
class Tally:
    """The soak's outcome."""

    sent: int
    answered: int
    duplicated: int
    lost: int
    expired: int
    fallbacks: int

    @property
    def clean(self) -> bool:
        """Nothing duplicated and nothing lost."""
        return self.duplicated == 0 and self.lost == 0


def tally(found: Attribution, expired: set[str]) -> Tally:
    """Count from what each message got; `expired`: ids the server gave up on as too old (not
    lost)."""
    answered = sum(1 for count in found.replies.values() if count > 0)
    extra = sum(count - 1 for count in found.replies.values() if count > 1)
    unanswered = [m for m, count in found.replies.items() if count == 0]
    gone = sum(1 for m in unanswered if m in expired)
    return Tally(
        sent=len(found.replies),
        answered=answered,
        duplicated=extra + found.reposted + len(found.unattributed),
        lost=len(unanswered) - gone,
        expired=gone,
        fallbacks=found.fallbacks,
    )


class FaultyDiscord(FakeDiscord):
    """The fake Discord, failing some message POSTs: 429 for the bucket or global, 5xx before
    posting, or 502 after posting (the retry must not post twice)."""

    KINDS = ("429 bucket", "429 global", "5xx", "502 after posting")

    def __init__(self, rng: random.Random, rate: float) -> None:
        super().__init__(limit=5, window=5.0, nonce_ttl=3600.0)
        self.rng = rng
        self.rate = rate
        self.injected: Counter[str] = Counter()
        self._failed: Counter[str] = Counter()

    async def _create_message(self, request: web.Request) -> web.Response:
        try:
            nonce = str(json.loads(await request.read()).get("nonce"))
        except (ValueError, AttributeError):
            return await super()._create_message(request)
        if self._failed[nonce] >= MAX_FAULTS_PER_POST or self.rng.random() >= self.rate:
            return await super()._create_message(request)
        self._failed[nonce] += 1
        kind = self.rng.choice(self.KINDS)
        channel = request.match_info["channel_id"]
        if kind == "502 after posting":
            response = await super()._create_message(request)
            if response.status != 200:
                return response
            self.injected[kind] += 1
            return web.json_response({"message": "502: Bad Gateway", "code": 0}, status=502)
        if kind == "5xx":
            self.fail_next(self.rng.choice((500, 502, 503)), channel_id=channel)
        else:
            retry_after = self.rng.uniform(0.05, 1.0)
            is_global = kind == "429 global"
            self.fail_next(429, retry_after=retry_after, is_global=is_global, channel_id=channel)
        self.injected[kind] += 1
        return await super()._create_message(request)


class FaultyOpenAI(FakeOpenAI):
    """The fake LLM (it echoes the last user message), sometimes failing: 5xx, an answer later
    than the client's timeout, an empty answer; always a little slow."""

    def __init__(self, rng: random.Random, faults: Faults) -> None:
        super().__init__()
        self.rng = rng
        self.faults = faults
        self.injected: Counter[str] = Counter()
        self.reply_fn = self._reply

    def _reply(self, messages: list[dict[str, Any]]) -> str:
        if self.rng.random() < self.faults.llm_empty:
            self.injected["empty"] += 1
            return ""
        return reply(messages)

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        roll = self.rng.random()
        if roll < self.faults.llm_5xx:
            self.injected["5xx"] += 1
            status = self.rng.choice((500, 502, 503))
            type_, code, text = FAILURES[status]
            return web.json_response(error_body(text, type_, code), status=status)
        if roll < self.faults.llm_5xx + self.faults.llm_timeout:
            self.injected["timeout"] += 1
            await asyncio.sleep(LLM_TIMEOUT + 0.5)
        else:
            await asyncio.sleep(self.rng.uniform(0.0, self.faults.llm_max_delay))
        return await super()._chat_completions(request)


class PluginLink:
    """A websocket client doing what the plugin does: hello, then message frames; every frame
    is kept until the server acks it, and the unacked ones are re-sent in order after each
    welcome. Reconnects with a short capped backoff (the plugin's is 1 s doubling to 30 s)."""

    def __init__(self, url: str, secret: str, rng: random.Random) -> None:
        self.url = url
        self.secret = secret
        self.rng = rng
        self.unacked: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.welcomes = 0
        self._socket: ClientConnection | None = None
        self._lock = asyncio.Lock()

    async def forward(self, frame: dict[str, Any]) -> None:
        """Keep `frame` until acked, and send it now if the server is there."""
        async with self._lock:
            self.unacked[frame["id"]] = frame
            if self._socket is not None:
                with contextlib.suppress(WebSocketException, OSError):
                    await self._socket.send(json.dumps(frame))

    async def run(self) -> None:
        """Stay connected until cancelled."""
        attempt = 0
        while True:
            with contextlib.suppress(WebSocketException, OSError, TimeoutError):
                async with connect(self.url, open_timeout=5.0, close_timeout=1.0) as websocket:
                    await self._hello(websocket)
                    attempt = 0
                    async for text in websocket:
                        frame = json.loads(text)
                        if frame.get("type") == "ack":
                            self.unacked.pop(str(frame.get("id")), None)
            self._socket = None
            ceiling = min(2.0, 0.2 * 2 ** min(attempt, 10))
            attempt += 1
            await asyncio.sleep(ceiling / 2 + self.rng.random() * ceiling / 2)

    async def _hello(self, websocket: ClientConnection) -> None:
        hello = {"type": "hello", "secret": self.secret, "client": "soak", "version": "1"}
        await websocket.send(json.dumps(hello))
        welcome = json.loads(await asyncio.wait_for(websocket.recv(), 10.0))
        if welcome.get("type") != "welcome":
            raise WebSocketException(f"expected a welcome, got {welcome.get('type')!r}")
        async with self._lock:
            for frame in list(self.unacked.values()):
                await websocket.send(json.dumps(frame))
            self._socket = websocket
        self.welcomes += 1


class ServerProcess:
    """`python -m server serve` in a folder of its own, logging to `server.log` there."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log = folder / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start the server (it is up once it accepts the websocket)."""
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"\n===== start {self.starts} at {datetime.now()} =====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "server",
                    "serve",
                    "--config",
                    str(self.folder / "config.json"),
                    "--reply-config",
                    str(self.folder / "reply_config.py"),
                ],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def kill(self) -> None:
        """SIGKILL the server and reap it."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(self.process.wait)
            self.process = None

    async def stop(self) -> int | None:
        """SIGTERM, wait up to 15 s (then SIGKILL); the exit code of a clean stop."""
        if self.process is None:
            return None
        process, self.process = self.process, None
        process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(process.wait, 15.0)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)
            return None


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the server is restarted on the same one)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_setup(
    folder: Path,
    port: int,
    secret: str,
    *,
    discord: FakeDiscord,
    openai: FakeOpenAI,
    pairs: int,
) -> None:
    """config.json and reply_config.py for the soak's server."""
    config = {
        "WEBSOCKET_PORT": port,
        "WEBSOCKET_SECRET": secret,
        "MESSENGER": "rest",
        "DISCORD_AUTHORIZATION": FakeDiscord.TOKEN,
        "DISCORD_API_BASE": discord.base_url,
        "OPENAI_BASE_URL": openai.base_url,
        "OPENAI_API_KEY": FakeOpenAI.API_KEY,
        "OPENAI_MODEL": FakeOpenAI.MODEL,
        "LLM_BACKENDS": ["openai"],
        "LLM_MAX_RETRIES": 1,
        "LLM_TIMEOUT_SECONDS": LLM_TIMEOUT,
        "FALLBACK_MESSAGE": FALLBACK,
        "REPLY_PREFIX": PREFIX,
        "REPLY_WHEN": "always",
        "COALESCE_SECONDS": 0.0,
        "MAX_REPLIES_PER_MINUTE": 0,
        "MAX_REPLIES_PER_HOUR": 0,
        "REPLY_WITHIN_MINUTES": 30.0,
        "DATABASE": str(folder / "soak.db"),
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    users = [message[0] for message in plan(pairs, pairs)]
    entries = "".join(f'    ("{m.user}", "{m.channel}"),\n' for m in users)
    rules = f'CONTEXT_MESSAGE = "soak"\nREPLY_TO = [\n{entries}]\n'
    (folder / "reply_config.py").write_text(rules, encoding="utf-8")


def expired_ids(database: Path) -> set[str]:
    """The messages the server marked expired (too old to answer)."""
    try:
        with contextlib.closing(sqlite3.connect(database)) as db:
            rows = db.execute(
                "SELECT discord_id FROM turns WHERE kind = 'message' AND status = 'expired'"
            ).fetchall()
    except sqlite3.Error as exc:
        print(f"could not read {database}: {exc}", file=sys.stderr)
        return set()
    return {str(row[0]) for row in rows}


@dataclass
class Soak:
    """One soak run: the fakes, the server, the plugin and the pairs talking."""

    messages: int
    pairs: int
    kills: int
    rng: random.Random
    folder: Path
    faults: Faults = field(default_factory=Faults)
    killed: int = 0
    ledger: Ledger = field(default_factory=Ledger)
    discord: FaultyDiscord = field(init=False)
    openai: FaultyOpenAI = field(init=False)

    def __post_init__(self) -> None:
        self.discord = FaultyDiscord(self.rng, self.faults.discord)
        self.openai = FaultyOpenAI(self.rng, self.faults)
        self.discord.message_listeners.append(self.ledger.created)

    async def run(self, limit: float) -> tuple[Attribution, float]:
        """Run the traffic with its kills (within `limit` seconds), a last kill and restart to
        catch a late re-post, then attribute every reply; that and the seconds the traffic
        took."""
        discord, openai = self.discord, self.openai
        await discord.start()
        await openai.start()
        port, secret = free_port(), secrets.token_urlsafe(24)
        write_setup(self.folder, port, secret, discord=discord, openai=openai, pairs=self.pairs)
        server = ServerProcess(self.folder)
        link = PluginLink(f"ws://127.0.0.1:{port}", secret, self.rng)
        server.start()
        linking = asyncio.create_task(link.run())
        started = time.monotonic()
        try:
            traffic = asyncio.gather(
                *(self._talk(link, c) for c in plan(self.messages, self.pairs))
            )
            chaos = asyncio.create_task(self._kill_at_random(server, link))
            try:
                async with asyncio.timeout(limit):
                    await traffic
            except TimeoutError:
                print(f"the traffic did not finish within {limit:g} s", file=sys.stderr)
                traffic.cancel()
            took = time.monotonic() - started
            chaos.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await chaos
            await self._restart_and_settle(server, link)
        finally:
            linking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await linking
            if await server.stop() != 0:
                print("the server did not stop cleanly on SIGTERM; see its log", file=sys.stderr)
            await discord.stop()
            await openai.stop()
        return attribute(self.ledger, recorded_answers(self.folder / "soak.db")), took

    async def _talk(self, link: PluginLink, conversation: list[Message]) -> None:
        """One pair: each message after a short pause, once the previous one is answered."""
        for message in conversation:
            await asyncio.sleep(self.rng.uniform(0.0, 0.3))
            answered = self.ledger.send(message)
            await link.forward(message.frame())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answered.wait(), REPLY_WAIT)

    async def _kill_at_random(self, server: ServerProcess, link: PluginLink) -> None:
        """`kill -9` the server at random points of its first 90 % of answers, each once it has
        welcomed the plugin again, and restart it; about one kill in four comes instead 1 to 4 s
        after a restart (start-up, resending, re-queueing)."""
        span = range(1, max(2, self.messages * 9 // 10))
        points = iter(sorted(self.rng.sample(span, min(self.kills, len(span)))))
        welcomes = 0
        while self.killed < self.kills:
            if self.killed and self.rng.random() < RESTART_KILLS:
                await asyncio.sleep(self.rng.uniform(1.0, 4.0))
            else:
                point = next(points, None)
                if point is None:
                    return
                # Polled: progress and welcomes are counted, not signalled.
                while self._answered() < point or link.welcomes == welcomes:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                await asyncio.sleep(self.rng.uniform(0.0, 1.0))
            welcomes = link.welcomes
            await server.kill()
            self.killed += 1
            await asyncio.sleep(self.rng.uniform(0.0, 0.5))
            server.start()

    def _answered(self) -> int:
        return len(self.ledger.heard)

    async def _restart_and_settle(self, server: ServerProcess, link: PluginLink) -> None:
        """Kill and restart once more after the traffic, and give the new server time to
        re-post anything it wrongly thinks unsent (`LATE_REPOST_SECONDS`)."""
        await server.kill()
        server.start()
        welcomes = link.welcomes
        deadline = time.monotonic() + 30.0
        while link.welcomes == welcomes and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(LATE_REPOST_SECONDS)

    def faults_injected(self) -> Iterator[str]:
        """One line per kind of fault, with how many were injected."""
        for name, counter in (("LLM", self.openai.injected), ("Discord", self.discord.injected)):
            kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(counter.items()))
            yield f"{name} faults injected: {kinds or 'none'}"


def table(result: Tally, kills: int, seconds: float) -> str:
    """The outcome as a Markdown table."""
    head = ("sent", "answered", "duplicated", "lost", "expired", "fallback", "kills", "time")
    row = (
        result.sent,
        result.answered,
        result.duplicated,
        result.lost,
        result.expired,
        result.fallbacks,
        kills,
        f"{seconds:.1f} s",
    )
    return "\n".join(
        [
            "| " + " | ".join(head) + " |",
            "|" + "|".join("---:" for _ in head) + "|",
            "| " + " | ".join(str(value) for value in row) + " |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Run the soak; 0 when every message got exactly one reply."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--messages", type=int, default=1000, help="messages to send (1000)")
    parser.add_argument("--pairs", type=int, default=50, help="pairs talking at once (50)")
    parser.add_argument("--kills", type=int, default=10, help="kill -9 of the server (10)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--limit", type=float, default=1800.0, help="seconds at most (1800)")
    parser.add_argument("--keep", action="store_true", help="keep the folder with the server log")
    args = parser.parse_args(argv)
    if args.messages < 2 or args.pairs < 1 or args.kills < 0:
        parser.error("--messages must be 2 or more, --pairs 1 or more, --kills 0 or more")
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    logging.basicConfig(level=logging.CRITICAL)  # the fakes' own logs; the server logs to a file
    folder = Path(tempfile.mkdtemp(prefix="soak-"))
    soak = Soak(args.messages, args.pairs, args.kills, random.Random(seed), folder)
    print(
        f"soak: {args.messages} messages over {args.pairs} pairs, {args.kills} kills, "
        f"seed {seed}, server log in {folder / 'server.log'}",
        flush=True,
    )
    found, seconds = asyncio.run(soak.run(args.limit))
    result = tally(found, expired_ids(folder / "soak.db"))
    print(table(result, soak.killed, seconds))
    for line in soak.faults_injected():
        print(line)
    for problem, replies in (
        ("answer no message sent", found.unattributed),
        ("reference or quote another message than the one they answer", found.mismatched),
    ):
        if replies:
            print(f"{len(replies)} replies {problem}, e.g. {replies[0]!r}")
    clean = result.clean and not found.mismatched
    if clean and not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"server log and database kept in {folder}")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
