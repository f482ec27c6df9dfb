"""Bot-account mode without sockets: who gets answers, the commands, sessions, signatures."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from nacl.signing import SigningKey

from server.bot.app import IN_MEMORY, bot_limits
from server.bot.commands import (
    COMMANDS,
    REFUSAL,
    TOO_OFTEN,
    CommandReply,
    Invocation,
    SlashCommands,
    ephemeral,
    read_interaction,
)
from server.bot.endpoints import bot_api_base
from server.bot.interactions import signature_is_valid
from server.bot.pair_turns import PairTurns
from server.bot.policy import SeenMessage, decide, screen, without_mention
from server.bot.responder import Responder
from server.bot.state import MAIN_SESSION, InMemoryBotState, memory_key
from server.config import Settings
from server.conversation.memory import InMemoryStore
from server.conversation.reply_policy import ReplyPolicy
from server.conversation.rules import RuleSet, parse_rules
from server.llm.base import ChatMessage
from server.llm.chain import BackendChain
from server.storage.store_guard import StoreGuard
from tests.fakes.discord_bot_api import FakeDiscordBot, _command_errors

RULES = parse_rules(
    {
        "CONTEXT_MESSAGE": "Default voice.",
        "REPLY_TO": [("1", "10"), ("1", "20", {"persona": "Rule voice.", "listen": "all"})],
        "PERSONAS": {"pirate": "Arr.", "poet": "In verse."},
    },
    "test",
)


def seen(**changes: object) -> SeenMessage:
    values: dict[str, object] = {
        "id": "5",
        "author_id": "1",
        "author_is_bot": False,
        "channel_id": "10",
        "in_guild": False,
        "mentions_bot": False,
        "replies_to_bot": False,
        "content": "hi",
    }
    values.update(changes)
    return SeenMessage(**values)  # type: ignore[arg-type]


def test_a_listed_dm_is_answered_with_its_rule() -> None:
    decision = decide(seen(), RULES)
    assert decision.rule is not None and decision.rule.channel == "10"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"author_is_bot": True}, "author is a bot"),
        ({"author_id": "2"}, "pair is not allow-listed"),
        ({"in_guild": True}, "guild message that neither mentions nor replies to the bot"),
        ({"content": "  "}, "nothing to answer (no text, attachment, sticker or forward)"),
    ],
)
def test_what_is_not_answered_and_why(changes: dict[str, object], reason: str) -> None:
    decision = decide(seen(**changes), RULES)
    assert decision.rule is None
    assert decision.reason == reason


def test_a_message_with_only_an_attachment_is_answered() -> None:
    decision = decide(seen(content="", carries=True), RULES)
    assert decision.rule is not None


def test_in_a_guild_a_mention_a_reply_or_listen_all_is_enough() -> None:
    assert decide(seen(in_guild=True, mentions_bot=True), RULES).rule is not None
    assert decide(seen(in_guild=True, replies_to_bot=True), RULES).rule is not None
    assert decide(seen(in_guild=True, channel_id="20"), RULES).rule is not None


def test_the_guard_rails_hold_back_automatic_messages_and_a_pair_over_its_limits() -> None:
    limits = bot_limits(Settings(MAX_REPLIES_PER_MINUTE=2, REPLY_PREFIX="[sam's bot] "))
    pair, now = ("1", "10"), 1000.0
    assert screen(limits, pair, "hi", now).reply
    for prefix in ("[auto-reply] I am away", "[BOT] beep", "[sam's bot] hello"):
        held = screen(limits, pair, prefix, now)
        assert not held.reply and held.quiet
        assert held.reason.startswith("automatic message: it starts with the disclosure prefix")
    limits.replied(pair, "Hello  there!", now)
    repeated = screen(limits, ("2", "10"), "hello there!", now + 1)  # anyone, in that channel
    assert repeated.reason == "automatic message: it repeats one of our recent replies"
    assert screen(limits, ("1", "11"), "hello there!", now + 1).reply  # not another channel
    limits.replied(pair, "second", now + 2)
    over = screen(limits, pair, "third?", now + 3)
    assert (over.reply, over.reason, over.quiet) == (
        False,
        "over 2 replies per minute to this person",
        False,
    )
    assert screen(limits, pair, "fourth?", now + 4).quiet  # said once per window
    assert screen(limits, ("2", "10"), "other person", now + 4).reply
    assert screen(limits, pair, "a minute later", now + 61).reply


def test_the_bots_mentions_are_taken_out_of_the_text() -> None:
    assert without_mention("<@42> hello <@!42>", "42") == "hello"
    assert without_mention("<@43> hello", "42") == "<@43> hello"


def test_the_bot_speaks_api_v10_wherever_the_base_points() -> None:
    assert bot_api_base("https://discord.com/api/v9") == "https://discord.com/api/v10"
    assert bot_api_base("http://127.0.0.1:1/api/v10/") == "http://127.0.0.1:1/api/v10"
    assert bot_api_base("http://proxy.local/discord") == "http://proxy.local/discord"


def test_signatures_are_checked_over_timestamp_and_body() -> None:
    key = SigningKey.generate()
    body, stamp = b'{"type":1}', "1700000000"
    signature = key.sign(stamp.encode() + body).signature.hex()
    verify = key.verify_key
    assert signature_is_valid(verify, signature, stamp, body)
    assert not signature_is_valid(verify, signature, "1700000001", body)
    assert not signature_is_valid(verify, signature, stamp, body + b" ")
    assert not signature_is_valid(verify, "nothex", stamp, body)
    assert not signature_is_valid(verify, signature[:-2], stamp, body)


async def test_sessions_have_their_own_memory_keys_and_main_is_the_pair() -> None:
    state = InMemoryBotState()
    pair = ("1", "10")
    assert await state.sessions(pair) == [MAIN_SESSION]
    assert await state.current_session(pair) == MAIN_SESSION
    assert memory_key(pair, MAIN_SESSION) == pair
    assert memory_key(pair, "work") == ("1", "10/session/work")
    assert await state.add_session(pair, "work")
    assert not await state.add_session(pair, "work")
    assert await state.current_session(pair) == "work"
    assert not await state.switch_session(pair, "play")
    assert await state.switch_session(pair, MAIN_SESSION)
    assert await state.sessions(pair) == [MAIN_SESSION, "work"]
    assert await state.sessions(("1", "20")) == [MAIN_SESSION]


def test_interactions_are_read_from_guild_and_dm_payloads() -> None:
    api = FakeDiscordBot()
    api.add_guild("300", "30")
    in_guild = api.new_interaction(
        "session", "1", "30", subcommand="switch", options={"title": "w"}
    )
    assert read_interaction(in_guild.payload) == Invocation(
        "session", "1", "30", "switch", {"title": "w"}
    )
    in_dm = api.new_interaction("ask", "1", "10", options={"prompt": "q"})
    assert read_interaction(in_dm.payload) == Invocation(
        "ask", "1", "10", None, {"prompt": "q"}, dm=True
    )
    assert read_interaction({"type": 2, "data": {"name": "ask"}}) is None
    assert ephemeral(Invocation("reset", "1", "10")) and not ephemeral(Invocation("ask", "1", "10"))


def test_the_command_definitions_are_what_discord_accepts() -> None:
    assert _command_errors(COMMANDS) is None
    assert _command_errors([{"name": "Bad Name", "description": "x"}]) is not None


def responder_over(
    rules: Callable[[], RuleSet], memory: InMemoryStore, state: InMemoryBotState
) -> Responder:
    """A responder over in-memory stores, with no LLM backend."""
    return Responder(
        settings=Settings(),
        rules=rules,
        llm=BackendChain([]),
        memory=memory,
        state=state,
        stored=StoreGuard(IN_MEMORY),
    )


def commands_for(
    rules: RuleSet, limits: ReplyPolicy | None = None
) -> tuple[SlashCommands, InMemoryStore, InMemoryBotState]:
    """Slash commands over in-memory stores; no LLM backend (these commands need none)."""
    memory, state = InMemoryStore(), InMemoryBotState()
    responder = responder_over(lambda: rules, memory, state)
    commands = SlashCommands(
        rules=lambda: rules,
        state=state,
        memory=memory,
        responder=responder,
        limits=limits or bot_limits(Settings()),
        turns=PairTurns(),
    )
    return commands, memory, state


async def test_unknown_commands_and_unlisted_callers_are_refused_before_anything_runs() -> None:
    commands, _memory, _state = commands_for(RULES)
    assert commands.check(Invocation("reset", "1", "10")) is None
    refusal = commands.check(Invocation("reset", "2", "10"))
    assert refusal is not None and refusal.content == REFUSAL and refusal.ephemeral
    unknown = commands.check(Invocation("dance", "1", "10"))
    assert unknown is not None and "/dance" in unknown.content
    assert (await commands.run(Invocation("reset", "2", "10"))).content == REFUSAL


async def test_persona_names_default_and_unknown() -> None:
    commands, _memory, state = commands_for(RULES)
    unknown = await commands.run(Invocation("persona", "1", "10", options={"name": "ninja"}))
    assert unknown.content == "There is no persona “ninja”. Personas: “pirate”, “poet”."
    assert await state.persona(("1", "10")) is None
    await commands.run(Invocation("persona", "1", "10", options={"name": "poet"}))
    listed = await commands.run(Invocation("persona", "1", "10"))
    assert listed.content == "Personas: “pirate”, “poet”. With you here I use “poet”."
    await commands.run(Invocation("persona", "1", "10", options={"name": "default"}))
    assert await state.persona(("1", "10")) is None


async def test_a_persona_taken_out_of_personas_falls_back_to_the_rule() -> None:
    rules, memory, state = RULES, InMemoryStore(), InMemoryBotState()
    responder = responder_over(lambda: rules, memory, state)  # `rules` is changed below
    rule = RULES.match("1", "20")
    assert rule is not None
    await state.set_persona(("1", "20"), "pirate")
    assert await responder.system_prompt(("1", "20"), rule) == "Arr."
    rules = parse_rules({"REPLY_TO": [("1", "20", {"persona": "Rule voice."})]}, "edited")
    assert await responder.system_prompt(("1", "20"), rule) == "Rule voice."


async def test_reset_and_new_sessions() -> None:
    commands, memory, _state = commands_for(RULES)
    pair = ("1", "10")
    await memory.add(pair, ChatMessage("user", "old"))
    reset = await commands.run(Invocation("reset", "1", "10"))
    assert reset.content == "Done: I forgot our conversation here (session “main”)."
    assert await memory.recent(pair, 10) == []
    first = await commands.run(Invocation("session", "1", "10", "new"))
    assert first.content == "Started session “session 2”; it is the current one now."
    again = await commands.run(Invocation("session", "1", "10", "new", {"title": "session 2"}))
    assert again.content.startswith("There is already a session “session 2”")


async def test_ask_past_the_callers_limits_is_refused_at_once() -> None:
    limits = bot_limits(Settings(MAX_REPLIES_PER_MINUTE=2))
    commands, _memory, _state = commands_for(RULES, limits)
    ask = Invocation("ask", "1", "10", options={"prompt": "hi"})
    assert commands.check(ask) is None
    limits.replied(ask.pair, "an answer", time.time())
    assert commands.check(ask) is None
    limits.replied(ask.pair, "another answer", time.time())
    refusal = commands.check(ask)
    assert refusal == CommandReply(TOO_OFTEN, ephemeral=True)
    assert commands.check(Invocation("reset", "1", "10")) is None  # only /ask answers
    assert commands.check(Invocation("ask", "1", "20", options={"prompt": "hi"})) is None


async def test_ask_without_a_prompt_and_without_a_backend() -> None:
    commands, _memory, _state = commands_for(RULES)
    empty = await commands.run(Invocation("ask", "1", "10", options={"prompt": " "}))
    assert empty.content == "Ask me something: /ask prompt:<your question>."
    no_backend = await commands.run(Invocation("ask", "1", "10", options={"prompt": "hi"}))
    assert no_backend.content == "Sorry, I have no answer right now."
    assert not no_backend.ephemeral
