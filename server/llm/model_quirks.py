"""What each model accepts, and what a server's refusal teaches us about it.

Pure decisions for the OpenAI-compatible backend: a table of known model families, the lesson
drawn from an error body (OpenAI's `unsupported_parameter`/`unsupported_value`, vLLM's and
llama.cpp's chat-template errors), and the shape of the next request. No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from server.llm.base import ChatMessage, GenerationOptions

TokenParam = Literal["max_tokens", "max_completion_tokens"]


@dataclass(frozen=True)
class ModelQuirks:
    """How to ask one model: which completion-limit parameter, and what it refuses."""

    token_param: TokenParam = "max_tokens"
    temperature: bool = True
    stream: bool = True
    system_role: bool = True
    images: bool = True
    """False once the model refused image content parts: the text placeholders must do."""


# OpenAI's reasoning models (o-series, gpt-5 family) take `max_completion_tokens` and only their
# default temperature; o1-mini and o1-preview also refuse the system role. First match wins.
_REASONING = ModelQuirks(token_param="max_completion_tokens", temperature=False)
KNOWN_MODELS: tuple[tuple[str, ModelQuirks], ...] = (
    ("o1-mini", replace(_REASONING, system_role=False)),
    ("o1-preview", replace(_REASONING, system_role=False)),
    ("o1", _REASONING),
    ("o3", _REASONING),
    ("o4", _REASONING),
    ("gpt-5-chat", ModelQuirks(token_param="max_completion_tokens")),
    ("gpt-5", _REASONING),
)


# Model families that take images, by a part of their name (`llama3.2-vision:11b`, `gemma3:4b`,
# `Qwen/Qwen2.5-VL-7B-Instruct` …). Mini reasoning models of OpenAI's o-series take text only.
VISION_NAMES = (
    "gpt-4o",
    "gpt-4.1",
    "gpt-4-turbo",
    "gpt-4-vision",
    "gpt-5",
    "chatgpt-4o",
    "gemma-3",
    "gemma3",
    "llama-3.2-vision",
    "llama3.2-vision",
    "llama-4",
    "llama4",
    "qwen-vl",
    "qwen2-vl",
    "qwen2.5-vl",
    "qwen2.5vl",
    "qwen3-vl",
    "llava",
    "bakllava",
    "pixtral",
    "minicpm-v",
    "moondream",
    "claude-3",
    "claude-sonnet-4",
    "claude-opus-4",
    "gemini",
)
_VISION_REASONING = re.compile(r"^(o1|o3|o4-mini)(-\d|$)")


def takes_images(model: str) -> bool:
    """Whether a model is known by name to take images (VISION "auto")."""
    name = model.rsplit("/", 1)[-1].lower()
    return any(part in name for part in VISION_NAMES) or bool(_VISION_REASONING.match(name))


def known_quirks(model: str) -> ModelQuirks:
    """The quirks of a known model family by name prefix (`openai/o3` counts as `o3`)."""
    name = model.rsplit("/", 1)[-1].lower()
    for prefix, quirks in KNOWN_MODELS:
        if name.startswith(prefix):
            return quirks
    return ModelQuirks()


@dataclass(frozen=True)
class Rejection:
    """A server's error answer, reduced to what can teach us something."""

    status: int
    message: str = ""
    param: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class Lesson:
    """Quirks to retry with, and a few words on what changed (for the log)."""

    quirks: ModelQuirks
    what: str


_UNSUPPORTED = re.compile(r"unsupported|not supported|does not support|unrecognized", re.I)
_STREAM_REFUSED = re.compile(
    r"\bstream(ing)?\b.*(not supported|unsupported|does not support|must be verified)"
    r"|(not supported|unsupported|cannot|can't).*\bstream(ing)?\b",
    re.I,
)
# Chat templates (Gemma, Mistral) that raise when they meet a system message: vLLM and
# llama.cpp --jinja pass the template's own words through, with HTTP 400 or 500.
_SYSTEM_REFUSED = re.compile(
    r"system role not supported|system (role|message)s? (is |are )?not supported"
    r"|only user and assistant roles|roles must alternate",
    re.I,
)
_ROLE_PARAM = re.compile(r"^messages\[\d+\]\.role$")
# How servers refuse image parts for a text-only model: OpenAI ("image_url is only supported by
# certain models"), vLLM ("is not a multimodal model"), llama.cpp ("image input is not
# supported"), Ollama and others ("does not support images", "vision is not supported").
_IMAGES_REFUSED = re.compile(
    r"image_url is only supported|not a multimodal model|image input is not supported"
    r"|(does not|doesn't) support (image|vision)|images? (is|are) not supported"
    r"|vision is not supported|multimodal.*not supported|image.*not supported",
    re.I,
)
_TEMPLATE_STATUSES = frozenset({400, 422, 500})


