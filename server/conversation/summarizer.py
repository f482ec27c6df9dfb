"""Condensing the turns that no longer fit the memory window into one short summary."""

from __future__ import annotations

from collections.abc import Sequence

from server.llm.base import ChatMessage, GenerationOptions, LLMBackend
from server.storage.conversations import Turn

SUMMARY_MAX_TOKENS = 200
INSTRUCTIONS = (
    "Summarise the conversation below between THEM (the other person) and ME in at most five "
    "short sentences, in the language they used. Keep names, facts, promises and open questions; "
    "write the summary only, nothing else."
)


def summary_request(previous: str | None, turns: Sequence[Turn]) -> list[ChatMessage]:
    """The chat that asks a model to fold `turns` (and the previous summary) into one summary."""
    lines = [f"Earlier summary: {previous}"] if previous else []
    lines += [f"{'THEM' if turn.kind == 'message' else 'ME'}: {turn.content}" for turn in turns]
    return [ChatMessage("system", INSTRUCTIONS), ChatMessage("user", "\n".join(lines))]


async def summarize(
    llm: LLMBackend, previous: str | None, turns: Sequence[Turn], model: str | None
) -> str:
    """A short summary of `turns`; raises `LLMError` when no backend can write one."""
    options = GenerationOptions(max_tokens=SUMMARY_MAX_TOKENS, model=model)
    return (await llm.complete(summary_request(previous, turns), options)).strip()
