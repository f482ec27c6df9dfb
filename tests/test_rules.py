"""reply_config.py: the original form, wildcards, per-rule settings, errors and reloading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.conversation.rules import WILDCARD, Rule, RulesError, RuleSet, parse_rules
from server.conversation.rules_file import RulesWatcher, load_rules

ROOT = Path(__file__).resolve().parent.parent


def write_rules(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def test_original_form_still_works(tmp_path: Path) -> None:
    path = write_rules(
        tmp_path / "reply_config.py",
        'CONTEXT_MESSAGE = "Be nice."\nREPLY_TO = [("111", "222"), ("333", "444")]\n',
    )
    rules = load_rules(path)
    assert rules.context_message == "Be nice."
    assert rules.match("111", "222") == Rule("111", "222")
    assert rules.match("111", "444") is None
    assert rules.watch_list() == [
        {"user": "111", "channel": "222"},
        {"user": "333", "channel": "444"},
    ]


def test_shipped_reply_config_loads_and_watches_nothing() -> None:
    rules = load_rules(ROOT / "reply_config.py")
    assert rules.rules == ()
    assert rules.context_message


def test_wildcards_and_most_specific_rule_wins() -> None:
    rules = parse_rules(
        {
            "CONTEXT_MESSAGE": "default",
            "REPLY_TO": [
                ("*", "500", {"persona": "channel"}),
                ("100", "*", {"persona": "user anywhere"}),
                ("100", "500", {"persona": "exact"}),
            ],
        },
        "rc.py",
    )
    assert rules.system_prompt(rules.match("100", "500")) == "exact"  # type: ignore[arg-type]
    assert rules.system_prompt(rules.match("100", "999")) == "user anywhere"  # type: ignore[arg-type]
    assert rules.system_prompt(rules.match("777", "500")) == "channel"  # type: ignore[arg-type]
    assert rules.match("777", "999") is None
    assert rules.watches_channel("500") and rules.watches_channel("123")


def linear_match(rules: RuleSet, user: str, channel: str) -> Rule | None:
    """The matching rule by its definition: the most specific covering rule, first among equals
    (2 for an exact pair, 1 for a user anywhere, 0 for anyone in a channel)."""
    covering = [
        rule
        for rule in rules.rules
        if rule.user in (WILDCARD, user) and rule.channel in (WILDCARD, channel)
    ]
    return max(
        covering,
        key=lambda rule: (rule.user != WILDCARD) * 2 - (rule.channel == WILDCARD),
        default=None,
    )


IDS = st.sampled_from(["1", "2", "3", WILDCARD])


@given(
    entries=st.lists(
        st.tuples(IDS, IDS, st.integers(0, 99)).filter(lambda e: (e[0], e[1]) != ("*", "*")),
        max_size=12,
    ),
    user=st.sampled_from(["1", "2", "3", "4"]),
    channel=st.sampled_from(["1", "2", "3", "4"]),
)
def test_indexed_match_is_the_most_specific_first_rule(
    entries: list[tuple[str, str, int]], user: str, channel: str
) -> None:
    # Rules for the same pattern are told apart by their persona.
    rules = RuleSet("", tuple(Rule(u, c, persona=str(tag)) for u, c, tag in entries))
    assert rules.match(user, channel) == linear_match(rules, user, channel)
    assert rules.watches_channel(channel) == any(
        rule.channel in (WILDCARD, channel) for rule in rules.rules
    )


def test_per_rule_settings_in_dict_form() -> None:
    rules = parse_rules(
        {
            "REPLY_TO": [
                {
                    "user": 111,  # ints are accepted and kept exact as strings
                    "channel": "222",
                    "model": "llama3",
                    "temperature": 0.2,
                    "max_tokens": 50,
                    "memory_length": 7,
                }
            ]
        },
        "rc.py",
    )
    assert rules.match("111", "222") == Rule(
        "111", "222", model="llama3", temperature=0.2, max_tokens=50, memory_length=7
    )
    rule = rules.match("111", "222")
    assert rule is not None and rules.system_prompt(rule) == ""


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([("USER_ID", "CHANNEL_ID")], r"REPLY_TO\[0\]: user: must be a Discord id"),
        ([("1", "2"), ("*", "*")], r"REPLY_TO\[1\]: \(\"\*\", \"\*\"\) would answer everyone"),
        ([("1", "2", {"tempreature": 1})], r"REPLY_TO\[0\]: tempreature: Extra inputs"),
        ([("1", "2", {"temperature": 9})], r"REPLY_TO\[0\]: temperature"),
        ([("1",)], r"REPLY_TO\[0\]: expected \(user, channel\)"),
        ("111", r"REPLY_TO must be a list"),
    ],
)
def test_bad_rules_name_the_file_and_entry(entries: object, expected: str) -> None:
    with pytest.raises(RulesError, match=rf"^rc\.py: {expected}"):
        parse_rules({"REPLY_TO": entries}, "rc.py")


def test_python_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = write_rules(tmp_path / "rc.py", 'REPLY_TO = [\n  ("1", "2"),\n  undefined_name,\n]\n')
    with pytest.raises(RulesError, match=r"rc\.py:3: NameError"):
        load_rules(path)
    write_rules(path, "REPLY_TO = [(\n")
    with pytest.raises(RulesError, match=r"rc\.py:1: SyntaxError"):
        load_rules(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="file not found"):
        load_rules(tmp_path / "nope.py")


async def test_watcher_reloads_and_keeps_last_good_rules_on_a_broken_edit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_rules(tmp_path / "rc.py", 'REPLY_TO = [("1", "2")]\n')
    changes: list[int] = []
    watcher = RulesWatcher(path, lambda rules: changes.append(len(rules.rules)), interval=0.01)

    def edit(body: str, bump: int) -> None:
        write_rules(path, body)
        mtime = path.stat().st_mtime + bump  # filesystems with coarse mtimes still see a change
        os.utime(path, (mtime, mtime))

    edit('REPLY_TO = [("1", "2"), ("3", "4")]\n', 1)
    assert await watcher.reload_if_changed()
    assert changes == [2]

    edit('REPLY_TO = [("1", "2"), ("oops"]\n', 2)
    assert not await watcher.reload_if_changed()
    assert watcher.current.match("3", "4") is not None
    assert "keeping the last good rules" in caplog.text
    assert "SyntaxError" in caplog.text

    edit('REPLY_TO = [("5", "6")]\n', 3)
    assert await watcher.reload_if_changed()
    assert changes == [2, 1]
    assert watcher.current.match("1", "2") is None


def test_personas_and_listen_for_bot_mode() -> None:
    rules = parse_rules(
        {
            "REPLY_TO": [("1", "2"), {"user": "*", "channel": "3", "listen": "all"}],
            "PERSONAS": {" pirate ": "Arr.", "poet": "In verse."},
        },
        "rc.py",
    )
    assert rules.persona("pirate") == "Arr."
    assert rules.persona("ninja") is None
    assert [name for name, _ in rules.personas] == ["pirate", "poet"]
    assert rules.match("1", "2") == Rule("1", "2", listen="mentions")
    assert rules.match("9", "3") == Rule("*", "3", listen="all")


@pytest.mark.parametrize(
    ("namespace", "expected"),
    [
        ({"PERSONAS": ["pirate"]}, r"PERSONAS must be a dict"),
        ({"PERSONAS": {"": "x"}}, r"PERSONAS: each name must be a non-empty string"),
        ({"PERSONAS": {"pirate": 3}}, r"PERSONAS\['pirate'\] must be a string"),
        ({"REPLY_TO": [("1", "2", {"listen": "some"})]}, r"REPLY_TO\[0\]: listen: Input should"),
    ],
)
def test_bad_personas_and_listen_name_the_file(namespace: dict[str, object], expected: str) -> None:
    with pytest.raises(RulesError, match=rf"^rc\.py: {expected}"):
        parse_rules(namespace, "rc.py")
