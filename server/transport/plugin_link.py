"""One connected client of the gateway, whatever carries its frames (a WebSocket or HTTP polls)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

TransportName = Literal["websocket", "http"]


class LinkClosed(Exception):
    """The link is closed: nothing more can be sent or received on it."""


class PluginLink(ABC):
    """What the gateway needs of a client: frames in order both ways, a peer name, a close.

    `send` never waits: it queues the frame behind the ones before it, or raises `LinkClosed`.
    `recv` waits for the next frame from the client, or raises `LinkClosed` once it is gone.
    """

    transport: ClassVar[TransportName]

    def __init__(self, peer: str) -> None:
        self.peer = peer

    @abstractmethod
    def send(self, text: str) -> None:
        """Queue one frame for the client; raises `LinkClosed` if the link is closed."""

    @abstractmethod
    async def recv(self) -> str | bytes:
        """The next frame from the client; raises `LinkClosed` when there will be none."""

    @abstractmethod
    async def close(self, code: int, reason: str) -> None:
        """Close the link with a WebSocket close code and a short reason the client is told."""

    @property
    @abstractmethod
    def closed(self) -> bool:
        """Whether the link is closed (by either side)."""
