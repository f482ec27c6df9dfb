"""The plugin messenger: the BetterDiscord plugin posts replies with Discord's own client."""

from __future__ import annotations

from typing import Any, Protocol

from server import protocol
from server.messengers.base import MessengerError
from server.protocol import Sent


class PluginLink(Protocol):
    """The gateway's side of the plugin connection, as the messenger needs it."""

    async def request(self, frame: dict[str, Any], nonce: str, timeout: float) -> Sent:
        """Send a frame and wait for the plugin's `sent` answer with `nonce`."""
        ...

    async def notify(self, frame: dict[str, Any]) -> None:
        """Send a frame if a plugin is connected; no answer expected."""
        ...


class PluginMessenger:
    """Sends through the connected plugin; needs no token and no GUI."""

    name = "plugin"

    def __init__(self, link: PluginLink, *, timeout: float = 30.0) -> None:
        self._link = link
        self._timeout = timeout

    async def send(
        self, channel_id: str, content: str, *, nonce: str, reply_to: str | None = None
    ) -> None:
        """Ask the plugin to post `content`; waits for a plugin to (re)connect up to the timeout."""
        frame = protocol.send(nonce, channel_id, content, reply_to)
        try:
            answer = await self._link.request(frame, nonce, self._timeout)
        except TimeoutError:
            raise MessengerError(
                f"channel {channel_id}: no answer from the plugin within {self._timeout:g} s "
                "(is Discord open with the plugin enabled?)"
            ) from None
        except ConnectionError as exc:
            raise MessengerError(f"channel {channel_id}: {exc}") from None
        if not answer.ok:
            reason = answer.error or "unknown error"
            raise MessengerError(f"channel {channel_id}: the plugin could not send: {reason}")

    async def typing(self, channel_id: str) -> None:
        """Ask the plugin to show the typing indicator, if one is connected."""
        await self._link.notify(protocol.typing(channel_id))

    async def aclose(self) -> None:
        """Nothing to release: the gateway owns the connection."""
