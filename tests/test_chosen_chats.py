"""Chats chosen from Discord without sockets: the table and its migration, the merge with
reply_config.py, "@dms", the refusals and when each rule last replied."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest

from server.conversation import rule_sources
from server.conversation.rules import DMS, RulesError, RuleSet, parse_rules
from server.owner.chosen_chats import ChosenChats
from server.storage import database
from server.storage.conversations import ConversationStore, ReplyPart
from server.storage.rule_store import PairReply, RuleStore, StoredRule
from tests.test_conversations import write_schema

FILE = {
    "CONTEXT_MESSAGE": "default prompt",
    "PERSONAS": {"friendly": "You are warm.", "formal": "You are formal."},
    "REPLY_TO": [
        ("111", "222"),
        ("112", "*", {"persona": "You are formal."}),
        ("113", DMS, {"persona": "Your own prompt."}),
        ("*", "333"),
    ],
}


def file_rules() -> RuleSet:
    return parse_rules(FILE, "/home/sam/reply_config.py")


async def open_store(path: Path) -> ConversationStore:
    store = ConversationStore(path)
    await store.open()
    return store


async def test_the_table_keeps_rules_across_a_reopen_and_replaces_a_pairs_settings(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path / "db")
    rules = RuleStore(store)
    first = await rules.put(StoredRule("500", "600", "friendly", label="#general"))
    assert first.created_at > 0
    await rules.put(StoredRule("501", DMS, mode="draft", reply_when="always", label="Ann (DMs)"))
    replaced = await rules.put(StoredRule("500", "600", None, label="#general · Home"))
    assert replaced.created_at == first.created_at  # chosen then, changed since
    await store.close()

    store = await open_store(tmp_path / "db")
    rules = RuleStore(store)
    assert await rules.rules() == [
        StoredRule("500", "600", None, None, None, "#general · Home", first.created_at),
        StoredRule(
            "501", DMS, None, "draft", "always", "Ann (DMs)", (await rules.rules())[1].created_at
        ),
    ]
    removed = await rules.remove("501", DMS)
    assert removed is not None and removed.label == "Ann (DMs)"
    assert await rules.remove("501", DMS) is None
    assert [rule.user for rule in await rules.rules()] == ["500"]
    await store.close()


async def test_a_schema_5_database_gains_the_table_and_keeps_its_turns(tmp_path: Path) -> None:
    raw = write_schema(tmp_path / "db", 5)
    raw.execute(
        "INSERT INTO turns (user_id, channel_id, kind, discord_id, content, at)"
        " VALUES ('111', '222', 'message', '9001', 'hi', 1.0)"
    )
    raw.close()
    store = await open_store(tmp_path / "db")
    await RuleStore(store).put(StoredRule("500", "600"))
    await store.close()
    with sqlite3.connect(tmp_path / "db") as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == database.SCHEMA_VERSION == 6
        assert check.execute("SELECT content FROM turns").fetchall() == [("hi",)]
        assert check.execute("SELECT user_id, channel_id FROM discord_rules").fetchall() == [
            ("500", "600")
        ]
        with pytest.raises(sqlite3.IntegrityError):  # the table checks what it is given
            check.execute(
                "INSERT INTO discord_rules (user_id, channel_id, mode, created_at)"
                " VALUES ('1', '2', 'loud', 0)"
            )


def test_file_rules_say_where_they_are_and_name_their_persona() -> None:
    rules = file_rules().rules
    assert [rule.where for rule in rules] == [
        f"reply_config.py REPLY_TO[{index}]" for index in range(4)
    ]
    assert [rule.persona_name for rule in rules] == [None, "formal", "custom", None]
    assert {rule.source for rule in rules} == {"file"}


def test_dms_in_reply_config_matches_dms_only_and_is_refused_for_anyone() -> None:
    rules = file_rules()
    assert rules.match("113", "700", dm=True) is rules.rules[2]
    assert rules.match("113", "700", dm=False) is None  # a server channel
    assert rules.match("113", "700") is None  # a caller that does not know: not a DM
    only_dms = parse_rules({"REPLY_TO": [("113", DMS)]}, "reply_config.py")
    assert only_dms.watches_channel("700", dm=True) and not only_dms.watches_channel("700")
    with pytest.raises(RulesError, match=r"REPLY_TO\[0\]: \(\"\*\", \"@dms\"\) would answer"):
        parse_rules({"REPLY_TO": [("*", DMS)]}, "reply_config.py")
    with pytest.raises(RulesError, match="REPLY_TO\\[0\\]: user: must be a Discord id"):
        parse_rules({"REPLY_TO": [(DMS, "1")]}, "reply_config.py")


def test_the_match_order_is_exact_then_dms_then_anywhere_then_anyone_in_the_channel() -> None:
    rules = parse_rules(
        {"REPLY_TO": [("*", "9"), ("1", "*"), ("1", DMS), ("1", "9")]}, "reply_config.py"
    )
    exact, dms, anywhere, anyone = rules.rules[3], rules.rules[2], rules.rules[1], rules.rules[0]
    assert rules.match("1", "9", dm=True) is exact
    assert rules.match("1", "8", dm=True) is dms
    assert rules.match("1", "8", dm=False) is anywhere
    assert rules.match("2", "9", dm=True) is anyone


def test_the_merge_puts_file_rules_first_the_file_wins_and_personas_are_resolved() -> None:
    chosen = [
        StoredRule("111", "222", "friendly", label="shadowed by the file"),
        StoredRule("500", "600", "friendly", "draft", "always", "#general"),
        StoredRule("501", DMS, "pirate", label="Ann (DMs)"),
        StoredRule("502", DMS, "pirate"),
    ]
    merged = rule_sources.merge(file_rules(), chosen)
    rules = merged.rules
    assert [(rule.user, rule.channel, rule.source) for rule in rules.rules] == [
        ("111", "222", "file"),
        ("112", "*", "file"),
        ("113", DMS, "file"),
        ("*", "333", "file"),
        ("500", "600", "discord"),
        ("501", DMS, "discord"),
        ("502", DMS, "discord"),
    ]
    assert merged.unknown_personas == ("pirate",)
    assert rules.match("111", "222") is rules.rules[0]  # the file's
    general = rules.match("500", "600")
    assert general is not None and rules.system_prompt(general) == "You are warm."
    assert (general.mode, general.reply_when, general.label) == ("draft", "always", "#general")
    lost = rules.match("501", "77", dm=True)
    assert lost is not None and rules.system_prompt(lost) == "default prompt"
    assert lost.persona_name == "pirate" and lost.where == "Discord"
    assert rules.match("501", "77", dm=False) is None
    assert rules.personas == file_rules().personas
    assert rules.watch_list()[-1] == {"user": "502", "channel": DMS}


def test_with_nothing_chosen_the_file_rules_are_used_as_they_are() -> None:
    parsed = file_rules()
    assert rule_sources.merge(parsed, []).rules is parsed  # the same index: nothing rebuilt


def test_what_may_not_be_chosen_from_discord_is_said_in_a_sentence() -> None:
    rules = file_rules()
    refusal = rule_sources.refusal
    assert refusal(rules, StoredRule("112", "*")) == rule_sources.CHANNEL_WILDCARD_REFUSED
    assert refusal(rules, StoredRule("*", DMS)) == (
        'Refused: ("*", "@dms") would answer everyone who writes to you in a DM; name a user.'
    )
    assert refusal(rules, StoredRule("113", DMS)) == (
        "This chat is set in reply_config.py (REPLY_TO[2]); edit the file to change or stop it."
    )
    assert refusal(rules, StoredRule("1", "2", "pirate")) == (
        "Unknown persona 'pirate'; PERSONAS has: friendly, formal."
    )
    assert refusal(RuleSet("", ()), StoredRule("1", "2", "pirate")) == (
        "Unknown persona 'pirate'; PERSONAS is empty."
    )
    assert refusal(rules, StoredRule("1", "2", "formal")) is None
    assert refusal(rules, StoredRule("*", "2")) is None


def test_last_reply_covers_what_the_pattern_covers() -> None:
    replies = [
        PairReply("1", "10", 100.0, dm=True),
        PairReply("1", "20", 200.0, dm=False),
        PairReply("2", "20", 300.0, dm=False),
    ]
    rule = rule_sources.as_rule

    def last(user: str, channel: str) -> float | None:
        return rule_sources.last_reply(rule(StoredRule(user, channel), None), replies)

    assert last("1", "10") == 100.0
    assert last("1", DMS) == 100.0  # not the server channel 20
    assert last("1", "*") == 200.0
    assert last("*", "20") == 300.0
    assert last("3", DMS) is None


async def test_chosen_chats_set_remove_and_last_reply_on_a_real_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = await open_store(tmp_path / "db")
    current = [file_rules()]
    chosen = ChosenChats(
        RuleStore(store), lambda: current[0], default_mode="send", default_when="away"
    )
    await chosen.load()
    before = chosen.effective()
    assert chosen.effective() is before  # merged once, not per message

    done = await chosen.set(StoredRule("500", DMS, "friendly", label="Sam (DMs)"))
    assert done.ok and done.changed
    assert done.text == (
        "Auto-reply on for Sam (DMs): persona friendly, replies sent, only while you are away."
    )
    again = await chosen.set(StoredRule("500", DMS, None, "draft", "always"))
    assert again.text == (
        "Auto-reply updated for user 500 in all your DMs: persona default, drafts first, "
        "even while you are here."
    )
    assert again.rule is not None and again.rule["mode"] == "draft"

    # A reply in a DM of 500, then one in a server channel: only the first counts for "@dms".
    message = await store.record_message(("500", "801"), "m1", "500", "hi")
    reply = await store.record_reply(
        ("500", "801"), [message or 0], "openai", [ReplyPart("n", "hey")]
    )
    await store.record_delivery(reply, 1)
    in_guild = await store.record_message(("500", "802"), "m2", "500", "yo", guild_id="9")
    later = await store.record_reply(
        ("500", "802"), [in_guild or 0], "openai", [ReplyPart("o", "x")]
    )
    await store.record_delivery(later, 1)
    [dms] = [r for r in await chosen.rule_objects() if r["channel"] == DMS and r["user"] == "500"]
    assert dms["last_reply"] is not None and dms["last_reply"] <= time.time()
    replies = await RuleStore(store).last_replies()
    assert dms["last_reply"] == next(r.at for r in replies if r.channel == "801")

    # The file takes the persona away: the rule answers with the default, warned of once.
    caplog.set_level(logging.WARNING)
    await chosen.set(StoredRule("501", "600", "formal"))
    current[0] = parse_rules({**FILE, "PERSONAS": {"friendly": "You are warm."}}, "reply_config.py")
    lost = chosen.effective().match("501", "600")
    assert lost is not None and chosen.effective().system_prompt(lost) == "default prompt"
    current[0] = parse_rules({**FILE, "PERSONAS": {}}, "reply_config.py")
    chosen.effective()
    assert sum("'formal'" in r.getMessage() for r in caplog.records) == 1

    gone = await chosen.remove("500", DMS)
    assert gone.ok and gone.text == "Auto-reply off for user 500 in all your DMs."
    assert chosen.effective().match("500", "801", dm=True) is None
    refused = await chosen.remove("111", "222")
    assert not refused.ok and "REPLY_TO[0]" in refused.text

    # A wider rule still answers where a chat was removed: the file's, or another chosen one.
    await chosen.set(StoredRule("112", "700"))
    wider_in_file = await chosen.remove("112", "700")
    assert wider_in_file.text == (
        "Auto-reply off for user 112 in channel 700. "
        "The rule of reply_config.py REPLY_TO[1] still answers there."
    )
    await chosen.set(StoredRule("*", "701", label="#general · My Server"))
    await chosen.set(StoredRule("502", "701"))
    wider_chosen = await chosen.remove("502", "701")
    assert wider_chosen.text.endswith(
        " The chat chosen in Discord for #general · My Server still answers there."
    )
    await store.close()
