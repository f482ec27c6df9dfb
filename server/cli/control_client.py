"""The command line's own websocket client: asks the running server something, as the owner.

It says hello with the secret and `role: "cli"`, so the server never picks it to post replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from server import __version__
from server.transport import wire

if TYPE_CHECKING:
    from server.config import Settings
    from server.config_file import OwnerSettings

CLIENT_NAME = "discord-auto-reply-cli"
CONNECT_TIMEOUT_SECONDS = 5.0


class ControlError(Exception):
    """The server could not be asked: not running, another secret, or an error answer."""


class ServerNotRunning(ControlError):
    """Nothing listens at the server's address: commands that can may work on the files."""


def _connect_host(settings: OwnerSettings | Settings) -> str:
    """The address to reach the server at on this machine (a wildcard bind: loopback)."""
    host = settings.WEBSOCKET_HOST
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def server_url(settings: OwnerSettings | Settings) -> str:
    """The websocket URL of the server these settings describe, on this machine."""
    host = _connect_host(settings)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"ws://{host}:{settings.WEBSOCKET_PORT}"


async def _check_listening(settings: OwnerSettings | Settings, url: str) -> None:
    """Raise `ServerNotRunning` when nothing accepts a connection at the server's address: known
    before the websocket client, a tenth of a second to load, is imported."""
    host = _connect_host(settings).strip("[]")
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
            _reader, writer = await asyncio.open_connection(host, settings.WEBSOCKET_PORT)
    except (OSError, TimeoutError) as exc:
        raise ServerNotRunning(
            f"no relay server at {url} ({exc or 'timed out'}): "
            "is `discord-auto-reply serve` running?"
        ) from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def ask(
    settings: OwnerSettings | Settings,
    frame: dict[str, Any],
    answered_by: Callable[[dict[str, Any]], bool],
    *,
    timeout: float,
) -> dict[str, Any]:
    """Send `frame` to the running server and return the first frame `answered_by` accepts.

    Raises `ControlError` saying what went wrong (never with the secret in it).
    """
    url = server_url(settings)
    await _check_listening(settings, url)
    from websockets.asyncio.client import connect  # noqa: PLC0415 -- only when a server runs
    from websockets.exceptions import (  # noqa: PLC0415
        ConnectionClosed,
        InvalidHandshake,
        InvalidStatus,
    )

    hello = {
        "type": "hello",
        "secret": settings.WEBSOCKET_SECRET,
        "client": CLIENT_NAME,
        "version": __version__,
        "role": "cli",
    }
    try:
        async with asyncio.timeout(timeout + CONNECT_TIMEOUT_SECONDS):
            async with connect(url, open_timeout=CONNECT_TIMEOUT_SECONDS) as connection:
                await connection.send(wire.encode(hello))
                welcome = json.loads(await connection.recv())
                if welcome.get("type") != "welcome":
                    raise ControlError(f"{url} did not welcome us: {welcome}")
                await connection.send(wire.encode(frame))
                async for text in connection:
                    answer = json.loads(text)
                    if answer.get("type") == "error":
                        raise ControlError(f"the server says: {answer.get('error')}")
                    if answered_by(answer):
                        return dict(answer)
    except TimeoutError:
        raise ControlError(f"no answer from the server at {url} in time") from None
    except ConnectionClosed as exc:
        if exc.rcvd is not None and exc.rcvd.code == wire.CLOSE_BAD_SECRET:
            raise ControlError(
                f"the server at {url} refused the secret: WEBSOCKET_SECRET in the config file "
                "is not the running server's"
            ) from None
        raise ControlError(f"the server at {url} closed the connection") from None
    except (OSError, InvalidHandshake) as exc:
        why = f"HTTP {exc.response.status_code}" if isinstance(exc, InvalidStatus) else str(exc)
        error = ServerNotRunning if isinstance(exc, OSError) else ControlError
        raise error(
            f"no relay server at {url} ({why}): is `discord-auto-reply serve` running?"
        ) from None
    raise ControlError(f"the server at {url} closed the connection without answering")
