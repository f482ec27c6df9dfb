"""Trying the configured LLM backends in order until one answers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from server.config import Settings
from server.llm.base import ChatMessage, GenerationOptions, LLMBackend, LLMError
from server.llm.g4f_backend import G4FBackend, g4f_installed
from server.llm.openai_backend import OpenAIBackend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Completion:
    """A reply and the name of the backend that wrote it."""

    text: str
    backend: str


class BackendChain:
    """An `LLMBackend` that asks each backend in turn and returns the first reply."""

    name = "chain"

    def __init__(self, backends: Sequence[LLMBackend]) -> None:
        self.backends = list(backends)

    @property
    def names(self) -> list[str]:
        """The backends in the order they are tried."""
        return [backend.name for backend in self.backends]

    async def complete(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> str:
        """The first backend's reply; `LLMError` listing every failure if none answers."""
        return (await self.answer(messages, options)).text

    async def answer(
        self, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> Completion:
        """The first backend's reply and its name; `LLMError` listing every failure if none."""
        failures: list[str] = []
        for backend in self.backends:
            try:
                return Completion(await backend.complete(messages, options), backend.name)
            except LLMError as exc:
                log.warning("LLM backend %s failed: %s", backend.name, exc)
                failures.append(str(exc))
        if not failures:
            raise LLMError("no LLM backend is configured (see LLM_BACKENDS)")
        raise LLMError("every LLM backend failed: " + "; ".join(failures))

    async def aclose(self) -> None:
        """Close every backend."""
        for backend in self.backends:
            await backend.aclose()


def build_backend_chain(settings: Settings) -> BackendChain:
    """The LLM_BACKENDS that can run here, in order; logs why any other is skipped."""
    backends: list[LLMBackend] = []
    for name in dict.fromkeys(settings.LLM_BACKENDS):
        if name == "openai":
            if not (settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL):
                log.info("LLM backend openai skipped: set OPENAI_API_KEY or OPENAI_BASE_URL")
                continue
            backends.append(
                OpenAIBackend(
                    api_key=settings.OPENAI_API_KEY,
                    base_url=settings.OPENAI_BASE_URL,
                    model=settings.OPENAI_MODEL,
                    timeout=settings.LLM_TIMEOUT_SECONDS,
                    max_retries=settings.LLM_MAX_RETRIES,
                )
            )
        else:
            if not g4f_installed():
                log.info(
                    "LLM backend g4f skipped: install it with pip install 'discord-auto-reply[g4f]'"
                )
                continue
            backends.append(
                G4FBackend(model=settings.G4F_MODEL, timeout=settings.LLM_TIMEOUT_SECONDS)
            )
    return BackendChain(backends)
