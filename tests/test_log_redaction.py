"""The log filter: real secrets never reach a log line; placeholders and words are left alone."""

from __future__ import annotations

import json
import logging
import secrets

import pytest
from websockets.frames import Frame, Opcode

from server import log_redaction
from server.config import Settings
from server.log_redaction import REDACTED, SecretRedactor, is_redactable

DISCORD_TOKEN = "MTE4MDAwMDAwMDAwMDAwMDAx.GxYz12.abcdefghijklmnopqrstuvwxyz0123456789AB"
OPENAI_KEY = "sk-proj-4f9Qx7LmT2vB8nR1kD6wZ3yH5cJ0aE"
WEBSOCKET_SECRET = secrets.token_urlsafe(32)


def logged(caplog: pytest.LogCaptureFixture, values: list[str], message: str, *args: object) -> str:
    """What `message % args` looks like in the log with a redactor for `values` installed."""
    redactor = log_redaction.install(values, [caplog.handler])
    try:
        with caplog.at_level(logging.DEBUG, logger="test.redaction"):
            logging.getLogger("test.redaction").warning(message, *args)
    finally:
        caplog.handler.removeFilter(redactor)
    return caplog.records[-1].getMessage()


@pytest.mark.parametrize(
    "placeholder",
    ["x", "none", "ollama", "EMPTY", "dummy", "password", "changeme", "Anything", "NOTNEEDED"],
)
def test_placeholder_keys_of_local_servers_leave_log_lines_alone(
    caplog: pytest.LogCaptureFixture, placeholder: str
) -> None:
    line = (
        "extra text: none of the Ollama models fit; password reset, changeme, anything goes, "
        "EMPTY dummy NOTNEEDED x-axis xylophone"
    )
    assert logged(caplog, [placeholder], "%s", line) == line


def test_settings_with_a_placeholder_key_keep_every_letter_x(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The bug: OPENAI_API_KEY=x replaced every letter x in every log line."""
    settings = Settings(OPENAI_API_KEY="x", WEBSOCKET_SECRET=WEBSOCKET_SECRET)
    line = logged(caplog, settings.secret_values(), "LLM backends: openai (llama3.1 at box:11434)")
    assert line == "LLM backends: openai (llama3.1 at box:11434)"


# Named ids: the generated secret would make the test ids differ between pytest-xdist workers.
@pytest.mark.parametrize(
    "secret",
    [DISCORD_TOKEN, OPENAI_KEY, WEBSOCKET_SECRET, "hunter2!"],
    ids=["discord token", "openai key", "websocket secret", "a plain word"],
)
def test_real_secrets_are_redacted_wherever_they_appear(
    caplog: pytest.LogCaptureFixture, secret: str
) -> None:
    line = logged(
        caplog, [secret, "x"], "Authorization: %s; url=http://h/?k=%s&x=1", secret, secret
    )
    assert secret not in line
    assert line == f"Authorization: {REDACTED}; url=http://h/?k={REDACTED}&x=1"


def test_the_threshold_and_the_plain_word_rule() -> None:
    assert not is_redactable("sk-1234")  # 7 characters: too short
    assert is_redactable("sk-12345")
    assert is_redactable("sk-no-key-required")  # not a word: redacted, harmlessly
    assert not is_redactable("lmstudio")
    assert is_redactable("correcthorsebatterystaple")  # a passphrase, not a common word
    assert is_redactable("MySecretPass")  # mixed case inside: chosen, not a word
    assert is_redactable("Zz9" * 3)


def test_a_traceback_is_redacted_too(caplog: pytest.LogCaptureFixture) -> None:
    redactor = log_redaction.install([OPENAI_KEY], [caplog.handler])
    try:
        try:
            raise RuntimeError(f"bad key {OPENAI_KEY}")
        except RuntimeError:
            logging.getLogger("test.redaction").exception("request failed")
    finally:
        caplog.handler.removeFilter(redactor)
    assert OPENAI_KEY not in caplog.text
    assert f"bad key {REDACTED}" in caplog.text


def frame_log_line(payload: str) -> str:
    """How websockets' debug log shows a text frame (`> TEXT '…' [n bytes]`)."""
    return f"> {Frame(Opcode.TEXT, payload.encode())}"


@pytest.mark.parametrize(
    "hello",
    [
        {"type": "hello", "secret": WEBSOCKET_SECRET, "client": "DiscordAutoReply"},
        # The secret last: websockets' elision leaves only its end visible, with no key.
        {"type": "hello", "client": "DiscordAutoReply", "version": "0.1.0", "self_id": "9" * 18}
        | {"secret": WEBSOCKET_SECRET},
        # A long secret in the middle: its start before the "...", its end after it.
        {"type": "hello", "secret": WEBSOCKET_SECRET * 3, "client": "x"},
    ],
)
def test_secrets_cut_by_websockets_frame_elision_are_redacted(hello: dict[str, str]) -> None:
    line = frame_log_line(json.dumps(hello))
    assert "..." in line  # websockets really elided the middle of the frame
    redacted = SecretRedactor([hello["secret"]]).redact(line)
    for start in range(len(hello["secret"]) - 8):
        assert hello["secret"][start : start + 8] not in redacted, redacted
    assert REDACTED in redacted
    assert redacted.startswith('> TEXT \'{"type": "hello"')


def test_a_frame_without_secrets_is_unchanged() -> None:
    line = frame_log_line(json.dumps({"type": "message", "content": "a" * 200 + "...x..."}))
    assert SecretRedactor([WEBSOCKET_SECRET, "x"]).redact(line) == line
