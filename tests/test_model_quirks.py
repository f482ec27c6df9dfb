"""The pure decisions of `model_quirks`: known models, lessons from error bodies, shapes."""

from __future__ import annotations

import pytest

from server.llm.base import ChatMessage, GenerationOptions
from server.llm.model_quirks import (
    ModelQuirks,
    Rejection,
    fold_system_prompt,
    known_quirks,
    learn,
    learn_from_broken_stream,
    shape_request,
)

PLAIN = ModelQuirks()
REASONING = ModelQuirks(token_param="max_completion_tokens", temperature=False)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o-mini", PLAIN),
        ("gpt-4.1", PLAIN),
        ("llama3.1", PLAIN),
        ("gpt-oss-20b", PLAIN),
        ("o1", REASONING),
        ("o3-mini-2025-01-31", REASONING),
        ("o4-mini", REASONING),
        ("openai/o3", REASONING),
        ("GPT-5", REASONING),
        ("gpt-5-nano", REASONING),
        ("gpt-5.4-mini", REASONING),
        ("gpt-5-chat-latest", ModelQuirks(token_param="max_completion_tokens")),
        ("o1-mini", ModelQuirks("max_completion_tokens", temperature=False, system_role=False)),
        ("o1-preview-2024-09-12", ModelQuirks("max_completion_tokens", False, True, False)),
    ],
)
def test_known_model_families(model: str, expected: ModelQuirks) -> None:
    assert known_quirks(model) == expected


# Error bodies as OpenAI, vLLM and llama.cpp send them (the SDK hands over the inner object).
MAX_TOKENS = Rejection(
    400,
    "Unsupported parameter: 'max_tokens' is not supported with this model. "
    "Use 'max_completion_tokens' instead.",
    "max_tokens",
    "unsupported_parameter",
)
TEMPERATURE_VALUE = Rejection(
    400,
    "Unsupported value: 'temperature' does not support 0.7 with this model. "
    "Only the default (1) value is supported.",
    "temperature",
    "unsupported_value",
)
TEMPERATURE_PARAMETER = Rejection(
    400,
    "Unsupported parameter: 'temperature' is not supported with this model.",
    "temperature",
    "unsupported_parameter",
)
STREAM = Rejection(
    400,
    "Unsupported value: 'stream' does not support true with this model. "
    "Supported values are: false.",
    "stream",
    "unsupported_value",
)
STREAM_UNVERIFIED = Rejection(
    400,
    "Your organization must be verified to stream this model. Please go to: "
    "https://platform.openai.com/settings/organization/general and click on Verify Organization.",
    "stream",
    "unsupported_value",
)
SYSTEM_OPENAI = Rejection(
    400,
    "Unsupported value: 'messages[0].role' does not support 'system' with this model.",
    "messages[0].role",
    "unsupported_value",
)
SYSTEM_VLLM = Rejection(400, "System role not supported", None, "400")
SYSTEM_LLAMA_CPP = Rejection(
    500,
    "\n------------\nWhile executing CallExpression at line 2, column 30 in source:\n...\n"
    "Error: Jinja Exception: System role not supported",
    None,
    "500",
)
SYSTEM_LM_STUDIO = Rejection(400, "Only user and assistant roles are supported!")
SYSTEM_MISTRAL = Rejection(
    400, "Conversation roles must alternate user/assistant/user/assistant/..."
)
OLD_SERVER = Rejection(400, "Unrecognized request argument supplied: max_completion_tokens")


