"""LLM backend on g4f (gpt4free): a best-effort, no-key fallback.

g4f is an optional GPLv3 extra, so it is imported only here, and only when a backend is built.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Sequence

from server.llm.base import ChatMessage, GenerationOptions, LLMError

# Longest excerpt of a provider's error message kept in an LLMError (they can be whole web pages).
MAX_DETAIL = 200


def g4f_installed() -> bool:
    """Whether the g4f package can be imported, checked without importing it."""
    return importlib.util.find_spec("g4f") is not None


class G4FBackend:
    """Chat completions through `g4f.client.AsyncClient`, bounded by `timeout` seconds.

    `provider` is a g4f provider class (or registered name); None lets g4f pick one itself.
    """

    name = "g4f"

    def __init__(
        self, *, model: str = "", provider: object | None = None, timeout: float = 60.0
    ) -> None:
        # Imported here, not at module level: g4f is an optional GPL extra and slow to import.
        import g4f.debug  # noqa: PLC0415
        from g4f.client import AsyncClient  # noqa: PLC0415

        # Otherwise g4f's first automatic provider pick starts a PyPI/GitHub version check.
        g4f.debug.version_check = False
        self.model = model
        self.timeout = timeout
        self._client = AsyncClient(provider=provider)

    def __repr__(self) -> str:
        return f"G4FBackend(model={self.model!r})"

    async def complete(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> str:
        """Ask g4f for one (non-streamed) completion; raise `LLMError` on failure or timeout."""
        extra = {} if options.temperature is None else {"temperature": options.temperature}
        try:
            request = self._client.chat.completions.create(
                messages=[{"role": m.role, "content": m.content} for m in messages],
                model=options.model or self.model,
                max_tokens=options.max_tokens,
                **extra,
            )
            response = await asyncio.wait_for(request, self.timeout)
            text = response.choices[0].message.content
        except TimeoutError:
            raise LLMError(f"{self.name}: timed out after {self.timeout} s") from None
        except Exception as err:  # g4f and its providers raise anything at all
            detail = str(err)[:MAX_DETAIL]
            raise LLMError(f"{self.name}: {type(err).__name__}: {detail}") from err
        if not isinstance(text, str) or not text.strip():
            raise LLMError(f"{self.name}: empty completion")
        return text

    async def aclose(self) -> None:
        """Nothing to release: the g4f client keeps no connections between requests."""
