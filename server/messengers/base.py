"""The interface every messenger implements."""

from __future__ import annotations

from typing import Protocol


class MessengerError(Exception):
    """A message could not be delivered, after the messenger's own retries.

    The text names the channel and the reason, never a token.
    """


class MessengerUnavailable(MessengerError):
    """Nothing more can be delivered until the person fixes something and restarts (e.g.
    Discord refused the token): generating replies now would only spend LLM tokens."""


class Messenger(Protocol):
    """Posts one Discord-sized message (at most 2000 UTF-16 units) as the account owner.

    Implementations subclass this protocol to inherit the defaults (`available`).
    """

    name: str

    @property
    def available(self) -> bool:
        """False once the messenger can deliver nothing more (it then raises
        `MessengerUnavailable`); True by default."""
        return True

    async def send(
        self,
        channel_id: str,
        content: str,
        *,
        nonce: str,
        reply_to: str | None = None,
        deadline: float | None = None,
    ) -> None:
        """Post `content` to `channel_id`; raise `MessengerError` if it cannot be delivered.

        `nonce` identifies this part (the relay uses it to recognise the echo; a repeat with the
        same nonce never posts twice); `reply_to` is a message id to reply to, or None for a
        plain message. `deadline` (event-loop time, `loop.time()`) is the latest acceptable
        delivery: a wait that would end after it raises `MessengerError` at once instead.
        """
        ...

    async def typing(self, channel_id: str) -> None:
        """Show the typing indicator once (Discord shows it for about 10 s); best effort."""
        ...

    async def aclose(self) -> None:
        """Release connections; the messenger is not used afterwards."""
        ...
