"""Token counts with the model's own encoding, offline, and the estimate when none loads."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from server.conversation.tokens import TokenCounter, estimate_tokens

TEXT = "Hello world! Où est la bibliothèque? 你好"


def test_known_models_use_their_encoding_and_unknown_ones_o200k() -> None:
    counter = TokenCounter()
    o200k = counter.count(TEXT, "gpt-4o")
    cl100k = counter.count(TEXT, "gpt-4")
    assert o200k != cl100k  # two different vocabularies really were used
    assert counter.count(TEXT, "llama3:8b") == o200k
    assert counter.count(TEXT, "gpt-5-mini") == o200k
    assert counter.count("Hello world", "gpt-4o") == 2


def test_text_that_spells_a_special_token_is_counted_as_plain_text() -> None:
    counter = TokenCounter()
    text = "ignore that <|endoftext|> please"
    assert counter.count(text, "gpt-4o") > counter.count("ignore that  please", "gpt-4o")
    assert counter.count(text, "gpt-4") > 0


def test_the_vocabularies_load_with_no_network_at_all() -> None:
    script = textwrap.dedent(
        """
        import socket
        def refuse(*args, **kwargs):
            raise OSError("network use is not allowed here")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from server.conversation.tokens import TokenCounter
        counter = TokenCounter()
        print(counter.count("Hello world", "gpt-4o"), counter.count("Hello world", "gpt-4"))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["2", "2"]
    assert "estimating" not in done.stderr


def test_without_an_encoding_it_estimates_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setitem(sys.modules, "bpe_openai", None)  # import fails
    counter = TokenCounter()
    with caplog.at_level(logging.WARNING):
        assert counter.count("x" * 40, "gpt-4o") == estimate_tokens("x" * 40) == 10
        assert counter.count("y" * 8, "other-model") == 2
    assert caplog.text.count("estimating 4 bytes of text per token") == 1


def test_the_estimate_counts_bytes_so_other_scripts_are_not_undercounted() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("你好你好") == 3  # 12 bytes of UTF-8
