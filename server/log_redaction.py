"""A logging filter that keeps secrets out of every log line, whoever logs it."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

REDACTED = "[redacted]"
# Shorter values are placeholders that local LLM servers accept ("x", "none", "ollama", "EMPTY",
# "dummy"), not secrets, and replacing them would garble ordinary words in every line. Real
# secrets are far longer (Discord tokens ~70 characters, OpenAI keys 50+, `init`'s websocket
# secret 43), and 8 is the usual minimum for a password a person picks, so none is left out.
MIN_SECRET_LENGTH = 8
# A value that is one plain word ("password", "changeme", "Anything", "NOTNEEDED") is a
# placeholder too, and appears in ordinary text. Generated secrets mix cases, digits and
# punctuation; a single-case run of letters longer than this is a passphrase, so it is kept.
_PLAIN_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+")
MAX_PLAIN_WORD_LENGTH = 24
# websockets' debug log prints the start of each frame, so a hello can appear cut short.
_SECRET_FIELD = re.compile(r'("secret"\s*:\s*")[^"]*("|…|$)')
# websockets elides the middle of a long frame with "..."; a secret cut there is split in two.
_ELISION = re.compile(r"(\.\.\.|…)")


def is_redactable(value: str) -> bool:
    """Whether `value` is a secret worth redacting: long enough, and not a plain word."""
    if len(value) < MIN_SECRET_LENGTH:
        return False
    return not (len(value) <= MAX_PLAIN_WORD_LENGTH and _PLAIN_WORD.fullmatch(value))


def _redact_cut_secret(text: str, secret: str) -> str:
    """Redact a piece of `secret` (at least MIN_SECRET_LENGTH long) that ends right before an
    elision, or starts right after one."""
    pieces = _ELISION.split(text)  # odd indexes hold the elisions
    for index in range(1, len(pieces), 2):
        before, after = pieces[index - 1], pieces[index + 1]
        head = next((k for k in _lengths(secret) if before.endswith(secret[:k])), 0)
        if head:
            pieces[index - 1] = before[:-head] + REDACTED
        tail = next((k for k in _lengths(secret) if after.startswith(secret[-k:])), 0)
        if tail:
            pieces[index + 1] = REDACTED + after[tail:]
    return "".join(pieces)


def _lengths(secret: str) -> range:
    """Lengths of a piece of `secret` long enough to redact, longest first."""
    return range(len(secret), MIN_SECRET_LENGTH - 1, -1)


class SecretRedactor(logging.Filter):
    """Replaces each known secret, and any JSON "secret" field, with [redacted].

    Values too short or too plain to be secrets (see `is_redactable`) are left alone.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        kept = {secret for secret in secrets if is_redactable(secret)}
        self._secrets = sorted(kept, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """`text` with every secret removed."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        if _ELISION.search(text):
            for secret in self._secrets:
                text = _redact_cut_secret(text, secret)
        return _SECRET_FIELD.sub(rf"\g<1>{REDACTED}\g<2>", text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message (and traceback) in place; never drops a record."""
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


def install(secrets: Iterable[str], handlers: Iterable[logging.Handler]) -> SecretRedactor:
    """Attach one redactor to each handler (handler filters see propagated records too)."""
    redactor = SecretRedactor(secrets)
    for handler in handlers:
        handler.addFilter(redactor)
    return redactor
