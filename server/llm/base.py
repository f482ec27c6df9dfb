"""The interface every LLM backend implements, and the values passed through it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    """One chat turn as sent to a model; `images` (data URLs) go with it as image content parts
    to a model that takes them, and are never stored (the text holds their placeholders)."""

    role: Role
    content: str
    images: tuple[str, ...] = ()
    name: str | None = None
    """Who wrote a user turn, where several people talk (OpenAI's `name`: letters, digits, _ -)."""


@dataclass(frozen=True)
class GenerationOptions:
    """Per-request knobs; `None` means "use the backend's own default"."""

    max_tokens: int
    model: str | None = None
    temperature: float | None = None


class LLMError(Exception):
    """A backend could not produce a reply. The message says why and never holds a secret."""


class LLMBackend(Protocol):
    """Something that turns a chat into the next assistant message."""

    name: str

    async def complete(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> str:
        """Return the reply text (non-empty), or raise `LLMError`."""
        ...

    async def aclose(self) -> None:
        """Release connections; the backend is not used afterwards."""
        ...
