"""Fuzzing the frame parser and a live server socket: random JSON, wrong types, huge strings, deep
nesting, binary frames, every frame type a client may send, frames before hello, floods. The
server answers each frame as its type says (an `error` for what it cannot take, nothing for what
needs no answer) or closes that one connection, stays up, and its memory stays bounded while a
flood is stored and answered."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect as connect_async
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as connect_sync

from server.transport.protocol import (
    AwayRequest,
    ClientFrameType,
    DraftAction,
    Hello,
    IncomingMessage,
    ProtocolError,
    StatusRequest,
    parse_client_frame,
)
from tests.fakes.openai_api import FakeOpenAI
from tests.server_subprocess import ServerSubprocess

ROOT = Path(__file__).resolve().parent.parent
SECRET = "fuzz-websocket-secret-0123456789"
MIB = 1024 * 1024
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
LIVE_FUZZ = settings(FUZZ, max_examples=100)

# --- What a client may send ------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
strings_or_not = st.text(max_size=30) | json_values
CLIENT_TYPES = ["hello", "message", "sent", "opened", "activity", "status", "presence", "away"]
CLIENT_TYPES += ["draft_action"]
STATUSES = ["online", "idle", "dnd", "invisible", "offline"]
frame_objects = st.fixed_dictionaries(
    {"type": st.sampled_from([*CLIENT_TYPES, "ack", "welcome", "send", ""]) | json_values},
    optional={
        "id": strings_or_not,
        "channel": strings_or_not,
        "guild": strings_or_not,
        "author": st.fixed_dictionaries({}, optional={"id": strings_or_not, "bot": json_values})
        | json_values,
        "content": strings_or_not,
        "self": json_values,
        "nonce": strings_or_not,
        "ok": json_values,
        "error": strings_or_not,
        "secret": strings_or_not,
        "focused": json_values,
        "at": st.floats(allow_nan=False) | json_values,
        "status": st.sampled_from(STATUSES) | json_values,
        "mode": st.sampled_from(["on", "off", "auto"]) | json_values,
        "action": st.sampled_from(["send", "discard"]) | json_values,
        "role": st.sampled_from(["plugin", "cli"]) | json_values,
    },
)
short_ids = st.text(min_size=1, max_size=8)
# Frames of each type the server takes, valid as they are: they get past the parser, so what
# the server does with them is fuzzed too (random objects seldom are valid).
valid_frames = st.one_of(
    st.just({"type": "status"}),
    st.fixed_dictionaries({"type": st.just("presence"), "status": st.sampled_from(STATUSES)}),
    st.fixed_dictionaries(
        {"type": st.just("away")}, optional={"mode": st.sampled_from(["on", "off", "auto"])}
    ),
    st.fixed_dictionaries(
        {"type": st.just("activity"), "at": st.floats(min_value=0, max_value=4e12)}
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("draft_action"),
            "id": short_ids,
            "action": st.sampled_from(["send", "discard"]),
        },
        optional={"content": st.text(max_size=40)},
    ),
    st.fixed_dictionaries(
        {"type": st.just("opened"), "nonce": short_ids, "ok": st.booleans()}
        | {"focused": st.booleans()},
        optional={"channel": st.none() | short_ids, "error": st.text(max_size=20)},
    ),
    st.fixed_dictionaries({"type": st.just("sent"), "nonce": short_ids, "ok": st.booleans()}),
    st.fixed_dictionaries(
        {
            "type": st.just("message"),
            "id": short_ids,
            "channel": short_ids,
            "author": st.fixed_dictionaries({"id": short_ids}),
            "content": st.text(max_size=40),
        }
    ),
)
NESTED = "[" * 100_000 + "]" * 100_000
HOSTILE_TEXTS = [
    NESTED[: 2 * 100_000 - 1],  # unbalanced too
    NESTED,
    '{"type": "message", "id": ' + "[" * 5_000 + "]" * 5_000 + "}",
    '{"a": ' * 3_000 + "1" + "}" * 3_000,
    "9" * 5_000,  # more digits than Python converts
    '{"type": "message", "id": ' + "9" * 5_000 + "}",
    '{"type": "' + "🙂" * 5_000 + '"}',  # a long non-ASCII type, quoted in the error
    '{"type": "message", "id": "\\ud800", "channel": "1", "author": {"id": "2"}, "content": "x"}',
    '{"type": "hello", "secret": "\\udfff"}',
    json.dumps({"type": "message", "id": "big", "channel": "9", "author": {"id": "8"}})[:-1]
    + ', "content": "'
    + "x" * (MIB - 200)
    + '"}',  # just under the frame limit: valid, acknowledged
    "x" * (MIB + 1),  # over it: the connection is closed with 1009
    "\x00\ufeff{}",
]
wire_frames: st.SearchStrategy[str | bytes] = st.one_of(
    frame_objects.map(json.dumps),
    valid_frames.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
    st.sampled_from(HOSTILE_TEXTS),
)


# --- The parser alone ------------------------------------------------------------------------


@FUZZ
@given(wire_frames)
def test_the_parser_returns_a_frame_or_a_short_protocol_error(text: str | bytes) -> None:
    try:
        frame = parse_client_frame(text)
    except ProtocolError as exc:
        assert 0 < len(str(exc)) <= 400, str(exc)[:500]
        return
    assert frame.type in CLIENT_TYPES
    if isinstance(frame, IncomingMessage):
        assert frame.id and frame.channel and isinstance(frame.author.id, str)
    json.dumps(frame.model_dump()).encode()  # every string in it is valid Unicode


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (NESTED, "nested too deeply"),
        ('{"a": ' * 3_000 + "1" + "}" * 3_000, "nested too deeply"),
        ("9" * 5_000, "a number has too many digits"),
        ('{"type": ["hello"]}', 'a frame needs a string "type"'),
        ('{"type": "' + "z" * 1_000 + '"}', "unknown frame type 'zzzzzzzzzz"),
        ('{"type": "hello", "secret": "\\ud800"}', "unpaired surrogate"),
    ],
)
def test_hostile_json_is_a_protocol_error(text: str, expected: str) -> None:
    with pytest.raises(ProtocolError, match=expected) as caught:
        parse_client_frame(text)
    assert len(str(caught.value)) < 120


# --- A live server in its own process ---------------------------------------------------------


WATCHED_USER, WATCHED_CHANNEL = "111", "222"


class ServerProcess(ServerSubprocess):
    """`python -m server serve` on a free port, logging to a file, answering with the fake LLM
    (its own process); its RSS read from /proc, its database read with sqlite3."""

    def __init__(self, directory: Path) -> None:
        self.llm = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.openai_api"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.llm.stdout is not None
        llm_url = self.llm.stdout.readline().strip()
        config = {
            "WEBSOCKET_PORT": 0,
            "WEBSOCKET_SECRET": SECRET,
            "HELLO_TIMEOUT_SECONDS": 0.5,
            "LLM_BACKENDS": ["openai"],
            "OPENAI_BASE_URL": llm_url,
            "OPENAI_API_KEY": FakeOpenAI.API_KEY,
            "LLM_MAX_RETRIES": 0,
            "SEND_TIMEOUT_SECONDS": 1.0,
            "REPLY_WHEN": "always",
            "COALESCE_SECONDS": 0.2,
        }
        (directory / "config.json").write_text(json.dumps(config))
        rules = f'REPLY_TO = [("{WATCHED_USER}", "{WATCHED_CHANNEL}")]\n'
        (directory / "reply_config.py").write_text(rules)
        self.database = directory / "auto_reply.db"
        super().__init__(directory, [sys.executable, "-m", "server", "serve"])

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        return kib / 1024

    def assert_healthy(self) -> None:
        """Still running, never a crashed handler, and a fresh client still gets a welcome."""
        assert self.process.poll() is None, self.log()
        log = self.log()
        assert "Traceback" not in log and "connection handler failed" not in log, log[-3000:]
        with authenticated(self.url):
            pass  # `authenticated` checks the welcome

    def stored(self, user: str, channel: str) -> int:
        """How many of the pair's messages the server's database holds."""
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as db:
            query = "SELECT COUNT(*) FROM turns WHERE user_id = ? AND channel_id = ? AND kind = ?"
            count: int = db.execute(query, (user, channel, "message")).fetchone()[0]
        return count

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.llm.terminate()
        self.llm.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    running = ServerProcess(tmp_path_factory.mktemp("fuzz-server"))
    try:
        yield running
    finally:
        running.stop()


def hello() -> str:
    return json.dumps({"type": "hello", "secret": SECRET, "client": "fuzz", "version": "1"})


@contextmanager
def authenticated(url: str) -> Iterator[ClientConnection]:
    """A connection that said hello and got its welcome."""
    with connect_sync(url, open_timeout=10, close_timeout=2) as ws:
        ws.send(hello())
        welcome = json.loads(ws.recv(timeout=10))
        assert welcome["type"] == "welcome", welcome
        # A plugin is then told the away status (and any drafts): read past that greeting.
        probe_id, probe_frame = probe()
        ws.send(probe_frame)
        while json.loads(ws.recv(timeout=10)) != {"type": "ack", "id": probe_id}:
            pass
        yield ws


probe_ids = itertools.count()


def probe() -> tuple[str, str]:
    """An unwatched message: the server acknowledges it and does nothing else."""
    message_id = f"probe-{next(probe_ids)}"
    frame = {
        "type": "message",
        "id": message_id,
        "channel": "999",
        "author": {"id": "998"},
        "content": "probe",
    }
    return message_id, json.dumps(frame)


BROADCASTS = {"away_status", "summary", "draft", "watch", "send", "typing", "open_channel"}
"""Frames the server may send any plugin at any time, not in answer to one of its frames."""


def expected_answer(frame: str | bytes) -> tuple[str | None, ClientFrameType | None]:
    """The type of the one frame the server must answer `frame` with (None: no answer), and
    the frame as parsed (None if it is not one)."""
    try:
        parsed = parse_client_frame(frame)
    except ProtocolError:
        return "error", None
    if isinstance(parsed, IncomingMessage):
        return "ack", parsed
    if isinstance(parsed, Hello):
        return "error", parsed  # already authenticated
    if isinstance(parsed, StatusRequest):
        return "status", parsed
    if isinstance(parsed, AwayRequest):
        return "away_status", parsed
    if isinstance(parsed, DraftAction):
        return "draft_done", parsed
    return None, parsed  # sent, opened, activity, presence: nothing to answer


def send_authenticated(ws: ClientConnection, frame: str | bytes) -> bool:
    """Send `frame`, then a probe; check the answer is exactly what the frame's type calls for.
    False if the connection was closed."""
    expected, parsed = expected_answer(frame)
    probe_id, probe_frame = probe()
    probe_ack = {"type": "ack", "id": probe_id}
    received: list[dict[str, Any]] = []
    try:
        ws.send(frame)
        ws.send(probe_frame)
        # A draft action is answered from its own task: its answer may follow the probe's ack.
        while probe_ack not in received or (
            expected == "draft_done" and not any(r["type"] == "draft_done" for r in received)
        ):
            received.append(json.loads(ws.recv(timeout=10)))
    except ConnectionClosed as closed:
        # Only a frame over the 1 MiB limit may end an authenticated connection.
        assert closed.rcvd is not None and closed.rcvd.code == 1009, closed
        assert len(frame) > MIB
        return False
    received.remove(probe_ack)
    answers = [r for r in received if r["type"] not in BROADCASTS or r["type"] == expected]
    if expected is None:
        assert answers == [], (frame, answers)
    elif expected == "away_status":  # the answer, and the same status told every plugin
        assert 1 <= len(answers) <= 2 and {a["type"] for a in answers} == {expected}, answers
    else:
        assert [answer["type"] for answer in answers] == [expected], (frame, answers)
    if isinstance(parsed, IncomingMessage):
        assert answers[0]["id"] == parsed.id
    return True


def send_before_hello(url: str, frames: list[str | bytes]) -> None:
    """Send `frames` without a hello: the server closes the connection, saying why."""
    with connect_sync(url, open_timeout=10, close_timeout=2) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            for frame in frames:
                ws.send(frame)
            ws.recv(timeout=10)
        received = closed.value.rcvd
        assert received is not None and received.code in (4001, 4002, 1009), closed.value


def test_an_authenticated_client_gets_the_answer_its_frame_calls_for(
    server: ServerProcess,
) -> None:
    @LIVE_FUZZ
    @given(frames=st.lists(wire_frames, min_size=1, max_size=4))
    def fuzz(frames: list[str | bytes]) -> None:
        with authenticated(server.url) as ws:
            for frame in frames:
                if not send_authenticated(ws, frame):
                    break
        assert server.process.poll() is None, server.log()

    fuzz()
    server.assert_healthy()  # after this test's own fuzzing, whatever ran before


def test_anything_before_hello_closes_that_connection_only(server: ServerProcess) -> None:
    @LIVE_FUZZ
    @given(frames=st.lists(wire_frames, min_size=1, max_size=3))
    def fuzz(frames: list[str | bytes]) -> None:
        send_before_hello(server.url, frames)
        assert server.process.poll() is None, server.log()

    fuzz()
    server.assert_healthy()


@pytest.mark.parametrize("index", range(len(HOSTILE_TEXTS)))
def test_each_hostile_frame_before_and_after_hello(server: ServerProcess, index: int) -> None:
    send_before_hello(server.url, [HOSTILE_TEXTS[index]])
    with authenticated(server.url) as ws:
        send_authenticated(ws, HOSTILE_TEXTS[index])
    server.assert_healthy()


# --- Floods ----------------------------------------------------------------------------------


def flood_frames(count: int, start: int) -> list[str | bytes]:
    """Frames that each get exactly one answer: bad JSON, wrong types, binary, big messages,
    and messages from a watched person, which are stored and answered.

    A flood of 2,000 carries 16 MB of message text, more than the second flood may add below.
    """
    kinds: list[Any] = [
        "{",
        '{"type": "shout"}',
        b"\x00\x01binary",
        '{"type": "message", "id": 1}',
        "[" * 50_000,
        lambda n: json.dumps(
            {
                "type": "message",
                "id": f"f{n}",
                "channel": WATCHED_CHANNEL,
                "author": {"id": WATCHED_USER},
                "content": f"flood message {n}",
            }
        ),
        lambda n: json.dumps(
            {
                "type": "message",
                "id": f"big{n}",
                "channel": "9",
                "author": {"id": "8"},
                "content": "y" * 65_536,
            }
        ),
    ]
    frames: list[str | bytes] = []
    for n in range(start, start + count):
        kind = kinds[n % len(kinds)]
        frames.append(kind(str(n)) if callable(kind) else kind)
    return frames


async def flood(url: str, frames: list[str | bytes], replies_awaited: int = 0) -> int:
    """Send every frame as fast as the server takes them while reading every answer, and post
    the replies the server asks for (waiting for `replies_awaited` of them); returns how many
    it asked for."""
    async with connect_async(url, max_size=None) as ws:
        await ws.send(hello())
        assert json.loads(await ws.recv())["type"] == "welcome"
        probe_id, probe_frame = probe()  # read past the greeting (away status, drafts)
        await ws.send(probe_frame)
        while json.loads(await ws.recv()) != {"type": "ack", "id": probe_id}:
            pass

        async def write() -> None:
            for frame in frames:
                await ws.send(frame)

        replies = 0

        async def read() -> None:
            nonlocal replies
            answered = 0
            while answered < len(frames) or replies < replies_awaited:
                frame = json.loads(await ws.recv())
                if frame["type"] == "send":  # a reply to post: the plugin says it went out
                    replies += 1
                    await ws.send(json.dumps({"type": "sent", "nonce": frame["nonce"], "ok": True}))
                elif frame["type"] in ("ack", "error"):
                    answered += 1
                else:
                    assert frame["type"] in BROADCASTS, frame

        await asyncio.wait_for(asyncio.gather(write(), read()), timeout=120)
        return replies


async def idle_connections(url: str, count: int) -> None:
    """Open `count` connections that never say hello: each is closed by the server (4002)."""
    sockets = [await connect_async(url) for _ in range(count)]
    for ws in sockets:
        await asyncio.wait_for(ws.wait_closed(), timeout=10)
        assert ws.close_code == 4002


def test_floods_keep_the_server_up_and_its_memory_bounded(server: ServerProcess) -> None:
    stored_before = server.stored(WATCHED_USER, WATCHED_CHANNEL)
    # Warms up the caches too; its watched messages coalesce into a reply soon after it.
    replies = asyncio.run(flood(server.url, flood_frames(400, 0), replies_awaited=1))
    # The flood is what the relay does its work for: its watched messages were stored, and
    # some answered (the reply limits hold back the rest).
    stored = server.stored(WATCHED_USER, WATCHED_CHANNEL) - stored_before
    assert stored >= 400 // 7, stored
    assert replies >= 1
    # Storing and answering a watched pair costs a one-time step of about 100 MiB some seconds
    # in (the tokenizer's vocabulary, once the history is long enough to be counted): two
    # warm-up rounds reach it before measuring.
    for start in (100_000, 200_000):
        asyncio.run(flood(server.url, flood_frames(2_000, start)))
        asyncio.run(idle_connections(server.url, 50))
    before = server.rss_mib()
    asyncio.run(flood(server.url, flood_frames(2_000, 1_000)))
    asyncio.run(idle_connections(server.url, 50))
    after_first = server.rss_mib()
    asyncio.run(flood(server.url, flood_frames(2_000, 10_000)))
    asyncio.run(idle_connections(server.url, 50))
    after_second = server.rss_mib()
    # Generous bounds (a flood adds 1 to 3 MiB, then under 1): what matters is that a second
    # flood does not keep adding what it carried.
    assert after_first - before < 40, (before, after_first, after_second)
    assert after_second - after_first < 12, (before, after_first, after_second)
    server.assert_healthy()