def learn(
    quirks: ModelQuirks, rejection: Rejection, *, sends_images: bool = False
) -> Lesson | None:
    """What `rejection` teaches about a model asked with `quirks` (a request with images if
    `sends_images`); None when nothing changes.

    A lesson only ever removes something the request sent (or swaps the token parameter), so
    retrying with it cannot loop on the same error.
    """
    message, param = rejection.message, rejection.param or ""
    images_refused = _IMAGES_REFUSED.search(message) or (
        param.endswith(".type") and "image" in message
    )
    if rejection.status in _TEMPLATE_STATUSES and quirks.images and sends_images and images_refused:
        return Lesson(replace(quirks, images=False), "does not take images")
    if rejection.status in _TEMPLATE_STATUSES and quirks.system_role:
        role_param = bool(_ROLE_PARAM.match(param)) and "'system'" in message
        if role_param or _SYSTEM_REFUSED.search(message):
            return Lesson(replace(quirks, system_role=False), "refuses the system role")
    unsupported = rejection.code in ("unsupported_parameter", "unsupported_value")
    if rejection.status not in (400, 422) or not (unsupported or _UNSUPPORTED.search(message)):
        return None
    named = param or _quoted_parameter(message)
    if named == "max_tokens" and quirks.token_param == "max_tokens":
        return Lesson(
            replace(quirks, token_param="max_completion_tokens"),
            "wants max_completion_tokens instead of max_tokens",
        )
    if named == "max_completion_tokens" and quirks.token_param == "max_completion_tokens":
        return Lesson(
            replace(quirks, token_param="max_tokens"),
            "wants max_tokens instead of max_completion_tokens",
        )
    if named == "temperature" and quirks.temperature:
        return Lesson(replace(quirks, temperature=False), "accepts only its default temperature")
    if quirks.stream and (named == "stream" or _STREAM_REFUSED.search(message)):
        return Lesson(replace(quirks, stream=False), "cannot stream")
    return None


def learn_from_broken_stream(quirks: ModelQuirks) -> Lesson | None:
    """A stream that was malformed or carried no chunk at all: ask without streaming."""
    if not quirks.stream:
        return None
    return Lesson(replace(quirks, stream=False), "streams badly")


def _quoted_parameter(message: str) -> str | None:
    """The parameter an error message names: `'max_tokens'` or `argument supplied: x`."""
    found = re.search(r"'([a-z_]+)'|argument supplied: ([a-z_]+)", message)
    if found is None:
        return None
    return found.group(1) or found.group(2)


@dataclass(frozen=True)
class RequestShape:
    """The parts of a chat request that depend on the model's quirks; None = leave it out."""

    messages: list[ChatMessage]
    stream: bool
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None


def shape_request(
    messages: Sequence[ChatMessage], options: GenerationOptions, quirks: ModelQuirks
) -> RequestShape:
    """The request to send to a model with `quirks`."""
    by_name = quirks.token_param == "max_tokens"
    if not quirks.images:
        messages = [replace(m, images=()) if m.images else m for m in messages]
    return RequestShape(
        messages=list(messages) if quirks.system_role else fold_system_prompt(messages),
        stream=quirks.stream,
        max_tokens=options.max_tokens if by_name else None,
        max_completion_tokens=None if by_name else options.max_tokens,
        temperature=options.temperature if quirks.temperature else None,
    )


def fold_system_prompt(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Move the system turns into the start of the first user turn (for templates without one)."""
    persona = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    rest = [m for m in messages if m.role != "system"]
    if not persona:
        return rest
    first_user = next((i for i, m in enumerate(rest) if m.role == "user"), None)
    if first_user is None or first_user > 0:
        return [ChatMessage("user", persona), *rest]
    folded = replace(rest[0], content=f"{persona}\n\n{rest[0].content}")
    return [folded, *rest[1:]]
