"""split_message: Discord-sized parts at natural boundaries, with balanced code fences."""

from __future__ import annotations

import functools
import random
import re

import pytest

from server.delivery.splitter import MIN_LIMIT, discord_length, split_message

# The spec's fence: three backticks, with a language tag (up to 16 characters) ending its line.
FENCE = re.compile(r"```(?:([A-Za-z0-9_+\-.#]{1,16})(?=\r?\n))?")
REOPENED = re.compile(r"```([A-Za-z0-9_+\-.#]*)\n")


def _non_space(text: str) -> str:
    return "".join(text.split())


def _open_lang(text: str) -> str | None:
    """The language of the block `text` leaves open, or None when its fences are balanced."""
    fences = list(FENCE.finditer(text))
    return (fences[-1][1] or "") if len(fences) % 2 else None


def _is_original_plus_added_fences(parts: list[str], original: str) -> bool:
    """Whether removing some closing fence + reopening pairs at part boundaries gives back
    exactly the original's non-whitespace text (and each reopening names the closed language)."""
    target = _non_space(original)

    @functools.cache
    def matches(index: int, offset: int, reopen_lang: str | None) -> bool:
        if index == len(parts):
            return offset == len(target) and reopen_lang is None
        part = parts[index]
        if reopen_lang is not None:
            reopened = REOPENED.match(part)
            if reopened is None or reopened[1] != reopen_lang:
                return False
            part = part[reopened.end() :]
        choices: list[tuple[str, str | None]] = [(part, None)]
        if part.endswith("\n```") and index + 1 < len(parts):
            lang = _open_lang(parts[index][: -len("```")])
            if lang is not None:
                choices.append((part[: -len("\n```")], lang))
        for body, next_reopen in choices:
            text = _non_space(body)
            if target.startswith(text, offset) and matches(
                index + 1, offset + len(text), next_reopen
            ):
                return True
        return False

    return matches(0, 0, None)


