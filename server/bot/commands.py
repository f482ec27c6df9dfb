"""The slash commands: their definitions, reading an invocation, and what each one answers.

Shared by the gateway bot and the HTTP interactions endpoint; neither Discord library is used here.
The adapters first ask `check` (instant, so a refusal goes out at once), then defer with
`ephemeral(invocation)` and send what `run` returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from server.bot.pair_turns import PairTurns
from server.bot.responder import Responder
from server.bot.state import MAIN_SESSION, MAX_TITLE_LENGTH, BotStateStore
from server.conversation.memory import MemoryStore, PairKey
from server.conversation.reply_policy import ReplyPolicy
from server.conversation.rules import MAX_PERSONA_NAME, RuleSet

log = logging.getLogger(__name__)

STRING, SUB_COMMAND = 3, 1
GUILD, BOT_DM = 0, 1
REFUSAL = "Sorry, I only answer the people my owner has listed here."
NO_ANSWER = "Sorry, I have no answer right now."
TOO_OFTEN = "I have answered you often enough here for now; ask again a little later."
DEFAULT_PERSONA = "default"


def _option(name: str, description: str, *, required: bool, max_length: int) -> dict[str, Any]:
    return {
        "type": STRING,
        "name": name,
        "description": description,
        "required": required,
        "max_length": max_length,
    }


def _command(name: str, description: str, options: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": 1,
        "name": name,
        "description": description,
        "options": options,
        "contexts": [GUILD, BOT_DM],
    }


COMMANDS: list[dict[str, Any]] = [
    _command("reset", "Forget your conversation with me in this channel", []),
    _command(
        "persona",
        "List the personas, or pick the one I use with you in this channel",
        [
            _option(
                "name",
                "The persona to use (default: back to the usual one)",
                required=False,
                max_length=MAX_PERSONA_NAME,
            )
        ],
    ),
    _command(
        "ask",
        "A one-off answer, shown in the channel and not remembered",
        [_option("prompt", "What to ask", required=True, max_length=4000)],
    ),
    _command(
        "session",
        "Separate conversations with me in this channel",
        [
            {
                "type": SUB_COMMAND,
                "name": "new",
                "description": "Start a new conversation and make it the current one",
                "options": [
                    _option("title", "Its title", required=False, max_length=MAX_TITLE_LENGTH)
                ],
            },
            {"type": SUB_COMMAND, "name": "list", "description": "List your conversations here"},
            {
                "type": SUB_COMMAND,
                "name": "switch",
                "description": "Go back to another conversation",
                "options": [
                    _option(
                        "title",
                        "The conversation's title",
                        required=True,
                        max_length=MAX_TITLE_LENGTH,
                    )
                ],
            },
        ],
    ),
]
"""The application's commands, as `PUT /applications/{id}/commands` (bulk overwrite) takes them."""

KNOWN = {command["name"] for command in COMMANDS}


@dataclass(frozen=True)
class Invocation:
    """One slash command as a person typed it: `/session switch title:work` is
    name "session", subcommand "switch", options {"title": "work"}."""

    name: str
    user_id: str
    channel_id: str
    subcommand: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    dm: bool = False
    """Typed in a DM (the interaction has no guild): rules for "@dms" cover it."""

    @property
    def pair(self) -> PairKey:
        """The (user, channel) the command is about."""
        return (self.user_id, self.channel_id)


def read_command_data(
    data: Mapping[str, Any], user_id: str, channel_id: str, *, dm: bool = False
) -> Invocation:
    """An invocation from an interaction's `data` (its name and options) and who sent it where."""
    options = data.get("options") or []
    subcommand = None
    if options and options[0].get("type") == SUB_COMMAND:
        subcommand = str(options[0]["name"])
        options = options[0].get("options") or []
    values = {str(option["name"]): str(option.get("value", "")) for option in options}
    return Invocation(str(data.get("name", "")), user_id, channel_id, subcommand, values, dm)


def read_interaction(payload: Mapping[str, Any]) -> Invocation | None:
    """An invocation from a whole APPLICATION_COMMAND interaction payload; None if incomplete.

    In a guild the caller is `member.user`; in a DM, `user`.
    """
    user = (payload.get("member") or {}).get("user") or payload.get("user") or {}
    channel_id = payload.get("channel_id") or (payload.get("channel") or {}).get("id")
    data = payload.get("data")
    if not user.get("id") or not channel_id or not isinstance(data, Mapping):
        return None
    dm = not payload.get("guild_id")
    return read_command_data(data, str(user["id"]), str(channel_id), dm=dm)


@dataclass(frozen=True)
class CommandReply:
    """What to show the caller; `ephemeral` replies only they can see."""

    content: str
    ephemeral: bool


def ephemeral(invocation: Invocation) -> bool:
    """Every command answers only its caller, except /ask, whose answer is for the channel."""
    return invocation.name != "ask"


