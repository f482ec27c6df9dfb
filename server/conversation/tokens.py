"""Counting tokens the way the model does, offline: bpe-openai ships the vocabularies it needs."""

from __future__ import annotations

import logging
import math
from typing import Protocol

log = logging.getLogger(__name__)

DEFAULT_ENCODING = "o200k_base"
"""Used for models bpe-openai does not know (local models, newer OpenAI ones)."""
TOKENS_PER_MESSAGE = 4
"""What the chat format adds around each message (role and separators)."""


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


def token_ceiling(text: str) -> int:
    """At most how many tokens `text` is, without an encoding: its UTF-8 bytes. Every token of
    a byte-level BPE covers at least one byte, and the estimate counts 4 bytes as one."""
    return len(text.encode("utf-8"))


def estimate_tokens(text: str) -> int:
    """The fallback when no encoding can be loaded: one token per 4 bytes of UTF-8, rounded up."""
    return math.ceil(len(text.encode("utf-8")) / 4)


class TokenCounter:
    """Counts tokens with each model's encoding, loaded once; estimates if none can be loaded.

    Loading is slow (about a second) and costly (bpe-openai's extension and the vocabularies hold
    about 140 MiB), so callers that can do without counting (see `token_ceiling`) should, and load
    the encoding off the event loop (`load` in a thread) before they `count`.
    """

    def __init__(self) -> None:
        self._encodings: dict[str, _Encoding | None] = {}
        self._warned = False

    def count(self, text: str, model: str) -> int:
        """Tokens in `text` for `model`."""
        encoding = self._encodings[model] if model in self._encodings else self.load(model)
        if encoding is None:
            return estimate_tokens(text)
        # Ordinary: text that spells a special token ("<|endoftext|>") is plain text to the API,
        # and `encode` would raise on it.
        return len(encoding.encode_ordinary(text))

    def loaded(self, model: str) -> bool:
        """Whether `model`'s encoding was loaded (or found missing), so `count` is quick."""
        return model in self._encodings

    def load(self, model: str) -> _Encoding | None:
        """Load `model`'s encoding if it was not yet; None when it cannot be loaded."""
        if model in self._encodings:
            return self._encodings[model]
        encoding: _Encoding | None
        try:
            import bpe_openai  # noqa: PLC0415 (loads vocabularies: only when first needed)

            try:
                name = bpe_openai.encoding_name_for_model(model)
            except KeyError:
                name = DEFAULT_ENCODING
            encoding = bpe_openai.get_encoding(name)
        except Exception as exc:  # any failure must only cost precision, never a reply
            if not self._warned:
                log.warning(
                    "cannot load a token encoding (%s); estimating 4 bytes of text per token",
                    exc,
                )
                self._warned = True
            encoding = None
        self._encodings[model] = encoding
        return encoding
