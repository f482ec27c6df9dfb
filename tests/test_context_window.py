"""Which turns fit the token budget: oldest go first, the system prompt and newest stay."""

from __future__ import annotations

from server.context_window import REPLY_PRIMING_TOKENS, fit_window, truncate
from server.conversations import Turn
from server.tokens import TOKENS_PER_MESSAGE


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


def test_truncate_keeps_the_longest_start_within_the_count() -> None:
    assert truncate("a b c d e", 3, words) == "a b c "
    assert truncate("abc", 0, len) == "a"  # never empty
    assert truncate("", 5, len) == ""
