"""The plugin's HTTP transport from Python, with the calls of a websockets connection.

For the Python tests and the bench: `send`, `recv`, `async for`, `close`, and `close_code` once
the server ended the session. It posts frames one request at a time, in order, and long-polls
for the server's numbered frames, confirming what it got with `after` as the plugin does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

POLL_WAIT_SECONDS = 20.0


class HttpClosed(Exception):
    """The server ended the session (`code`, `reason`), or refused it (`status`)."""

    def __init__(self, code: int, reason: str, status: int | None = None) -> None:
        super().__init__(f"closed {code}: {reason}" + (f" (HTTP {status})" if status else ""))
        self.code = code
        self.reason = reason
        self.status = status


def http_base(url: str) -> str:
    """`http://host:port` for the server at `ws://host:port`."""
    return "http" + url.removeprefix("ws") if url.startswith("ws") else url


class HttpConnection:
    """One HTTP session with the server, frames in and out as a websocket connection has them."""

    def __init__(
        self, http: aiohttp.ClientSession, base: str, secret: str, session: str, wait: float
    ) -> None:
        self._http = http
        self._base = base
        self._headers = {"Authorization": f"Bearer {secret}"}
        self.session = session
        self._wait = wait
        self._received: asyncio.Queue[str | HttpClosed] = asyncio.Queue()
        self._after = 0
        self._sending = asyncio.Lock()
        self.close_code: int | None = None
        self._poller = asyncio.create_task(self._poll())

    @classmethod
    async def open(
        cls,
        url: str,
        secret: str,
        *,
        wait: float = POLL_WAIT_SECONDS,
        headers: dict[str, str] | None = None,
    ) -> HttpConnection:
        """Open a session at the server of `url` (ws:// or http://); `HttpClosed` if refused."""
        http = aiohttp.ClientSession()
        base = http_base(url)
        try:
            async with http.post(
                f"{base}/plugin/open",
                headers={"Authorization": f"Bearer {secret}", **(headers or {})},
            ) as response:
                body = await response.json()
                if response.status != 200:
                    raise HttpClosed(
                        4001 if response.status == 401 else 1006, str(body), response.status
                    )
        except BaseException:
            await http.close()
            raise
        return cls(http, base, secret, str(body["session"]), wait)

    def _url(self, path: str, **query: Any) -> str:
        parameters = "&".join(f"{key}={value}" for key, value in query.items())
        return f"{self._base}/plugin/{path}?session={self.session}" + (
            f"&{parameters}" if parameters else ""
        )

    async def send(self, text: str | bytes) -> None:
        """Post one frame; `HttpClosed` if the session is gone."""
        data = text if isinstance(text, bytes) else text.encode()
        async with (
            self._sending,
            self._http.post(self._url("frames"), data=data, headers=self._headers) as response,
        ):
            if response.status != 200:
                raise HttpClosed(1006, await response.text(), response.status)

    async def _poll(self) -> None:
        try:
            while True:
                async with self._http.get(
                    self._url("poll", after=self._after, wait=self._wait), headers=self._headers
                ) as response:
                    if response.status != 200:
                        raise HttpClosed(1006, await response.text(), response.status)
                    answer = json.loads(await response.text())
                for entry in answer["frames"]:
                    if entry["seq"] > self._after:
                        self._after = entry["seq"]
                        self._received.put_nowait(json.dumps(entry["frame"]))
                if answer["closed"] is not None:
                    closed = answer["closed"]
                    raise HttpClosed(int(closed["code"]), str(closed["reason"]))
        except HttpClosed as closed:
            self.close_code = closed.code
            self._received.put_nowait(closed)
        except aiohttp.ClientError as error:
            self.close_code = 1006
            self._received.put_nowait(HttpClosed(1006, str(error)))

    async def recv(self) -> str:
        """The next frame from the server; `HttpClosed` once the session has ended."""
        item = await self._received.get()
        if isinstance(item, HttpClosed):
            self._received.put_nowait(item)
            raise item
        return item

    async def __aiter__(self) -> AsyncIterator[str]:
        with contextlib.suppress(HttpClosed):
            while True:
                yield await self.recv()

    async def close(self) -> None:
        """End the session, as the plugin does when it stops."""
        self._poller.cancel()
        with contextlib.suppress(aiohttp.ClientError):
            async with self._http.post(self._url("close"), headers=self._headers):
                pass
        await self._http.close()
