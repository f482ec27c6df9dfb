"""Which turns fit the token budget: oldest go first, the system prompt and newest stay."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.conversation.context_window import (
    REPLY_PRIMING_TOKENS,
    fit_window,
    truncate,
    window_cost,
)
from server.conversation.tokens import TOKENS_PER_MESSAGE, token_ceiling
from server.llm.base import ChatMessage
from server.storage.conversations import Turn


def words(text: str) -> int:
    return len(text.split())


def turns(*texts: str) -> list[Turn]:
    return [
        Turn(index + 1, index + 1, "message" if index % 2 == 0 else "reply", text)
        for index, text in enumerate(texts)
    ]


def cost(*texts: str) -> int:
    return sum(words(text) + TOKENS_PER_MESSAGE for text in texts) + REPLY_PRIMING_TOKENS


def test_everything_fits_within_the_budget() -> None:
    conversation = turns("a b", "c d", "e f")
    fitted = fit_window("sys", conversation, newest=1, max_history=10, budget=1000, count=words)
    assert fitted.kept == conversation
    assert fitted.dropped == []


def test_oldest_turns_go_first_and_the_system_prompt_counts() -> None:
    conversation = turns("one two three", "four five", "six", "newest message here")
    budget = cost("sys", "six", "newest message here")
    fitted = fit_window("sys", conversation, newest=1, max_history=10, budget=budget, count=words)
    assert [t.content for t in fitted.kept] == ["six", "newest message here"]
    assert [t.content for t in fitted.dropped] == ["one two three", "four five"]


def test_history_beyond_max_history_is_dropped_even_when_it_fits() -> None:
    conversation = turns("h1", "h2", "h3", "h4", "new")
    fitted = fit_window("", conversation, newest=1, max_history=2, budget=10_000, count=words)
    assert [t.content for t in fitted.kept] == ["h3", "h4", "new"]
    assert [t.content for t in fitted.dropped] == ["h1", "h2"]


def test_a_whole_burst_is_kept_beside_max_history() -> None:
    conversation = turns("h1", "h2", "b1", "b2", "b3")
    fitted = fit_window("", conversation, newest=3, max_history=1, budget=10_000, count=words)
    assert [t.content for t in fitted.kept] == ["h2", "b1", "b2", "b3"]


def test_an_over_long_newest_message_is_truncated_not_dropped() -> None:
    long = " ".join(f"w{n}" for n in range(500))
    conversation = turns("old turn", long)
    budget = 100
    fitted = fit_window(
        "be kind", conversation, newest=1, max_history=5, budget=budget, count=words
    )
    [kept] = fitted.kept
    assert long.startswith(kept.content) and kept.content
    assert cost("be kind", kept.content) <= budget
    assert [t.content for t in fitted.dropped] == ["old turn"]


def test_chat_messages_fit_the_same_way_keeping_their_roles() -> None:
    long = " ".join(f"w{n}" for n in range(200))
    chat = [
        ChatMessage("user", "one two"),
        ChatMessage("assistant", "three"),
        ChatMessage("user", long),
    ]
    fitted = fit_window("sys", chat, newest=1, max_history=2, budget=60, count=words)
    assert fitted.dropped == chat[:2]
    [kept] = fitted.kept
    assert kept.role == "user" and long.startswith(kept.content)
    assert window_cost("sys", fitted.kept, words) <= 60


def test_truncate_keeps_the_longest_start_within_the_count() -> None:
    assert truncate("a b c d e", 3, words) == "a b c "
    assert truncate("abc", 0, len) == "a"  # never empty
    assert truncate("", 5, len) == ""


def test_with_a_ceiling_a_window_that_fits_is_never_counted() -> None:
    def refuse(text: str) -> int:
        raise AssertionError(f"counted {text!r}")

    conversation = turns("a b", "c d", "e f")
    fitted = fit_window(
        "sys", conversation, newest=1, max_history=10, budget=1000, count=refuse, ceiling=len
    )
    assert fitted.kept == conversation
    assert fitted.dropped == []


@given(
    texts=st.lists(st.text(st.sampled_from("ab  é你"), max_size=30), min_size=1, max_size=8),
    system=st.text(st.sampled_from("xy "), max_size=20),
    newest=st.integers(1, 3),
    max_history=st.integers(0, 6),
    budget=st.integers(0, 120),
)
def test_a_ceiling_never_changes_the_window(
    texts: list[str], system: str, newest: int, max_history: int, budget: int
) -> None:
    conversation = turns(*texts)
    newest = min(newest, len(texts))
    exact = fit_window(
        system, conversation, newest=newest, max_history=max_history, budget=budget, count=words
    )
    quick = fit_window(
        system,
        conversation,
        newest=newest,
        max_history=max_history,
        budget=budget,
        count=words,
        ceiling=token_ceiling,
    )
    assert quick == exact


def test_the_window_cost_counts_each_message_and_the_reply_priming() -> None:
    assert window_cost("sys", turns("a b", "c"), words) == cost("sys", "a b", "c")
    assert window_cost("", turns("a b"), words) == cost("a b")
