"""The plugin messenger: the BetterDiscord plugin posts replies with Discord's own client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from server.messengers.base import Messenger, MessengerError
from server.transport import protocol
from server.transport.protocol import Sent

log = logging.getLogger(__name__)

# After the plugin disconnects mid-send: a pause before asking again, so that a connection
# that is closing is not asked in a busy loop.
RESEND_PAUSE_SECONDS = 0.05


class PluginLink(Protocol):
    """The gateway's side of the plugin connection, as the messenger needs it."""

    async def request(self, frame: dict[str, Any], nonce: str, timeout: float) -> Sent:
        """Send a frame and wait for the plugin's `sent` answer with `nonce`."""
        ...

    async def notify(self, frame: dict[str, Any]) -> None:
        """Send a frame if a plugin is connected; no answer expected."""
        ...


class PluginMessenger(Messenger):
    """Sends through the connected plugin; needs no token and no GUI."""

    name = "plugin"

    def __init__(
        self,
        link: PluginLink,
        *,
        timeout: float = 30.0,
        echoed: Callable[[str], bool] = lambda nonce: False,
    ) -> None:
        self._link = link
        self._timeout = timeout
        self._echoed = echoed

    async def send(
        self,
        channel_id: str,
        content: str,
        *,
        nonce: str,
        reply_to: str | None = None,
        deadline: float | None = None,
    ) -> None:
        """Ask the plugin to post `content`; waits for a plugin to (re)connect up to the timeout.

        If the plugin disconnects before answering, the same frame (same nonce) goes again to
        the next plugin connected within the timeout: the plugin answers a nonce it has already
        posted without posting it twice. Unless `echoed(nonce)` says the post's echo already
        came back (from that plugin or another Discord client): then it is delivered, and a
        plugin that never saw the nonce is not asked to post it again. `deadline` (loop time)
        shortens the timeout.
        """
        loop = asyncio.get_running_loop()
        timeout_at = loop.time() + self._timeout
        give_up_at = timeout_at if deadline is None else min(timeout_at, deadline)
        frame = protocol.send(nonce, channel_id, content, reply_to)
        disconnected: ConnectionError | None = None
        while (remaining := give_up_at - loop.time()) > 0:
            try:
                answer = await self._link.request(frame, nonce, remaining)
            except TimeoutError:
                break
            except ConnectionError as exc:
                disconnected = exc
                await asyncio.sleep(RESEND_PAUSE_SECONDS)
                if self._echoed(nonce):
                    log.info("channel %s: %s, but its echo shows the reply posted", channel_id, exc)
                    return
                log.info("channel %s: %s; asking again once a plugin is connected", channel_id, exc)
                continue
            if not answer.ok:
                reason = answer.error or "unknown error"
                raise MessengerError(f"channel {channel_id}: the plugin could not send: {reason}")
            return
        waited = f"{self._timeout:g} s" if give_up_at == timeout_at else "the reply's deadline"
        why = f"no answer from the plugin within {waited}"
        if disconnected is not None:
            why = f"{disconnected}, and no plugin answered within {waited}"
        raise MessengerError(
            f"channel {channel_id}: {why} (is Discord open with the plugin enabled?)"
        )

    async def typing(self, channel_id: str) -> None:
        """Ask the plugin to show the typing indicator, if one is connected."""
        await self._link.notify(protocol.typing(channel_id))

    async def aclose(self) -> None:
        """Nothing to release: the gateway owns the connection."""
