"""Allow-list rules from `reply_config.py`: which (user, channel) pairs get replies, and how."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from server.config_file import MAX_REPLY_AFTER_SECONDS, ReplyMode, ReplyWhen
from server.conversation.memory import MAX_MEMORY_LENGTH
from server.owner.away_schedule import check_windows

WILDCARD = "*"
DMS = "@dms"
"""The channel token for every DM and group DM with the owner (a message without a guild)."""
RuleSource = Literal["file", "discord"]
Listen = Literal["mentions", "all"]
MAX_PERSONA_NAME = 100
_SNOWFLAKE = re.compile(r"^[0-9]{1,25}$")


class RulesError(Exception):
    """`reply_config.py` does not describe valid rules; the text names the file and the entry."""


def _as_id(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and (value == WILDCARD or _SNOWFLAKE.match(value.strip())):
        return value.strip()
    raise ValueError(f'must be a Discord id (digits) or "*", got {value!r}')


def _as_channel(value: object) -> object:
    if isinstance(value, str) and value.strip() == DMS:
        return DMS
    try:
        return _as_id(value)
    except ValueError:
        raise ValueError(f'must be a Discord id (digits), "*" or "{DMS}", got {value!r}') from None


DiscordIdOrWildcard = Annotated[str, BeforeValidator(_as_id)]
ChannelToken = Annotated[str, BeforeValidator(_as_channel)]
"""A rule's channel: a Discord id, "*" (anywhere) or "@dms" (any DM with the owner)."""


class _RuleEntry(BaseModel):
    """One REPLY_TO entry in its dict form; tuples are converted to this."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: DiscordIdOrWildcard
    channel: ChannelToken
    persona: str | None = None
    model: str | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, Field(gt=0)] | None = None
    memory_length: Annotated[int, Field(ge=0, le=MAX_MEMORY_LENGTH)] | None = None
    reply_when: ReplyWhen | None = None
    mode: ReplyMode | None = None
    vision: bool | None = None
    listen: Listen = "mentions"
    schedule: Annotated[tuple[str, ...], AfterValidator(check_windows)] | None = None
    reply_after_seconds: Annotated[float, Field(ge=0, le=MAX_REPLY_AFTER_SECONDS)] | None = None
    notify: Literal["all"] | None = None
    style: bool | None = None


@dataclass(frozen=True)
class Rule:
    """One allow-listed pattern and its optional per-rule settings (None = the global default)."""

    user: str
    channel: str
    persona: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    memory_length: int | None = None
    reply_when: ReplyWhen | None = None
    """Instead of REPLY_WHEN: "away" replies only while the owner is away, "always" whenever."""
    mode: ReplyMode | None = None
    """Instead of MODE: "draft" keeps the reply for the owner to send, edit or discard."""
    vision: bool | None = None
    """Instead of VISION: whether this rule's model is sent images (None: VISION decides)."""
    listen: Listen = "mentions"
    """Bot-account mode, guild channels: answer only when mentioned or replied to, or "all"."""
    schedule: tuple[str, ...] | None = None
    """Instead of AWAY_SCHEDULE: away hours such as "mon-fri 22:00-08:00" for this rule."""
    reply_after_seconds: float | None = None
    """Instead of REPLY_AFTER_SECONDS: how long the owner has to answer first."""
    notify: Literal["all"] | None = None
    """"all": every message of this rule is pushed (NOTIFY_URLS) while the owner is away."""
    style: bool | None = None
    """Instead of STYLE: whether replies follow the owner's style profile (`style learn`)."""
    source: RuleSource = "file"
    """Where the rule comes from: `reply_config.py`, or chosen from Discord (the database)."""
    label: str | None = None
    """What the plugin called the chat when the rule was chosen from Discord."""
    # What people are shown; not part of what the rule does (two rules that act alike are equal).
    persona_name: str | None = field(default=None, compare=False)
    """The PERSONAS name of `persona` ("custom" for a prompt of its own), None for the default."""
    where: str = field(default="", compare=False)
    """Where the rule is set: "reply_config.py REPLY_TO[2]" or "Discord"."""


@dataclass(frozen=True)
class _RuleIndex:
    """The rules by what they name, so a match costs a few lookups however many rules there are.

    Each dict keeps the first rule in file order for its key, as the most-specific-first search
    over the list did.
    """

    exact: dict[tuple[str, str], Rule]
    by_user: dict[str, Rule]
    """Rules for a user anywhere: (user, "*")."""
    by_user_in_dms: dict[str, Rule]
    """Rules for a user in any DM with the owner: (user, "@dms")."""
    by_channel: dict[str, Rule]
    """Rules for anyone in a channel: ("*", channel)."""
    channels: frozenset[str]
    """Every channel some rule names, "*" included if a rule covers a user anywhere."""

    @classmethod
    def of(cls, rules: Sequence[Rule]) -> _RuleIndex:
        exact: dict[tuple[str, str], Rule] = {}
        by_user: dict[str, Rule] = {}
        by_user_in_dms: dict[str, Rule] = {}
        by_channel: dict[str, Rule] = {}
        for rule in rules:
            if rule.channel == WILDCARD:
                by_user.setdefault(rule.user, rule)
            elif rule.channel == DMS:
                by_user_in_dms.setdefault(rule.user, rule)
            elif rule.user == WILDCARD:
                by_channel.setdefault(rule.channel, rule)
            else:
                exact.setdefault((rule.user, rule.channel), rule)
        channels = frozenset(rule.channel for rule in rules)
        return cls(exact, by_user, by_user_in_dms, by_channel, channels)