def _random_text(rng: random.Random) -> str:
    words = ["a", "hi", "okay", "Discord", "rate-limit", "naïve", "日本語", "🙂", "x" * 60]
    words += ["🙂" * rng.randint(1, 40), "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "e\u0301"]
    chunks: list[str] = []
    for _ in range(rng.randint(5, 60)):
        kind = rng.random()
        if kind < 0.15:
            lang = rng.choice(["", "py", "js", "c++", "objective-c.mm", "a" * 20])
            lines = [
                " " * rng.choice([0, 2, 4, 8, 30])
                + " ".join(rng.choices(words, k=rng.randint(1, 9)))
                for _ in range(rng.randint(1, 12))
            ]
            chunks.append(f"```{lang}\n" + "\n".join(lines) + "\n```")
        elif kind < 0.2:
            chunks.append("y" * rng.randint(50, 300))
        elif kind < 0.25:
            chunks.append("inline ```code``` here")
        else:
            sentence = " ".join(rng.choices(words, k=rng.randint(1, 25)))
            chunks.append(sentence + rng.choice([".", "!", "?", '."', "", ","]))
    separators = [" ", "\n", "\n\n", "\n  \n", "  "]
    return "".join(chunk + rng.choice(separators) for chunk in chunks)


def test_short_text_is_one_part_unchanged() -> None:
    assert split_message("hello  ", 2000) == ["hello  "]
    assert split_message("x" * 64, 64) == ["x" * 64]


@pytest.mark.parametrize("text", ["", " ", "\n\n \t"])
def test_blank_text_gives_no_parts(text: str) -> None:
    assert split_message(text) == []


def test_limit_too_small_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        split_message("text", MIN_LIMIT - 1)


def test_default_limit_is_discords_2000() -> None:
    parts = split_message("word " * 1000)
    assert len(parts) == 3
    assert all(len(part) <= 2000 for part in parts)


def test_paragraph_boundary_is_preferred_over_lines() -> None:
    first = "First paragraph.\nStill the first."
    second = "Second paragraph. " * 3
    parts = split_message(f"{first}\n\n{second.strip()}\nmore words here", 70)
    assert parts[0] == first


def test_line_boundary_is_preferred_over_sentences() -> None:
    text = "One. Two. Three.\nFour five six seven. Eight nine ten eleven twelve."
    assert split_message(text, 64)[0] == "One. Two. Three."


def test_sentence_end_is_preferred_over_words() -> None:
    text = 'He said "stop." Then he left the room and walked far away from it'
    assert split_message(text, 64) == [
        'He said "stop."',
        "Then he left the room and walked far away from it",
    ]


def test_word_boundary_is_preferred_over_a_hard_cut() -> None:
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu"
    parts = split_message(text, 64)
    assert parts == ["alpha beta gamma delta epsilon zeta eta theta iota kappa lambda", "mu nu"]


def test_a_long_word_is_cut_hard() -> None:
    assert split_message("z" * 150, 64) == ["z" * 64, "z" * 64, "z" * 22]


def test_a_prefix_budget_is_respected() -> None:
    prefix = "[auto] "
    parts = split_message("lorem ipsum dolor " * 300, 2000 - len(prefix))
    assert all(len(prefix + part) <= 2000 for part in parts)


def test_a_cut_inside_code_closes_and_reopens_the_fence_with_its_language() -> None:
    code = "\n".join(f"    value_{i} = compute({i})" for i in range(10))
    parts = split_message(f"Here:\n```python\n{code}\n```\nDone.", 100)
    assert all(len(part) <= 100 for part in parts)
    assert len(parts) > 2
    assert parts[0].startswith("Here:\n```python\n    value_0")
    for part in parts[:-1]:
        assert part.endswith("\n```")
    for part in parts[1:]:
        assert part.startswith("```python\n    value_")  # indentation kept
    assert parts[-1].endswith("    value_9 = compute(9)\n```\nDone.")


def test_no_part_ends_right_after_an_opening_fence() -> None:
    text = "intro " * 8 + "\n```js\n" + "let x = 1;\n" * 8 + "```"
    parts = split_message(text, 64)
    assert parts[0] == ("intro " * 8).strip()
    for part in parts:
        assert not re.search(r"```[a-z]*\n```$", part), parts
        assert not part.startswith("```js\n```"), parts


def test_fence_without_language_is_reopened_bare() -> None:
    parts = split_message("```\n" + "line of code\n" * 10 + "```", 64)
    assert len(parts) > 1
    assert all(part.startswith("```\nline of code") for part in parts)
    assert all(part.count("```") == 2 for part in parts)


def test_random_texts_keep_every_invariant() -> None:
    rng = random.Random(20261122)
    for _ in range(300):
        text = _random_text(rng)
        limit = rng.randint(MIN_LIMIT, 400)
        parts = split_message(text, limit)
        if discord_length(text) <= limit:
            assert parts == [text]
            continue
        for part in parts:
            assert 0 < discord_length(part) <= limit, (limit, part)
            assert part == part.strip(), part
            assert _open_lang(part) is None, f"unbalanced fences in {part!r}"
        assert _is_original_plus_added_fences(parts, text), (limit, text, parts)


# --- Length as Discord-compatible servers count it ---------------------------------------------


def test_discord_length_counts_utf16_units() -> None:
    assert discord_length("hello") == 5
    assert discord_length("日本語") == 3  # in the Basic Multilingual Plane: one unit each
    assert discord_length("🙂") == 2  # outside it: a surrogate pair
    assert discord_length("👨\u200d👩\u200d👧") == 8
    assert discord_length("\ud800") == 1  # a lone surrogate is one unit, not an error


def test_an_emoji_heavy_reply_splits_within_2000_utf16_units() -> None:
    """The reply Spacebar refused: 1,998 code points, 3,322 UTF-16 units in one part."""
    text = " ".join(["🙂🎉 ok"] * 400) + " " + "🚀" * 1200
    assert len(text) < 4000 < discord_length(text)
    parts = split_message(text)
    assert all(discord_length(part) <= 2000 for part in parts), [len(p) for p in parts]
    assert all(len(part) <= 2000 for part in parts)
    assert _non_space("".join(parts)) == _non_space(text)
    # Word boundaries first; the 2,400-unit run of rockets must be cut hard anyway, so the
    # part before it is filled with rockets rather than ended at its last word.
    assert [discord_length(part) for part in parts] == [1999, 2000, 1600]


def test_a_part_is_filled_when_the_next_could_not_end_at_a_break_anyway() -> None:
    """Spacebar's run: `[auto-reply] echo:` and 3,000 emoji took five parts, the first holding
    only "echo:", where four fit."""
    prefix = "[auto-reply] "
    text = "echo: " + "🚀" * 3000
    parts = split_message(text, 2000 - discord_length(prefix))
    assert [discord_length(part) for part in parts] == [1986, 1986, 1986, 48]
    assert parts[0].startswith("echo: 🚀")
    assert "".join(parts) == text
    # A break the next part can end at too is still taken, however short the part before it.
    assert split_message("echo:\n" + "🚀" * 30 + " and then" * 10, 64)[0] == "echo:"


def test_a_prefix_measured_in_utf16_units_keeps_every_message_within_the_limit() -> None:
    prefix = "🤖 auto: "
    parts = split_message("🙂" * 3000, 2000 - discord_length(prefix))
    assert all(discord_length(prefix + part) <= 2000 for part in parts)
    assert max(discord_length(prefix + part) for part in parts) >= 1999  # and parts stay full


def test_a_text_within_the_code_point_limit_but_over_in_utf16_is_split() -> None:
    text = "🙂" * 1500  # 1,500 code points, 3,000 units
    parts = split_message(text, 2000)
    assert parts == ["🙂" * 1000, "🙂" * 500]


def test_a_hard_cut_keeps_emoji_sequences_and_accented_letters_whole() -> None:
    family = "👨\u200d👩\u200d👧"  # five code points, eight units, one symbol
    parts = split_message(family * 30, 64)
    assert all(part == family * (len(part) // len(family)) for part in parts), parts
    assert all(discord_length(part) <= 64 for part in parts)
    for symbol in ("👍🏽", "🇫🇷", "e\u0301", "❤\ufe0f"):
        parts = split_message(symbol * 100, 65)
        assert all(part == symbol * (len(part) // len(symbol)) for part in parts), (symbol, parts)


def test_a_symbol_longer_than_a_part_is_still_cut() -> None:
    text = "e" + "\u0301" * 200  # one letter with 200 accents: no whole-symbol cut exists
    parts = split_message(text, 64)
    assert "".join(parts) == text
    assert all(discord_length(part) <= 64 for part in parts)
