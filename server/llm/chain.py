"""Trying the configured LLM backends in order until one answers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from server.config import BackendName, ConfigError, Settings
from server.conversation.reasoning import strip_reasoning
from server.llm.base import ChatMessage, GenerationOptions, LLMBackend, LLMError
from server.llm.g4f_backend import G4FBackend, g4f_installed

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
        """The first backend's reply (its reasoning blocks cut, see `reasoning`) and its name;
        `LLMError` listing every failure if none. A reply that was only reasoning is a failure."""
        failures: list[str] = []
        for backend in self.backends:
            try:
                text = strip_reasoning(await backend.complete(messages, options))
                if not text:
                    raise LLMError(f"{backend.name}: answered only with reasoning, no reply")
                return Completion(text, backend.name)
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


def skip_reason(settings: Settings, name: BackendName) -> str | None:
    """Why backend `name` cannot run here (what to do about it), or None when it can."""
    if name == "openai" and not (settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL):
        return "set OPENAI_API_KEY or OPENAI_BASE_URL"
    if name == "g4f" and not g4f_installed():
        return "install it with pip install 'discord-auto-reply[g4f]'"
    return None


def build_backend(
    settings: Settings, name: BackendName, config_dir: Path | None = None
) -> LLMBackend:
    """Backend `name` as configured (check `skip_reason` first).

    `config_dir` (the folder of config.json) holds g4f's own files. Raises `ConfigError` for a
    G4F_PROVIDER that g4f does not know.
    """
    if name == "openai":
        # Imported only when configured: the openai SDK takes most of a second to load.
        from server.llm.openai_backend import OpenAIBackend  # noqa: PLC0415

        return OpenAIBackend(
            api_key=settings.OPENAI_API_KEY,
            base_url=settings.OPENAI_BASE_URL,
            model=settings.OPENAI_MODEL,
            timeout=settings.LLM_TIMEOUT_SECONDS,
            max_retries=settings.LLM_MAX_RETRIES,
        )
    try:
        return G4FBackend(
            model=settings.G4F_MODEL,
            provider=settings.G4F_PROVIDER,
            timeout=settings.LLM_TIMEOUT_SECONDS,
            config_dir=config_dir,
        )
    except ValueError as exc:
        raise ConfigError(f"G4F_PROVIDER: {exc}") from None


def build_backend_chain(settings: Settings, config_dir: Path | None = None) -> BackendChain:
    """The LLM_BACKENDS that can run here, in order; logs why any other is skipped."""
    backends: list[LLMBackend] = []
    for name in dict.fromkeys(settings.LLM_BACKENDS):
        reason = skip_reason(settings, name)
        if reason is None:
            backends.append(build_backend(settings, name, config_dir))
        else:
            log.info("LLM backend %s skipped: %s", name, reason)
    return BackendChain(backends)
