"""The interface every messenger implements."""

from __future__ import annotations

from typing import Protocol


class MessengerError(Exception):
    """A message could not be delivered, after the messenger's own retries.

    The text names the channel and the reason, never a token.
    """


class Messenger(Protocol):
    """Posts one Discord-sized message (at most 2000 characters) as the account owner."""

    name: str

    async def send(
        self, channel_id: str, content: str, *, nonce: str, reply_to: str | None = None
    ) -> None:
        """Post `content` to `channel_id`; raise `MessengerError` if it cannot be delivered.

        `nonce` identifies this part (the relay uses it to recognise the echo); `reply_to` is a
        message id to reply to, or None for a plain message.
        """
        ...

    async def typing(self, channel_id: str) -> None:
        """Show the typing indicator once (Discord shows it for about 10 s); best effort."""
        ...

    async def aclose(self) -> None:
        """Release connections; the messenger is not used afterwards."""
        ...
