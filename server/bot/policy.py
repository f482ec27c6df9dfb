"""Which messages the bot answers: a pure decision from the message's facts and the rules, then
the relay's guard rails (automatic messages, per-pair reply limits)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.conversation import reply_policy
from server.conversation.memory import PairKey
from server.conversation.reply_policy import ReplyPolicy
from server.conversation.rules import Rule, RuleSet


@dataclass(frozen=True)
class SeenMessage:
    """The facts of one MESSAGE_CREATE the decision needs; `in_guild` is False for a DM."""

    id: str
    author_id: str
    author_is_bot: bool
    channel_id: str
    in_guild: bool
    mentions_bot: bool
    replies_to_bot: bool
    content: str
    carries: bool = False
    """It carries something besides text: an attachment, a sticker or a forwarded message."""


@dataclass(frozen=True)
class Decision:
    """`rule` is the rule to answer with, or None; `reason` says why, for the debug log."""

    rule: Rule | None
    reason: str


def decide(message: SeenMessage, rules: RuleSet) -> Decision:
    """Answer a listed (author, channel) pair: in a DM always; in a guild channel when the bot is
    mentioned or replied to, or when the rule says `"listen": "all"`. Never a bot, never itself.
    """
    if message.author_is_bot:
        return Decision(None, "author is a bot")
    rule = rules.match(message.author_id, message.channel_id, dm=not message.in_guild)
    if rule is None:
        return Decision(None, "pair is not allow-listed")
    addressed = message.mentions_bot or message.replies_to_bot
    if message.in_guild and not addressed and rule.listen != "all":
        return Decision(None, "guild message that neither mentions nor replies to the bot")
    if not message.content.strip() and not message.carries:
        return Decision(None, "nothing to answer (no text, attachment, sticker or forward)")
    return Decision(rule, "allow-listed" + (" and addressed" if addressed else ""))


def screen(limits: ReplyPolicy, pair: PairKey, content: str, now: float) -> reply_policy.Decision:
    """The relay's guard rails for a message `decide` would answer: not an automatic message (a
    disclosure prefix, or one of our recent replies in that channel repeated: another bot or relay
    answering us), and `pair` within MAX_REPLIES_PER_MINUTE / _PER_HOUR. `quiet`: said before."""
    automatic = limits.automatic(pair[1], content, now)
    if automatic:
        return reply_policy.Decision(False, f"automatic message: {automatic}", quiet=True)
    return limits.may_reply(pair, now)


def without_mention(content: str, bot_id: str) -> str:
    """`content` without the bot's own `<@id>` / `<@!id>` mentions, which the model need not see."""
    return re.sub(rf"<@!?{re.escape(bot_id)}>", "", content).strip()