class SlashCommands:
    """/reset, /persona, /ask and /session, for people an allow-list rule covers."""

    def __init__(
        self,
        *,
        rules: Callable[[], RuleSet],
        state: BotStateStore,
        memory: MemoryStore,
        responder: Responder,
        limits: ReplyPolicy,
        turns: PairTurns,
    ) -> None:
        self._rules = rules
        self._state = state
        self._memory = memory
        self._responder = responder
        self._limits = limits
        self._turns = turns

    def check(self, invocation: Invocation) -> CommandReply | None:
        """An immediate ephemeral refusal (unknown command, caller not listed, an /ask past the
        caller's reply limits here), or None to go on."""
        if invocation.name not in KNOWN:
            return CommandReply(f"I do not know the command /{invocation.name}.", ephemeral=True)
        if self._rules().match(*invocation.pair, dm=invocation.dm) is None:
            return CommandReply(REFUSAL, ephemeral=True)
        if invocation.name == "ask":
            limited = self._limits.may_reply(invocation.pair, time.time())
            if not limited.reply:
                level = logging.DEBUG if limited.quiet else logging.INFO
                log.log(
                    level,
                    "/ask of user %s in channel %s refused: %s",
                    *invocation.pair,
                    limited.reason,
                )
                return CommandReply(TOO_OFTEN, ephemeral=True)
        return None

    async def run(self, invocation: Invocation) -> CommandReply:
        """Carry out the command and say how it went.

        An /ask waits for its pair's turn, then checks the limits again: an answer to the same
        pair that was being written when it arrived counts by then.
        """
        if invocation.name != "ask":
            return await self._run(invocation)
        async with self._turns.turn(invocation.pair):
            return await self._run(invocation)

    async def _run(self, invocation: Invocation) -> CommandReply:
        refusal = self.check(invocation)
        if refusal is not None:
            return refusal
        if invocation.name == "reset":
            text = await self._reset(invocation.pair)
        elif invocation.name == "persona":
            text = await self._persona(invocation.pair, invocation.options.get("name", "").strip())
        elif invocation.name == "ask":
            text = await self._ask(invocation)
        else:
            text = await self._session(invocation)
        return CommandReply(text, ephemeral(invocation))

    async def _reset(self, pair: PairKey) -> str:
        session = await self._state.current_session(pair)
        await self._memory.reset(await self._responder.current_memory_key(pair))
        return f"Done: I forgot our conversation here (session “{session}”)."

    async def _persona(self, pair: PairKey, name: str) -> str:
        rules = self._rules()
        names = [persona for persona, _ in rules.personas]
        listed = ", ".join(f"“{persona}”" for persona in names) or "none (PERSONAS is empty)"
        if not name:
            current = await self._state.persona(pair)
            using = f"“{current}”" if current in names else "the default"
            return f"Personas: {listed}. With you here I use {using}."
        if name in names:
            await self._state.set_persona(pair, name)
            return f"From now on I answer you here as “{name}”."
        if name == DEFAULT_PERSONA:
            await self._state.set_persona(pair, None)
            return "From now on I answer you here with the default persona."
        return f"There is no persona “{name}”. Personas: {listed}."

    async def _ask(self, invocation: Invocation) -> str:
        prompt = invocation.options.get("prompt", "").strip()
        rule = self._rules().match(*invocation.pair, dm=invocation.dm)
        if not prompt or rule is None:
            return "Ask me something: /ask prompt:<your question>."
        answer = await self._responder.ask(invocation.pair, prompt, rule)
        if answer is None:
            return NO_ANSWER
        self._limits.replied(invocation.pair, answer.text, time.time())
        return answer.text

    async def _session(self, invocation: Invocation) -> str:
        pair = invocation.pair
        titles = await self._state.sessions(pair)
        title = invocation.options.get("title", "").strip()[:MAX_TITLE_LENGTH]
        if invocation.subcommand == "new":
            title = title or _free_title(titles)
            if not await self._state.add_session(pair, title):
                return (
                    f"There is already a session “{title}”; use /session switch to go back to it."
                )
            return f"Started session “{title}”; it is the current one now."
        if invocation.subcommand == "switch":
            if not await self._state.switch_session(pair, title):
                return f"There is no session “{title}”. Sessions: {_listing(titles)}."
            return f"Switched to session “{title}”."
        current = await self._state.current_session(pair)
        lines = [f"• {t} (current)" if t == current else f"• {t}" for t in titles]
        return "Your sessions here:\n" + "\n".join(lines)


def _free_title(titles: list[str]) -> str:
    number = len(titles) + 1
    while f"session {number}" in titles:
        number += 1
    return f"session {number}"


def _listing(titles: list[str]) -> str:
    return ", ".join(f"“{title}”" for title in titles) or f"“{MAIN_SESSION}”"
