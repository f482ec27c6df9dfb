"""A logging filter that keeps secrets out of every log line, whoever logs it."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

REDACTED = "[redacted]"
# websockets' debug log prints the start of each frame, so a hello can appear cut short.
_SECRET_FIELD = re.compile(r'("secret"\s*:\s*")[^"]*("|…|$)')


class SecretRedactor(logging.Filter):
    """Replaces each known secret, and any JSON "secret" field, with [redacted]."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({secret for secret in secrets if secret}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """`text` with every secret removed."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
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
