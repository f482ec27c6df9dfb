"""LLM backend on g4f (gpt4free): a best-effort, no-key fallback.

g4f is an optional GPLv3 extra, so it is imported only here: on the first request, or when the
backend is built with a named provider to check.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.util
import logging
import os
import threading
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from server.llm.base import ChatMessage, GenerationOptions, LLMError

log = logging.getLogger(__name__)

# Longest excerpt of a provider's error message kept in an LLMError (they can be whole web pages).
MAX_DETAIL = 200
# g4f keeps cookies, caches and usage logs in $G4F_CONFIG_DIR, read once as g4f is imported;
# without it, in ~/.g4f or ~/.config/g4f. Ours go in this folder next to config.json.
G4F_DIR_NAME = ".g4f"

T = TypeVar("T")


def g4f_installed() -> bool:
    """Whether the g4f package can be imported, checked without importing it."""
    return importlib.util.find_spec("g4f") is not None


class G4FBackend:
    """Chat completions through `g4f.client.AsyncClient`, bounded by `timeout` seconds.

    `provider` is a g4f provider class, or the name of one (several names separated by spaces
    are tried in turn); None or "" lets g4f pick one itself. `config_dir` is where g4f's own files
    go (in a `.g4f` folder), unless G4F_CONFIG_DIR is already set. Raises ValueError for a
    provider name g4f does not know.
    """

    name = "g4f"

    def __init__(
        self,
        *,
        model: str = "",
        provider: object | None = None,
        timeout: float = 60.0,
        config_dir: Path | None = None,
    ) -> None:
        if config_dir is not None:
            os.environ.setdefault("G4F_CONFIG_DIR", str(config_dir / G4F_DIR_NAME))
        self.model = model
        self.timeout = timeout
        if isinstance(provider, str):
            self.provider_name = provider.strip() or "auto"
            # A named provider is checked now, so a typo stops the start; "auto" needs no import.
            provider = _named_provider(provider) if provider.strip() else None
        else:
            self.provider_name = getattr(provider, "__name__", None) or "auto"
        self._provider = provider
        self._client: Any = None
        self._client_lock = threading.Lock()

    def _sdk_client(self) -> Any:
        """g4f's client, made on the first request (on a thread): importing g4f takes about a
        second, which `serve` should not spend before it is ready."""
        with self._client_lock:
            if self._client is None:
                import g4f.debug  # noqa: PLC0415 -- an optional GPL extra, slow to import
                from g4f.client import AsyncClient  # noqa: PLC0415

                # Otherwise g4f's first automatic provider pick starts a PyPI/GitHub version check.
                g4f.debug.version_check = False
                self._client = AsyncClient(provider=self._provider)
            return self._client

    def __repr__(self) -> str:
        return f"G4FBackend(provider={self.provider_name!r}, model={self.model!r})"

    async def complete(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> str:
        """Ask g4f for one (non-streamed) completion; raise `LLMError` on failure or timeout.

        The request runs on a thread of its own (see `run_in_own_thread`): several g4f providers
        make blocking calls inside their async code, which would otherwise stall the relay.
        """
        where = f"{self.name} ({self.provider_name})"
        try:
            await asyncio.to_thread(self._sdk_client)  # loading g4f is not part of the timeout
        except Exception as err:  # a broken install: named like any other failure
            raise LLMError(f"{where}: cannot load g4f: {type(err).__name__}: {err}") from err
        try:
            text, provider = await asyncio.wait_for(
                run_in_own_thread(self._ask(messages, options)), self.timeout
            )
        except TimeoutError:
            raise LLMError(f"{where}: timed out after {self.timeout} s") from None
        except Exception as err:  # g4f and its providers raise anything at all
            detail = " ".join(str(err).split())[:MAX_DETAIL]
            raise LLMError(f"{where}: {type(err).__name__}: {detail}") from err
        if not isinstance(text, str) or not text.strip():
            raise LLMError(f"{where}: empty completion")
        log.debug("g4f answered through provider %s", provider)
        return text

    async def _ask(
        self, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> tuple[object, object]:
        """The g4f request itself: the reply's content and the provider that answered."""
        extra = {} if options.temperature is None else {"temperature": options.temperature}
        response = await self._sdk_client().chat.completions.create(
            messages=[{"role": m.role, "content": m.content} for m in messages],
            model=options.model or self.model,
            max_tokens=options.max_tokens,
            **extra,
        )
        return response.choices[0].message.content, getattr(response, "provider", "?")

    async def aclose(self) -> None:
        """Nothing to release: the g4f client keeps no connections between requests."""


def _named_provider(names: str) -> object:
    """The g4f provider for `names` (several, separated by spaces, are tried in turn); raises
    ValueError naming one g4f does not know."""
    import g4f.debug  # noqa: PLC0415 -- an optional GPL extra, slow to import
    from g4f.client.service import convert_to_provider  # noqa: PLC0415
    from g4f.errors import ProviderNotFoundError  # noqa: PLC0415

    g4f.debug.version_check = False
    for name in names.split():  # g4f itself skips unknown names in a list silently
        try:
            convert_to_provider(name)
        except ProviderNotFoundError:
            raise ValueError(f"g4f has no provider named {name!r}") from None
    return convert_to_provider(names.strip())


async def run_in_own_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Await `coro` on a new event loop in a daemon thread, so blocking calls in it stall only it.

    Cancelling the caller (a timeout, a shutdown) returns at once and cancels `coro` on its loop;
    a blocking call there finishes in the background, then the thread cleans up and ends. The
    thread is a daemon outside any executor, so neither the caller's loop nor the process waits.
    """
    worker = asyncio.new_event_loop()
    task = worker.create_task(coro)  # allowed from this thread: the loop is not running yet
    outcome: concurrent.futures.Future[T] = concurrent.futures.Future()

    def serve() -> None:
        with asyncio.Runner(loop_factory=lambda: worker) as runner:
            runner.run(asyncio.wait([task]))
            if outcome.set_running_or_notify_cancel():  # False: the caller has gone
                try:
                    outcome.set_result(task.result())
                except BaseException as err:  # what coro raised, passed on to the caller
                    outcome.set_exception(err)

    threading.Thread(target=serve, name="g4f-request", daemon=True).start()
    try:
        return await asyncio.wrap_future(outcome)
    except asyncio.CancelledError:
        with contextlib.suppress(RuntimeError):  # the worker loop has closed: coro is done
            worker.call_soon_threadsafe(task.cancel)
        raise