@pytest.mark.parametrize(
    ("quirks", "rejection", "expected", "what"),
    [
        (PLAIN, MAX_TOKENS, ModelQuirks(token_param="max_completion_tokens"), "wants max_comp"),
        (PLAIN, TEMPERATURE_VALUE, ModelQuirks(temperature=False), "default temperature"),
        (PLAIN, TEMPERATURE_PARAMETER, ModelQuirks(temperature=False), "default temperature"),
        (PLAIN, STREAM, ModelQuirks(stream=False), "cannot stream"),
        (PLAIN, STREAM_UNVERIFIED, ModelQuirks(stream=False), "cannot stream"),
        (PLAIN, SYSTEM_OPENAI, ModelQuirks(system_role=False), "system role"),
        (PLAIN, SYSTEM_VLLM, ModelQuirks(system_role=False), "system role"),
        (PLAIN, SYSTEM_LLAMA_CPP, ModelQuirks(system_role=False), "system role"),
        (PLAIN, SYSTEM_LM_STUDIO, ModelQuirks(system_role=False), "system role"),
        (PLAIN, SYSTEM_MISTRAL, ModelQuirks(system_role=False), "system role"),
        (REASONING, OLD_SERVER, ModelQuirks(temperature=False), "wants max_tokens"),
    ],
)
def test_each_refusal_teaches_one_thing(
    quirks: ModelQuirks, rejection: Rejection, expected: ModelQuirks, what: str
) -> None:
    lesson = learn(quirks, rejection)

    assert lesson is not None
    assert lesson.quirks == expected
    assert what in lesson.what


@pytest.mark.parametrize(
    ("quirks", "rejection"),
    [
        # Already learned: asking again the same way would loop.
        (REASONING, TEMPERATURE_VALUE),
        (ModelQuirks(stream=False), STREAM),
        (ModelQuirks(system_role=False), SYSTEM_VLLM),
        (ModelQuirks(token_param="max_completion_tokens"), MAX_TOKENS),
        # Errors that are about the request's values or the server, not about the model.
        (
            PLAIN,
            Rejection(
                400,
                "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, "
                "but got 0 instead.",
                "max_tokens",
                "integer_below_min_value",
            ),
        ),
        (PLAIN, Rejection(400, "Bad Request")),
        (PLAIN, Rejection(500, "The server had an error while processing your request.")),
        (PLAIN, Rejection(429, "Rate limit reached for requests", None, "rate_limit_exceeded")),
        (PLAIN, Rejection(404, "The model `gpt-9` does not exist", "model", "model_not_found")),
        (PLAIN, Rejection(503, "System role not supported")),  # not a template error status
    ],
)
def test_refusals_that_teach_nothing(quirks: ModelQuirks, rejection: Rejection) -> None:
    assert learn(quirks, rejection) is None


def test_a_broken_stream_teaches_once() -> None:
    lesson = learn_from_broken_stream(PLAIN)

    assert lesson is not None and lesson.quirks == ModelQuirks(stream=False)
    assert learn_from_broken_stream(lesson.quirks) is None


CHAT = [
    ChatMessage("system", "You are Sam."),
    ChatMessage("user", "hi"),
    ChatMessage("assistant", "hello"),
    ChatMessage("user", "lunch?"),
]


def test_request_shape_follows_the_quirks() -> None:
    options = GenerationOptions(max_tokens=50, temperature=0.4)

    plain = shape_request(CHAT, options, PLAIN)
    reasoning = shape_request(CHAT, options, REASONING)
    folded = shape_request(CHAT, options, ModelQuirks(stream=False, system_role=False))

    assert (plain.max_tokens, plain.max_completion_tokens, plain.temperature) == (50, None, 0.4)
    assert plain.stream and plain.messages == CHAT
    assert (reasoning.max_tokens, reasoning.max_completion_tokens) == (None, 50)
    assert reasoning.temperature is None
    assert not folded.stream
    assert [m.role for m in folded.messages] == ["user", "assistant", "user"]


def test_fold_puts_the_persona_before_the_first_user_turn() -> None:
    assert fold_system_prompt(CHAT) == [
        ChatMessage("user", "You are Sam.\n\nhi"),
        ChatMessage("assistant", "hello"),
        ChatMessage("user", "lunch?"),
    ]


def test_fold_without_a_leading_user_turn_adds_one() -> None:
    chat = [ChatMessage("system", "Persona."), ChatMessage("assistant", "I wrote first")]

    assert fold_system_prompt(chat) == [
        ChatMessage("user", "Persona."),
        ChatMessage("assistant", "I wrote first"),
    ]


def test_fold_joins_several_system_turns_and_drops_empty_ones() -> None:
    chat = [
        ChatMessage("system", "One."),
        ChatMessage("system", ""),
        ChatMessage("system", "Two."),
        ChatMessage("user", "hi"),
    ]

    assert fold_system_prompt(chat) == [ChatMessage("user", "One.\n\nTwo.\n\nhi")]
    assert fold_system_prompt(chat[3:]) == chat[3:]
