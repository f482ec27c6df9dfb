"""What waits for an answer: the messages the relay accepted (`Pending`), and the ids it has seen,
so a message the plugin sends again is dropped before it touches the database."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from server.conversation.memory import PairKey
from server.conversation.rules import Rule
from server.transport.protocol import IncomingMessage


@dataclass(frozen=True)
class Pending:
    """A message from an allow-listed pair, waiting for its answer."""

    message: IncomingMessage
    rule: Rule
    turn_id: int | None
    """Its turn in the store; None if the database could not store it."""
    accepted_at: float
    """When the relay accepted it (Unix time): its reply is due within REPLY_WITHIN_MINUTES."""

    @property
    def pair(self) -> PairKey:
        """Whose conversation it belongs to: (author, channel)."""
        return (self.message.author.id, self.message.channel)


class SeenIds:
    """The ids of recent messages, so a re-sent one is dropped before touching the database."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, message_id: str) -> bool:
        """Remember `message_id`; False if it was already seen."""
        if message_id in self._ids:
            return False
        self._ids[message_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True
