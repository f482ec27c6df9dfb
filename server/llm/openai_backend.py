"""LLM backend for OpenAI and any OpenAI-compatible server (Ollama, llama.cpp, vLLM, LM Studio)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast
from urllib.parse import urlsplit

import openai
from openai.types.chat import ChatCompletionMessageParam

from server.llm.base import ChatMessage, GenerationOptions, LLMError

OPENAI_BASE_URL = "https://api.openai.com/v1"
# Local servers ignore the key, but the SDK refuses to start without one.
PLACEHOLDER_KEY = "not-needed"
# Longest excerpt of a server's error message kept in an LLMError.
MAX_DETAIL = 200


class OpenAIBackend:
    """Chat completions over the OpenAI SDK, streamed and joined into one reply.

    `timeout` bounds each attempt's connect and each read, as the SDK does; the SDK itself retries
    connection errors, timeouts, 408, 409, 429 and 5xx up to `max_retries` times.
    """

    name = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        model: str,
        timeout: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        url = base_url or OPENAI_BASE_URL
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "openai: base_url must be an http(s) URL, e.g. http://127.0.0.1:8080/v1"
            )
        self.host = parts.netloc.rpartition("@")[2]
        if not api_key and not base_url:
            raise ValueError(f"openai ({self.host}): an API key is required")
        self.model = model
        self.timeout = timeout
        self._api_key = api_key
        self._client = openai.AsyncOpenAI(
            api_key=api_key or PLACEHOLDER_KEY,
            base_url=url,
            timeout=timeout,
            max_retries=max_retries,
        )

    def __repr__(self) -> str:
        return f"OpenAIBackend(host={self.host!r}, model={self.model!r})"

    async def complete(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> str:
        """Stream a chat completion and return its text; raise `LLMError` on any failure."""
        params = [
            cast(ChatCompletionMessageParam, {"role": m.role, "content": m.content})
            for m in messages
        ]
        parts: list[str] = []
        try:
            stream = await self._client.chat.completions.create(
                model=options.model or self.model,
                messages=params,
                max_tokens=options.max_tokens,
                temperature=openai.omit if options.temperature is None else options.temperature,
                stream=True,
            )
            async with stream:
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        parts.append(chunk.choices[0].delta.content)
        except openai.OpenAIError as err:
            # Not chained: SDK errors quote the server's body, which may echo part of the key.
            raise LLMError(f"{self.name} ({self.host}): {self._reason(err)}") from None
        except ValueError as err:  # a stream event that is not JSON: not an OpenAI-style server
            raise LLMError(f"{self.name} ({self.host}): malformed stream ({err})") from None
        text = "".join(parts)
        if not text.strip():
            raise LLMError(f"{self.name} ({self.host}): empty completion")
        return text

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections."""
        await self._client.close()

    def _reason(self, err: openai.OpenAIError) -> str:
        """A short, secret-free description of an SDK error."""
        if isinstance(err, openai.APITimeoutError):
            return f"timed out after {self.timeout} s"
        if isinstance(err, openai.APIConnectionError):
            cause = err.__cause__
            return f"connection failed: {cause or err}"
        if isinstance(err, openai.APIStatusError):
            reason = f"HTTP {err.status_code} {err.code or err.type or err.response.reason_phrase}"
            detail = err.body.get("message") if isinstance(err.body, dict) else None
            # 401/403 messages quote a masked key; leave them out entirely.
            if isinstance(detail, str) and detail and err.status_code not in (401, 403):
                reason += f": {self._scrub(detail)}"
            return reason
        return f"{type(err).__name__}: {self._scrub(str(err))}"

    def _scrub(self, text: str) -> str:
        """Cut a server-provided message short and blank out the key if it appears."""
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text[:MAX_DETAIL]
