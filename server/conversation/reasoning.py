"""Reasoning that must never reach Discord: `<think>…</think>` and `<thinking>…</thinking>` blocks.

Local reasoning models (DeepSeek-R1, Qwen3, QwQ …) write their reasoning into the reply itself;
it is cut here before a reply is sent or remembered. A separate `reasoning_content` field is never
read (see `openai_backend.completion_text`). Pure text in, text out.
"""

from __future__ import annotations

import re

# A closed block, anywhere, any case; `<think >` and `<think type="x">` count too.
_BLOCK = re.compile(r"<(think|thinking)(?:\s[^>]*)?>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
# An opening tag left open (a stream cut at max_tokens): everything after it is reasoning.
_OPEN = re.compile(r"<(?:think|thinking)(?:\s[^>]*)?>", re.IGNORECASE)
# A closing tag with no opening one: the chat template sent `<think>` itself (DeepSeek-R1, QwQ),
# so the reply starts inside the block.
_CLOSE = re.compile(r"</(?:think|thinking)\s*>", re.IGNORECASE)


def strip_reasoning(text: str) -> str:
    """`text` without its reasoning blocks, stripped; "" when it was only reasoning."""
    text = _BLOCK.sub("", text)
    closings = list(_CLOSE.finditer(text))
    if closings:  # reasoning whose opening tag the template wrote
        text = text[closings[-1].end() :]
    opening = _OPEN.search(text)
    if opening is not None:
        text = text[: opening.start()]
    return text.strip()