@dataclass(frozen=True)
class RuleSet:
    """The whole of `reply_config.py`: the default system prompt, the rules, the personas."""

    context_message: str
    rules: tuple[Rule, ...]
    personas: tuple[tuple[str, str], ...] = ()
    """PERSONAS as (name, system prompt) pairs, in the file's order (a tuple keeps it hashable)."""

    @cached_property
    def _index(self) -> _RuleIndex:
        return _RuleIndex.of(self.rules)

    def match(self, user_id: str, channel_id: str, *, dm: bool = False) -> Rule | None:
        """The most specific rule covering the pair (the first in the file among equals), or
        None if it is not allow-listed: exact, (user, "@dms") when `dm` (the message has no
        guild), (user, "*"), then ("*", channel)."""
        index = self._index
        return (
            index.exact.get((user_id, channel_id))
            or (index.by_user_in_dms.get(user_id) if dm else None)
            or index.by_user.get(user_id)
            or index.by_channel.get(channel_id)
        )

    def watches_channel(self, channel_id: str, *, dm: bool = False) -> bool:
        """True if any rule can match a message in `channel_id` (`dm`: a DM with the owner)."""
        channels = self._index.channels
        return channel_id in channels or WILDCARD in channels or (dm and DMS in channels)

    def watch_list(self) -> list[dict[str, str]]:
        """The patterns sent to the plugin, which filters on them before forwarding."""
        return [{"user": rule.user, "channel": rule.channel} for rule in self.rules]

    def system_prompt(self, rule: Rule) -> str:
        """The rule's persona, else CONTEXT_MESSAGE."""
        return rule.persona if rule.persona is not None else self.context_message

    def persona(self, name: str) -> str | None:
        """The system prompt of the persona called `name` in PERSONAS, or None."""
        return dict(self.personas).get(name)


EMPTY_RULES = RuleSet(context_message="", rules=())


def parse_rules(namespace: Mapping[str, object], source: str) -> RuleSet:
    """Build a RuleSet from the globals of an executed `reply_config.py`.

    Accepts the original form (`REPLY_TO = [("USER_ID", "CHANNEL_ID"), ...]`) plus
    `(user, channel, {options})` tuples and dicts with `user`, `channel` and options.
    """
    context = namespace.get("CONTEXT_MESSAGE", "")
    if not isinstance(context, str):
        raise RulesError(f"{source}: CONTEXT_MESSAGE must be a string")
    entries = namespace.get("REPLY_TO", [])
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        raise RulesError(f"{source}: REPLY_TO must be a list of (user, channel) pairs")
    personas = _parse_personas(namespace.get("PERSONAS", {}), source)
    names = {prompt: name for name, prompt in reversed(personas)}  # the first name of a prompt
    file_name = Path(source).name
    rules = tuple(
        _parse_entry(entry, f"{source}: REPLY_TO[{index}]", f"{file_name} REPLY_TO[{index}]", names)
        for index, entry in enumerate(entries)
    )
    return RuleSet(context_message=context, rules=rules, personas=personas)


def _parse_personas(personas: object, source: str) -> tuple[tuple[str, str], ...]:
    """PERSONAS = {"name": "system prompt", ...}, for the bot's /persona command."""
    if not isinstance(personas, Mapping):
        raise RulesError(f'{source}: PERSONAS must be a dict of {{"name": "system prompt"}}')
    for name, prompt in personas.items():
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_PERSONA_NAME:
            raise RulesError(
                f"{source}: PERSONAS: each name must be a non-empty string of at most "
                f"{MAX_PERSONA_NAME} characters, got {name!r}"
            )
        if not isinstance(prompt, str):
            raise RulesError(f"{source}: PERSONAS[{name!r}] must be a string (the system prompt)")
    return tuple((name.strip(), prompt) for name, prompt in personas.items())


def _parse_entry(entry: object, where: str, shown_as: str, persona_names: dict[str, str]) -> Rule:
    if isinstance(entry, tuple | list):
        if len(entry) not in (2, 3) or (len(entry) == 3 and not isinstance(entry[2], dict)):
            raise RulesError(f"{where}: expected (user, channel) or (user, channel, {{options}})")
        fields: dict[str, object] = {"user": entry[0], "channel": entry[1]}
        if len(entry) == 3:
            fields.update(entry[2])
    elif isinstance(entry, dict):
        fields = dict(entry)
    else:
        raise RulesError(f"{where}: expected a (user, channel) tuple or a dict, got {entry!r}")
    try:
        parsed = _RuleEntry.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'entry'}: {_short(error['msg'])}"
            for error in exc.errors()
        )
        raise RulesError(f"{where}: {problems}") from None
    refusal = too_wide(parsed.user, parsed.channel)
    if refusal:
        raise RulesError(f"{where}: {refusal}")
    persona = parsed.persona
    persona_name = None if persona is None else persona_names.get(persona, "custom")
    return Rule(**parsed.model_dump(), persona_name=persona_name, where=shown_as)


def too_wide(user: str, channel: str) -> str | None:
    """Why a (user, channel) pattern may not be a rule (it names nobody), or None."""
    if user == WILDCARD and channel == WILDCARD:
        return '("*", "*") would answer everyone everywhere; name a user or a channel'
    if user == WILDCARD and channel == DMS:
        return f'("*", "{DMS}") would answer everyone who writes to you in a DM; name a user'
    return None


def _short(message: str) -> str:
    return message.removeprefix("Value error, ")
