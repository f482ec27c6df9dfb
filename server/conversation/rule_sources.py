"""The two sources of rules, `reply_config.py` and the chats chosen from Discord, made one RuleSet.

Pure: the merge (file rules first; on the same (user, channel) the file wins), the checks a chat
chosen from Discord must pass, the sentences the owner reads about it, and the rule objects of the
`rules` frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from server.config_file import ReplyMode, ReplyWhen
from server.conversation.rules import DMS, WILDCARD, Rule, RuleSet, too_wide
from server.storage.rule_store import PairReply, StoredRule

MAX_LABEL = 200
"""The longest label a chat chosen from Discord may carry."""
DISCORD = "Discord"
NO_DISCORD_RULE = "No Discord rule for this chat."
CHANNEL_WILDCARD_REFUSED = (
    'A chat chosen from Discord needs a channel id or "@dms"; "*" (anywhere) can only be set in '
    "reply_config.py."
)


@dataclass(frozen=True)
class Merged:
    """The effective rules, and the persona names of Discord rules PERSONAS no longer has."""

    rules: RuleSet
    unknown_personas: tuple[str, ...]


def merge(file_rules: RuleSet, chosen: Sequence[StoredRule]) -> Merged:
    """File rules first, then the chosen chats the file does not name (the file wins on the same
    pair); a persona name missing from PERSONAS falls back to the default."""
    in_file = {(rule.user, rule.channel) for rule in file_rules.rules}
    personas = dict(file_rules.personas)
    unknown: list[str] = []
    added: list[Rule] = []
    for stored in chosen:
        if (stored.user, stored.channel) in in_file:
            continue
        prompt = None if stored.persona is None else personas.get(stored.persona)
        if stored.persona is not None and prompt is None and stored.persona not in unknown:
            unknown.append(stored.persona)
        added.append(as_rule(stored, prompt))
    if not added:
        return Merged(file_rules, ())
    rules = RuleSet(file_rules.context_message, (*file_rules.rules, *added), file_rules.personas)
    return Merged(rules, tuple(unknown))


def as_rule(stored: StoredRule, prompt: str | None) -> Rule:
    """A chosen chat as a rule; `prompt` is its persona's system prompt (None: the default)."""
    return Rule(
        stored.user,
        stored.channel,
        persona=prompt,
        reply_when=stored.reply_when,
        mode=stored.mode,
        source="discord",
        persona_name=stored.persona,
        label=stored.label,
        where=DISCORD,
    )


def file_rule(file_rules: RuleSet, user: str, channel: str) -> Rule | None:
    """The rule of `reply_config.py` for exactly (user, channel), if there is one."""
    return next(
        (rule for rule in file_rules.rules if (rule.user, rule.channel) == (user, channel)), None
    )


def refusal(file_rules: RuleSet, rule: StoredRule) -> str | None:
    """Why the chat may not be chosen from Discord (a full sentence), or None."""
    if rule.channel == WILDCARD:
        return CHANNEL_WILDCARD_REFUSED
    wide = too_wide(rule.user, rule.channel)
    if wide:
        return f"Refused: {wide}."
    in_file = file_rule(file_rules, rule.user, rule.channel)
    if in_file is not None:
        return set_in_file(in_file)
    names = [name for name, _ in file_rules.personas]
    if rule.persona is not None and rule.persona not in names:
        has = f"PERSONAS has: {', '.join(names)}." if names else "PERSONAS is empty."
        return f"Unknown persona {rule.persona!r}; {has}"
    return None


def set_in_file(rule: Rule) -> str:
    """The refusal to change or stop a rule of `reply_config.py` from Discord."""
    file_name, _, entry = rule.where.partition(" ")
    return f"This chat is set in {file_name} ({entry}); edit the file to change or stop it."


def chat_name(user: str, channel: str, label: str | None) -> str:
    """The chat as the owner knows it: the plugin's label, else who and where by id."""
    if label:
        return label
    who = "everyone" if user == WILDCARD else f"user {user}"
    if channel == DMS:
        return f"{who} in all your DMs"
    return f"{who} everywhere" if channel == WILDCARD else f"{who} in channel {channel}"


def set_text(
    rule: StoredRule, *, replaced: bool, default_mode: ReplyMode, default_when: ReplyWhen
) -> str:
    """What the owner reads once a chat is chosen (or its settings changed)."""
    mode = rule.mode or default_mode
    when = rule.reply_when or default_when
    settings = ", ".join(
        (
            f"persona {rule.persona or 'default'}",
            "drafts first" if mode == "draft" else "replies sent",
            "even while you are here" if when == "always" else "only while you are away",
        )
    )
    verb = "updated" if replaced else "on"
    return f"Auto-reply {verb} for {chat_name(rule.user, rule.channel, rule.label)}: {settings}."


def removed_text(rule: StoredRule, still: Rule | None) -> str:
    """What the owner reads once a chosen chat is removed; `still`: a rule that still answers
    there."""
    text = f"Auto-reply off for {chat_name(rule.user, rule.channel, rule.label)}."
    if still is not None and still.source == "file":
        text += f" The rule of {still.where} still answers there."
    elif still is not None:
        wider = chat_name(still.user, still.channel, still.label)
        text += f" The chat chosen in Discord for {wider} still answers there."
    return text


def last_reply(rule: Rule, replies: Sequence[PairReply]) -> float | None:
    """When the relay last replied in a chat the rule's pattern covers (whichever rule answered),
    or None."""
    times = [reply.at for reply in replies if _covers(rule, reply)]
    return max(times, default=None)


def _covers(rule: Rule, reply: PairReply) -> bool:
    if rule.user not in (WILDCARD, reply.user):
        return False
    if rule.channel == WILDCARD:
        return True
    return reply.dm if rule.channel == DMS else rule.channel == reply.channel


def rule_object(rule: Rule, replies: Sequence[PairReply]) -> dict[str, Any]:
    """A rule as the `rules` and `rule_result` frames carry it."""
    return {
        "user": rule.user,
        "channel": rule.channel,
        "source": rule.source,
        "label": rule.label,
        "persona": rule.persona_name,
        "mode": rule.mode,
        "reply_when": rule.reply_when,
        "last_reply": last_reply(rule, replies),
        "where": rule.where,
    }
