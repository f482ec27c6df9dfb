"""The chats the owner chose from Discord: kept in the database, merged with `reply_config.py`.

The effective rules (what the relay, away mode and the plugins' watch list use) are the file's
followed by these; they are merged again only when either side changes, so `RuleSet.match` keeps
its index between messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from server.config_file import ReplyMode, ReplyWhen
from server.conversation import rule_sources
from server.conversation.rules import DMS, RuleSet
from server.storage.database import DatabaseError
from server.storage.rule_store import PairReply, RuleStore, StoredRule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuleResult:
    """The answer to setting or removing a chosen chat: `text` is a sentence for the owner;
    `rule` the rule object once set; `changed`: the effective rules changed."""

    ok: bool
    text: str
    rule: dict[str, Any] | None = None
    changed: bool = False


class ChosenChats:
    """The Discord rules: loaded at start, set and removed by the owner, merged with the file's."""

    def __init__(
        self,
        store: RuleStore,
        file_rules: Callable[[], RuleSet],
        *,
        default_mode: ReplyMode,
        default_when: ReplyWhen,
    ) -> None:
        """`file_rules`: the current rules of `reply_config.py`; `default_mode` and
        `default_when` (MODE, REPLY_WHEN) say what a rule without its own does."""
        self._store = store
        self._file_rules = file_rules
        self._default_mode = default_mode
        self._default_when = default_when
        self._chosen: list[StoredRule] = []
        self._merged_from: RuleSet | None = None
        self._effective = RuleSet("", ())
        self._warned: set[str] = set()

    async def load(self) -> None:
        """Read the stored rules; a database that cannot be read leaves none (logged)."""
        try:
            self._chosen = await self._store.rules()
        except DatabaseError as exc:
            log.error("the chats chosen from Discord could not be read: %s", exc)
            self._chosen = []
        self._merged_from = None

    def effective(self) -> RuleSet:
        """The file's rules, then the chosen chats the file does not name."""
        file_rules = self._file_rules()
        if file_rules is not self._merged_from:
            merged = rule_sources.merge(file_rules, self._chosen)
            for name in merged.unknown_personas:
                if name not in self._warned:
                    self._warned.add(name)
                    log.warning(
                        "a chat chosen from Discord uses persona %r, which PERSONAS no longer "
                        "has: it gets the default persona",
                        name,
                    )
            self._effective, self._merged_from = merged.rules, file_rules
        return self._effective

    async def set(self, rule: StoredRule) -> RuleResult:
        """Create or replace the chosen chat (user, channel), unless the file names that pair or
        the rule is not valid (then the result says why)."""
        refusal = rule_sources.refusal(self._file_rules(), rule)
        if refusal is not None:
            return RuleResult(False, refusal)
        replaced = any((old.user, old.channel) == (rule.user, rule.channel) for old in self._chosen)
        try:
            stored = await self._store.put(replace(rule, created_at=0.0))
        except DatabaseError as exc:
            log.error("could not save the chat chosen from Discord: %s", exc)
            return RuleResult(False, "The rule could not be saved: the database failed.")
        self._chosen = [
            old for old in self._chosen if (old.user, old.channel) != (rule.user, rule.channel)
        ]
        self._chosen.append(stored)
        self._merged_from = None
        text = rule_sources.set_text(
            stored,
            replaced=replaced,
            default_mode=self._default_mode,
            default_when=self._default_when,
        )
        return RuleResult(True, text, await self._rule_object(stored.user, stored.channel), True)

    async def remove(self, user: str, channel: str) -> RuleResult:
        """Remove the chosen chat (user, channel); a pair only the file names is refused."""
        in_file = rule_sources.file_rule(self._file_rules(), user, channel)
        try:
            removed = await self._store.remove(user, channel)
        except DatabaseError as exc:
            log.error("could not remove the chat chosen from Discord: %s", exc)
            return RuleResult(False, "The rule could not be removed: the database failed.")
        if removed is None and in_file is not None:
            return RuleResult(False, rule_sources.set_in_file(in_file))
        if removed is None:
            return RuleResult(False, rule_sources.NO_DISCORD_RULE)
        self._chosen = [old for old in self._chosen if (old.user, old.channel) != (user, channel)]
        self._merged_from = None
        still = self.effective().match(user, channel, dm=channel == DMS)
        return RuleResult(True, rule_sources.removed_text(removed, still), None, True)

    async def rule_objects(self) -> list[dict[str, Any]]:
        """Every effective rule as the `rules` frame lists it, with when the relay last replied."""
        replies = await self._replies()
        return [rule_sources.rule_object(rule, replies) for rule in self.effective().rules]

    async def _rule_object(self, user: str, channel: str) -> dict[str, Any] | None:
        rule = next(
            (r for r in self.effective().rules if (r.user, r.channel) == (user, channel)), None
        )
        return None if rule is None else rule_sources.rule_object(rule, await self._replies())

    async def _replies(self) -> list[PairReply]:
        try:
            return await self._store.last_replies()
        except DatabaseError as exc:
            log.warning("when the relay last replied could not be read: %s", exc)
            return []
