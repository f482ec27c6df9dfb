"""The secret never reaches the log of a real `serve -vv`, whatever clients send.

End to end, as a person runs it: the redaction is wired by the command line itself (no filter
installed by the test), and clients present the right secret, an unrelated wrong one, and
frames cut short. The log must hold neither secret, nor a telling piece of either.

Which frames reach the log depends on the transport (websockets' own debug log prints the start
of each one at -vv; another server library may print none), so the server also runs with a
probe that logs every frame the server parses as websockets' log shows it, elisions included:
whatever a library logs, the redaction wired by `serve` must catch it.
"""

from __future__ import annotations

import json
import secrets
import signal
import sys
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.server_subprocess import ServerSubprocess

ROOT = Path(__file__).resolve().parent.parent
PIECE = 12
"""Characters of a secret that would tell too much if logged together."""
FRAME_PROBE = """
import logging, sys
from websockets.frames import Frame, Opcode
from server.cli.main import main
from server.transport import protocol

parse = protocol.parse_client_frame

def logged_parse(text):
    data = text.encode() if isinstance(text, str) else text
    logging.getLogger("server.probe").debug("< %s", Frame(Opcode.TEXT, data))
    return parse(text)

protocol.parse_client_frame = logged_parse
sys.exit(main(["serve", "-vv"]))
"""
"""`serve -vv`, logging each frame it parses at debug level as websockets' own log does."""

pytestmark = pytest.mark.posix


def hello(secret: str, **fields: str) -> str:
    return json.dumps({"type": "hello", "secret": secret, "client": "DiscordAutoReply", **fields})


def hello_with_the_secret_last(secret: str) -> str:
    """Long enough for websockets to elide the middle of the frame in its log: only the end of
    the secret is left, with no "secret" key before it."""
    fields = {
        "type": "hello",
        "client": "DiscordAutoReply",
        "version": "0.1.0",
        "self_id": "9" * 18,
    }
    return json.dumps({**fields, "secret": secret})


class Served(ServerSubprocess):
    """`python -m server serve -vv` with its log in a file, until `stop`."""

    def __init__(self, directory: Path, secret: str, *, probe: bool) -> None:
        config = {
            "WEBSOCKET_PORT": 0,
            "WEBSOCKET_SECRET": secret,
            "HELLO_TIMEOUT_SECONDS": 1.0,
            "LLM_BACKENDS": ["openai"],
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
            "LLM_MAX_RETRIES": 0,
        }
        (directory / "config.json").write_text(json.dumps(config))
        (directory / "reply_config.py").write_text('REPLY_TO = [("111", "222")]\n')
        command = (
            [sys.executable, "-c", FRAME_PROBE]
            if probe
            else [sys.executable, "-m", "server", "serve", "-vv"]
        )
        super().__init__(directory, command, "serve.log")

    def stop(self) -> str:
        """SIGTERM, wait, and return the whole log."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=15)
        return self.log()


@pytest.fixture(params=["serve -vv", "serve -vv with a frame probe"])
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Served, str]]:
    secret = secrets.token_urlsafe(32)
    server = Served(tmp_path, secret, probe="probe" in request.param)
    try:
        yield server, secret
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)


def present(url: str, frame: str) -> str:
    """Send `frame` as the first frame; return the server's answer: its first frame, or how it
    closed the connection."""
    with connect(url, open_timeout=5, close_timeout=2) as ws:
        ws.send(frame)
        try:
            answer = ws.recv(timeout=5)
        except ConnectionClosed as closed:
            return f"closed {closed.rcvd.code if closed.rcvd else None}"
        return str(answer)


def pieces(secret: str) -> list[str]:
    return [secret[start : start + PIECE] for start in range(len(secret) - PIECE + 1)]


def test_the_secret_is_never_logged_by_serve_vv_nor_a_wrong_one_whole(
    served: tuple[Served, str],
) -> None:
    server, secret = served
    wrong = secrets.token_urlsafe(32)  # unrelated to the right one: no common piece
    assert not set(pieces(secret)) & set(pieces(wrong))

    welcomed = present(server.url, hello(secret))
    assert json.loads(welcomed)["type"] == "welcome"
    assert json.loads(present(server.url, hello_with_the_secret_last(secret)))["type"] == "welcome"
    assert present(server.url, hello(wrong)).startswith("closed 4")
    assert present(server.url, hello_with_the_secret_last(wrong)).startswith("closed 4")
    for cut_short in (
        f'{{"type": "hello", "secret": "{secret[:30]}',
        f'{{"type": "hello", "secret": "{secret}',
        f'{{"type": "hello", "secret": "{wrong}',
        f'{{"type": "hello", "client": "x", "secret": "{wrong}"',
    ):
        assert present(server.url, cut_short).startswith("closed 4")
    with suppress(ConnectionClosed), connect(server.url) as ws:
        ws.send(hello(secret))
        ws.recv(timeout=5)
        ws.send(json.dumps({"type": "message", "secret": wrong, "id": "1"})[:-3])  # cut short
        ws.recv(timeout=5)
    log = server.stop()

    if server.process.args[1] == "-c":
        assert "server.probe: < TEXT" in log, log  # the frames were logged, so redacted
        assert "[redacted]" in log
    assert secret not in log
    leaked = [piece for piece in pieces(secret) if piece in log]
    assert not leaked, leaked
    # A wrong secret is not known to the redaction: a "secret" field is masked wherever its key
    # shows, so it is never logged whole (the end of a long frame, after websockets' elision,
    # may still show its last characters).
    assert wrong not in log
