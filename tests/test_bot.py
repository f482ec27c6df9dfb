"""The gateway bot end to end: real discord.py over real sockets to the fake gateway and REST."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest

from server.bot.app import Bot
from server.bot.commands import REFUSAL, TOO_OFTEN
from server.config import ConfigError
from server.conversation.context_window import REPLY_PRIMING_TOKENS
from server.conversation.tokens import TOKENS_PER_MESSAGE, TokenCounter
from tests.bot_harness import (
    DM_CHANNEL,
    FRIEND,
    GUILD_CHANNEL,
    STRANGER,
    RunningBot,
    bot_settings,
    fake_discord_bot,
    running_bot,
)
from tests.fakes.discord_bot_api import EPHEMERAL, FakeInteraction
from tests.fakes.openai_api import FakeOpenAI, reply
from tests.fault_rig import eventually

RULES = f'''
CONTEXT_MESSAGE = "You are Sam's assistant."
REPLY_TO = [("{FRIEND}", "{DM_CHANNEL}"), ("{FRIEND}", "{GUILD_CHANNEL}")]
PERSONAS = {{"pirate": "You talk like a pirate.", "poet": "You answer in verse."}}
'''
NO_PINGS = {"parse": [], "replied_user": False}


CONTEXT_LINE = re.compile(r"\n\nYou are answering \S+ for the owner\. It is [^\n]* is\.")
"""The line on who writes and when that replies to messages add to the system prompt (its
content is tested in test_bot_attachments)."""


def without_context(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`messages` with the context line taken out of the system prompt."""
    return [
        {**m, "content": CONTEXT_LINE.sub("", m["content"])} if m["role"] == "system" else m
        for m in messages
    ]


def last_chat(llm: FakeOpenAI) -> list[dict[str, Any]]:
    """The messages of the last chat request the LLM received, without the context line."""
    return without_context(llm.requests[-1]["messages"])


async def command(
    running: RunningBot, command_name: str, user: str, channel: str, **options: str
) -> FakeInteraction:
    """Run a slash command through the gateway and wait for its answer."""
    subcommand = options.pop("subcommand", None)
    interaction = running.api.new_interaction(
        command_name, user, channel, options=options, subcommand=subcommand
    )
    running.gateway.interact(interaction)
    await running.api.wait_for_answer(interaction)
    return interaction


async def test_a_dm_from_a_listed_user_is_answered_with_memory(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_bot(tmp_path, fake_openai, RULES) as running:
        api, gateway = running.api, running.gateway
        first = api.post_as_user(FRIEND, DM_CHANNEL, "hello bot")
        [reply] = await running.replies(1)
        assert reply["content"] == "echo: hello bot [turns=1]"
        assert reply["author"]["id"] == api.BOT_ID
        assert reply["channel_id"] == DM_CHANNEL
        assert reply["allowed_mentions"]["parse"] == []
        assert "message_reference" not in reply  # a plain message in a DM
        assert DM_CHANNEL in api.typing
        assert last_chat(fake_openai)[0] == {
            "role": "system",
            "content": "You are Sam's assistant.",
        }

        api.post_as_user(FRIEND, DM_CHANNEL, "and again")
        replies = await running.replies(2)
        assert replies[1]["content"] == "echo: and again [turns=3]"
        assert [m["content"] for m in last_chat(fake_openai)[1:]] == [
            "hello bot",
            "echo: hello bot [turns=1]",
            "and again",
        ]
        assert first["id"] != replies[0]["id"]

        # The connection as Discord saw it: one IDENTIFY with the intents, heartbeats acked,
        # the commands registered with one bulk overwrite.
        [identify] = gateway.identifies
        intents = identify["intents"]
        assert intents & (1 << 0) and intents & (1 << 9) and intents & (1 << 12)
        assert intents & (1 << 15)  # MESSAGE_CONTENT
        assert gateway.heartbeats >= 1
        assert api.command_overwrites == 1
        assert {c["name"] for c in api.commands} == {"reset", "persona", "ask", "session"}
        overwrite = [r for r in api.requests if r.method == "PUT"]
        assert overwrite[0].path == f"/api/v10/applications/{api.APPLICATION_ID}/commands"
        assert overwrite[0].headers["Authorization"] == f"Bot {api.BOT_TOKEN}"


async def test_strangers_bots_and_unaddressed_guild_messages_get_no_answer(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_bot(tmp_path, fake_openai, RULES) as running:
        api = running.api
        api.post_as_user(STRANGER, DM_CHANNEL, "I am not listed")
        api.post_as_user(FRIEND, DM_CHANNEL, "beep, I am a bot", author_is_bot=True)
        api.post_as_user(FRIEND, GUILD_CHANNEL, "talking to someone else")
        api.post_as_user(FRIEND, DM_CHANNEL, "this one counts")
        [reply] = await running.replies(1)
        assert reply["content"] == "echo: this one counts [turns=1]"
        # The bot's own reply came back as MESSAGE_CREATE too; a second message proves the
        # earlier ones were all decided, and that nothing but it was answered.
        api.post_as_user(FRIEND, DM_CHANNEL, "last")
        replies = await running.replies(2)
        assert replies[1]["content"] == "echo: last [turns=3]"
        assert len(fake_openai.requests) == 2
        assert len(api.messages) == 2


async def test_a_mention_in_a_guild_is_answered_as_a_reply_that_pings_nobody(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_bot(tmp_path, fake_openai, RULES) as running:
        api = running.api
        asked = api.post_as_user(
            FRIEND, GUILD_CHANNEL, f"<@{api.BOT_ID}> what is up?", mentions_bot=True
        )
        [reply] = await running.replies(1)
        assert reply["content"] == "echo: what is up? [turns=1]"  # the mention is not sent
        assert str(reply["message_reference"]["message_id"]) == asked["id"]
        assert reply["type"] == 19
        assert reply["allowed_mentions"] == NO_PINGS

        # Replying to the bot's message is addressing it too, without a mention.
        api.post_as_user(FRIEND, GUILD_CHANNEL, "tell me more", reply_to=reply["id"])
        replies = await running.replies(2)
        assert replies[1]["content"] == "echo: tell me more [turns=3]"


async def test_listen_all_answers_guild_messages_without_a_mention(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    rules = f'REPLY_TO = [("*", "{GUILD_CHANNEL}", {{"listen": "all"}})]\n'
    async with running_bot(tmp_path, fake_openai, rules) as running:
        running.api.post_as_user(STRANGER, GUILD_CHANNEL, "anyone here?")
        [reply] = await running.replies(1)
        assert reply["content"] == "echo: anyone here? [turns=1]"
        assert reply["allowed_mentions"] == NO_PINGS


async def test_reset_forgets_the_conversation_here(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    async with running_bot(tmp_path, fake_openai, RULES) as running:
        running.api.post_as_user(FRIEND, DM_CHANNEL, "remember me")
        await running.replies(1)
        reset = await command(running, "reset", FRIEND, DM_CHANNEL)
        assert reset.callback is not None
        assert reset.callback["type"] == 5
        assert reset.callback["data"]["flags"] == EPHEMERAL
        assert reset.original is not None
        assert reset.original["flags"] & EPHEMERAL
        assert "forgot our conversation" in reset.original["content"]
        running.api.post_as_user(FRIEND, DM_CHANNEL, "who am I?")
        replies = await running.replies(2)
        assert replies[1]["content"] == "echo: who am I? [turns=1]"


async def test_persona_lists_and_sets_the_persona_for_the_caller_here(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_bot(tmp_path, fake_openai, RULES) as running:
        listed = await command(running, "persona", FRIEND, DM_CHANNEL)
        assert listed.original is not None
        assert listed.original["content"] == (
            "Personas: “pirate”, “poet”. With you here I use the default."
        )
        assert listed.original["flags"] & EPHEMERAL
        chosen = await command(running, "persona", FRIEND, DM_CHANNEL, name="pirate")
        assert chosen.original is not None
        assert "“pirate”" in chosen.original["content"]

        running.api.post_as_user(FRIEND, DM_CHANNEL, "ahoy")
        await running.replies(1)
        assert last_chat(fake_openai)[0]["content"] == "You talk like a pirate."
        # Only here: in the guild channel the rule's own persona still applies.
        running.api.post_as_user(
            FRIEND, GUILD_CHANNEL, f"<@{running.api.BOT_ID}> hi", mentions_bot=True
        )
        await running.replies(2)
        assert last_chat(fake_openai)[0]["content"] == "You are Sam's assistant."


async def test_ask_answers_in_the_channel_and_is_not_remembered(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_bot(tmp_path, fake_openai, RULES) as running:
        asked = await command(running, "ask", FRIEND, GUILD_CHANNEL, prompt="2+2?")
        assert asked.callback is not None
        assert asked.callback["type"] == 5
        assert not asked.callback.get("data", {}).get("flags", 0) & EPHEMERAL
        assert asked.original is not None
        assert asked.original["content"] == "echo: 2+2? [turns=1]"
        assert asked.original["flags"] == 0  # visible to the channel
        assert asked.edits[-1]["allowed_mentions"]["parse"] == []
        running.api.post_as_user(
            FRIEND, GUILD_CHANNEL, f"<@{running.api.BOT_ID}> next", mentions_bot=True
        )
        [reply] = await running.replies(1)
        assert reply["content"] == "echo: next [turns=1]"  # the /ask left no memory


async def test_sessions_keep_separate_memories(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    async with running_bot(tmp_path, fake_openai, RULES) as running:
        api = running.api
        api.post_as_user(FRIEND, DM_CHANNEL, "in main")
        await running.replies(1)

        new = await command(running, "session", FRIEND, DM_CHANNEL, subcommand="new", title="work")
        assert new.original is not None
        assert new.original["content"] == "Started session “work”; it is the current one now."
        assert new.original["flags"] & EPHEMERAL
        api.post_as_user(FRIEND, DM_CHANNEL, "in work")
        replies = await running.replies(2)
        assert replies[1]["content"] == "echo: in work [turns=1]"

        listed = await command(running, "session", FRIEND, DM_CHANNEL, subcommand="list")
        assert listed.original is not None
        assert listed.original["content"] == "Your sessions here:\n• main\n• work (current)"

        back = await command(
            running, "session", FRIEND, DM_CHANNEL, subcommand="switch", title="main"
        )
        assert back.original is not None
        assert back.original["content"] == "Switched to session “main”."
        api.post_as_user(FRIEND, DM_CHANNEL, "back in main")
        replies = await running.replies(3)
        assert replies[2]["content"] == "echo: back in main [turns=3]"

        unknown = await command(
            running, "session", FRIEND, DM_CHANNEL, subcommand="switch", title="nope"
        )
        assert unknown.original is not None
        assert unknown.original["content"] == (
            "There is no session “nope”. Sessions: “main”, “work”."
        )


async def test_a_caller_no_rule_covers_is_refused_ephemerally(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_bot(tmp_path, fake_openai, RULES) as running:
        refused = await command(running, "ask", STRANGER, GUILD_CHANNEL, prompt="hi")
        assert refused.callback is not None
        assert refused.callback["type"] == 4  # answered at once, not deferred
        assert refused.callback["data"]["content"] == REFUSAL
        assert refused.callback["data"]["flags"] == EPHEMERAL
        assert refused.callback["data"]["allowed_mentions"] == {"parse": []}
        assert refused.edits == []
        assert fake_openai.requests == []


async def test_a_gateway_disconnect_resumes_and_replays_what_was_missed(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_bot(tmp_path, fake_openai, RULES) as running:
        api, gateway = running.api, running.gateway
        api.post_as_user(FRIEND, DM_CHANNEL, "before")
        await running.replies(1)

        gateway.hold_resumes()
        await gateway.disconnect(4000)
        api.post_as_user(FRIEND, DM_CHANNEL, "while you were away")
        await gateway.wait_for_resume()
        gateway.release_resumes()

        replies = await running.replies(2)
        assert replies[1]["content"] == "echo: while you were away [turns=3]"
        assert len(gateway.identifies) == 1  # resumed, not identified again
        assert gateway.resumes[0]["session_id"]
        assert gateway.replayed >= 1


async def test_a_429_is_honoured(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    async with running_bot(tmp_path, fake_openai, RULES) as running:
        api = running.api
        api.fail_next(429, retry_after=0.3, channel_id=DM_CHANNEL)
        api.post_as_user(FRIEND, DM_CHANNEL, "hello")
        [reply] = await running.replies(1)
        assert reply["content"] == "echo: hello [turns=1]"
        posts = [
            request
            for request in api.requests
            if request.method == "POST" and request.path.endswith(f"{DM_CHANNEL}/messages")
        ]
        assert [request.status for request in posts] == [429, 200]


async def test_a_refused_token_is_a_config_error_naming_it(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    reply_config = tmp_path / "reply_config.py"
    reply_config.write_text(RULES, encoding="utf-8")
    async with fake_discord_bot() as (api, gateway):
        bot = Bot(bot_settings(api, fake_openai, DISCORD_BOT_TOKEN="not-the-token"), reply_config)
        with pytest.raises(ConfigError, match="DISCORD_BOT_TOKEN") as caught:
            await asyncio.wait_for(bot.run(), 10)
        assert "not-the-token" not in str(caught.value)
        assert gateway.identifies == []


async def test_a_refused_message_content_intent_says_where_to_turn_it_on(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    reply_config = tmp_path / "reply_config.py"
    reply_config.write_text(RULES, encoding="utf-8")
    async with fake_discord_bot(allow_message_content=False) as (api, _gateway):
        bot = Bot(bot_settings(api, fake_openai), reply_config)
        with pytest.raises(ConfigError, match="Message Content Intent"):
            await asyncio.wait_for(bot.run(), 10)


async def test_an_application_id_of_another_application_is_refused(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    reply_config = tmp_path / "reply_config.py"
    reply_config.write_text(RULES, encoding="utf-8")
    async with fake_discord_bot() as (api, _gateway):
        settings = bot_settings(api, fake_openai, DISCORD_APPLICATION_ID="42")
        started = time.monotonic()
        with pytest.raises(ConfigError, match="DISCORD_APPLICATION_ID is 42"):
            await asyncio.wait_for(Bot(settings, reply_config).run(), 10)
        assert time.monotonic() - started < 10
        assert api.command_overwrites == 0


async def test_a_chatty_person_gets_no_reply_past_the_per_minute_limit_and_one_log_line(
    tmp_path: Path, fake_openai: FakeOpenAI, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG, logger="server.bot.client")
    async with running_bot(tmp_path, fake_openai, RULES, MAX_REPLIES_PER_MINUTE=4) as running:
        api = running.api
        sent = [api.post_as_user(FRIEND, DM_CHANNEL, f"message {n}") for n in range(1, 7)]

        def held_back() -> list[logging.LogRecord]:
            return [r for r in caplog.records if "not answered" in r.getMessage()]

        replies = await running.replies(4)
        # A pair's messages are decided in order: once the 6th is, none of them is pending.
        await eventually(
            lambda: any(sent[5]["id"] in r.getMessage() for r in held_back()), "the 6th decided"
        )
        assert [reply["content"] for reply in replies] == [
            f"echo: message {n} [turns={2 * n - 1}]" for n in range(1, 5)
        ]
        assert len(api.messages) == 4
        assert len(fake_openai.requests) == 4
        said = [r.getMessage() for r in held_back() if r.levelno >= logging.INFO]
        assert said == [
            f"message {sent[4]['id']} remembered, not answered: "
            "over 4 replies per minute to this person"
        ]
        # What was held back is remembered, for the next answer.
        store = running.bot.parts.store
        assert store is not None
        remembered = await store.recent((FRIEND, DM_CHANNEL), 20)
        assert [turn.content for turn in remembered[-2:]] == ["message 5", "message 6"]


async def test_automatic_messages_get_no_answer_so_two_bots_cannot_loop(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_bot(tmp_path, fake_openai, RULES) as running:
        api = running.api
        api.post_as_user(FRIEND, DM_CHANNEL, "hello")
        [reply] = await running.replies(1)
        api.post_as_user(FRIEND, DM_CHANNEL, reply["content"])  # our reply, said back to us
        api.post_as_user(FRIEND, DM_CHANNEL, "[Auto-Reply] I am away right now")
        api.post_as_user(FRIEND, DM_CHANNEL, "a real question")
        replies = await running.replies(2)
        # The two automatic messages were decided first (a pair's messages go in order), not
        # answered, and remembered: five turns.
        assert replies[1]["content"] == "echo: a real question [turns=5]"
        assert len(fake_openai.requests) == 2
        assert len(api.messages) == 2


async def test_the_reply_limits_survive_a_restart_whatever_the_session(
    tmp_path: Path, fake_openai: FakeOpenAI, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG, logger="server.bot.client")
    settings = {"MAX_REPLIES_PER_MINUTE": 1, "DATABASE": str(tmp_path / "bot.db")}
    async with running_bot(tmp_path, fake_openai, RULES, **settings) as running:
        await command(running, "session", FRIEND, DM_CHANNEL, subcommand="new")
        running.api.post_as_user(FRIEND, DM_CHANNEL, "hello")  # answered in "session 2"
        await running.replies(1)
    async with running_bot(tmp_path, fake_openai, RULES, **settings) as running:
        held = running.api.post_as_user(FRIEND, DM_CHANNEL, "still there?")
        running.api.post_as_user(
            FRIEND, GUILD_CHANNEL, f"<@{running.api.BOT_ID}> hi", mentions_bot=True
        )
        [other] = await running.replies(1)  # the same person in a channel not yet answered
        assert other["channel_id"] == GUILD_CHANNEL
        said = f"message {held['id']} remembered, not answered: over 1 replies per minute"
        await eventually(lambda: any(said in r.getMessage() for r in caplog.records), said)
        assert len(running.api.messages) == 1
        assert len(fake_openai.requests) == 2


async def test_a_message_answer_counts_toward_the_limits_of_an_ask(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_bot(tmp_path, fake_openai, RULES, MAX_REPLIES_PER_MINUTE=1) as running:
        running.api.post_as_user(FRIEND, DM_CHANNEL, "hello")
        await running.replies(1)
        refused = await command(running, "ask", FRIEND, DM_CHANNEL, prompt="and now?")
        assert refused.callback is not None
        assert refused.callback["type"] == 4  # refused at once, not deferred
        assert refused.callback["data"]["content"] == TOO_OFTEN
        assert refused.callback["data"]["flags"] == EPHEMERAL
        assert len(fake_openai.requests) == 1


async def test_an_ask_answer_counts_toward_the_limits_of_messages_and_asks(
    tmp_path: Path, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="server.bot")
    async with running_bot(tmp_path, fake_openai, RULES, MAX_REPLIES_PER_MINUTE=1) as running:
        asked = await command(running, "ask", FRIEND, DM_CHANNEL, prompt="first?")
        assert asked.original is not None
        assert asked.original["content"] == "echo: first? [turns=1]"

        held = running.api.post_as_user(FRIEND, DM_CHANNEL, "and now?")
        said = f"message {held['id']} remembered, not answered: over 1 replies per minute"
        await eventually(lambda: any(said in r.getMessage() for r in caplog.records), said)
        again = await command(running, "ask", FRIEND, DM_CHANNEL, prompt="and again?")
        assert again.callback is not None
        assert again.callback["type"] == 4  # refused at once
        assert again.callback["data"]["content"] == TOO_OFTEN
        assert running.api.messages == []
        assert len(fake_openai.requests) == 1


async def test_two_asks_at_the_same_instant_share_one_limit(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.delay = 0.3  # the second /ask arrives while the first is being answered
    async with running_bot(tmp_path, fake_openai, RULES, MAX_REPLIES_PER_MINUTE=1) as running:
        asks = [
            running.api.new_interaction("ask", FRIEND, GUILD_CHANNEL, options={"prompt": text})
            for text in ("first?", "second?")
        ]
        for ask in asks:
            running.gateway.interact(ask)
        answers = [await running.api.wait_for_answer(ask) for ask in asks]
        assert answers[0]["content"] == "echo: first? [turns=1]"
        assert answers[1]["content"] == TOO_OFTEN  # in its turn, after the first was counted
        assert len(fake_openai.requests) == 1


async def test_a_broken_database_costs_memory_not_answers(
    tmp_path: Path, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_bot(tmp_path, fake_openai, RULES) as running:
        store = running.bot.parts.store
        assert store is not None
        running.api.post_as_user(FRIEND, DM_CHANNEL, "first")
        await running.replies(1)
        # Every write now fails as on a read-only file system: SQLITE_READONLY.
        await store.database.run(lambda db: db.execute("PRAGMA query_only = ON"))
        with caplog.at_level(logging.INFO, logger="server"):
            running.api.post_as_user(FRIEND, DM_CHANNEL, "second")
            running.api.post_as_user(FRIEND, DM_CHANNEL, "third")
            replies = await running.replies(3)
        # Answered from what was remembered before: "second" could not be kept.
        assert [r["content"] for r in replies[1:]] == [
            "echo: second [turns=3]",
            "echo: third [turns=3]",
        ]
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, errors  # said once, not per statement
        assert store.path in errors[0] and "replies go on" in errors[0]

        await store.database.run(lambda db: db.execute("PRAGMA query_only = OFF"))
        with caplog.at_level(logging.INFO, logger="server"):
            running.api.post_as_user(FRIEND, DM_CHANNEL, "fourth")
            fourth = (await running.replies(4))[3]
        assert fourth["content"] == "echo: fourth [turns=3]"
        recovered = [r.getMessage() for r in caplog.records if "works again" in r.getMessage()]
        assert recovered == [f"the database {store.path} works again"]


def sentence(n: int) -> str:
    return f"Message {n}: " + " ".join(f"w{n}x{i}" for i in range(8))


async def test_a_long_conversation_is_sent_within_context_tokens_with_the_newest_message_whole(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    budget, turns = 190, 8  # the context line takes some 35 tokens
    settings = {"CONTEXT_TOKENS": budget, "MEMORY_LENGTH": 10, "MAX_REPLIES_PER_MINUTE": 0}
    async with running_bot(tmp_path, fake_openai, RULES, **settings) as running:
        said: list[str] = []
        for n in range(1, turns + 1):
            running.api.post_as_user(FRIEND, DM_CHANNEL, sentence(n))
            replies = await running.replies(n)
            said += [sentence(n), replies[-1]["content"]]

    counter = TokenCounter()

    def cost(texts: list[str]) -> int:
        tokens = sum(counter.count(text, fake_openai.MODEL) + TOKENS_PER_MESSAGE for text in texts)
        return tokens + REPLY_PRIMING_TOKENS

    system = "You are Sam's assistant."
    *earlier, newest, _reply = said
    assert cost([system, *earlier, newest]) > budget  # the whole conversation would not fit
    assert cost([m["content"] for m in fake_openai.requests[-1]["messages"]]) <= budget
    chat = last_chat(fake_openai)
    sent = [message["content"] for message in chat]
    assert chat[0] == {"role": "system", "content": system}
    assert chat[-1] == {"role": "user", "content": newest}
    history = sent[1:-1]
    assert 2 <= len(history) < len(earlier)  # the oldest turns went, the newest stayed
    assert history == earlier[-len(history) :]


SUMMARY_SETTINGS = {
    "SUMMARIZE": True,
    "CONTEXT_TOKENS": 150,
    "MEMORY_LENGTH": 10,
    "MAX_REPLIES_PER_MINUTE": 0,
}


def summarising(llm: FakeOpenAI) -> list[list[str]]:
    """Make the fake LLM answer summary requests with "SUMMARY n" (n counts them) and echo the
    others; the list it returns fills with the lines each summary request asked to summarise."""
    asked: list[list[str]] = []

    def answer(messages: list[dict[str, Any]]) -> str:
        if messages[0]["content"].startswith("Summarise"):
            asked.append(messages[1]["content"].split("\n"))
            return f"SUMMARY {len(asked)}"
        return reply(messages)

    llm.reply_fn = answer
    return asked


def summarised(lines: list[str]) -> list[str]:
    """The turns a summary request's lines carry (the previous summary left out), as said."""
    return [line.split(": ", 1)[1] for line in lines if line.startswith(("THEM: ", "ME: "))]


async def test_with_summarize_the_turns_that_do_not_fit_are_folded_into_a_stored_summary(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    asked = summarising(fake_openai)
    async with running_bot(tmp_path, fake_openai, RULES, **SUMMARY_SETTINGS) as running:
        said: list[str] = []
        for n in range(1, 9):
            running.api.post_as_user(FRIEND, DM_CHANNEL, sentence(n))
            replies = await running.replies(n)
            said += [sentence(n), replies[-1]["content"]]
        chat = last_chat(fake_openai)

        # /reset forgets the summary with the turns.
        await command(running, "reset", FRIEND, DM_CHANNEL)
        running.api.post_as_user(FRIEND, DM_CHANNEL, "fresh start")
        await running.replies(9)
        assert last_chat(fake_openai) == [
            {"role": "system", "content": "You are Sam's assistant."},
            {"role": "user", "content": "fresh start"},
        ]

    # Each summary request carries the turns dropped since the previous one, with that summary.
    assert len(asked) >= 2
    assert asked[0][0] == f"THEM: {sentence(1)}"
    assert asked[1][0] == "Earlier summary: SUMMARY 1"
    folded = [turn for lines in asked for turn in summarised(lines)]

    counter = TokenCounter()
    sent = [message["content"] for message in chat]
    tokens = sum(counter.count(text, fake_openai.MODEL) + TOKENS_PER_MESSAGE for text in sent)
    assert tokens + REPLY_PRIMING_TOKENS <= SUMMARY_SETTINGS["CONTEXT_TOKENS"]
    summary = f"Earlier in this conversation: SUMMARY {len(asked)}"
    assert chat[0] == {"role": "system", "content": f"You are Sam's assistant.\n\n{summary}"}
    *earlier, newest, _reply = said
    assert chat[-1] == {"role": "user", "content": newest}
    history = sent[1:-1]
    assert history  # the newest turns are still sent as they were said
    # Nothing is lost: every earlier turn was either summarised (once, in order) or is sent.
    assert folded + history == earlier


async def test_when_summarising_fails_the_turns_are_dropped_and_the_reply_still_goes_out(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    asked = summarising(fake_openai)
    settings = {**SUMMARY_SETTINGS, "CONTEXT_TOKENS": 100}  # the 2nd message's request is over
    async with running_bot(tmp_path, fake_openai, RULES, **settings) as running:
        running.api.post_as_user(FRIEND, DM_CHANNEL, sentence(1))
        await running.replies(1)
        fake_openai.fail_next(500)
        running.api.post_as_user(FRIEND, DM_CHANNEL, sentence(2))
        [*_, second] = await running.replies(2)
        assert second["content"] == f"echo: {sentence(2)} [turns=1]"  # the reply went out
        _, failed, _ = fake_openai.requests
        assert failed["messages"][0]["content"].startswith("Summarise")
        assert not asked
        # The first interaction was just dropped: no summary, the newest message alone.
        assert last_chat(fake_openai) == [
            {"role": "system", "content": "You are Sam's assistant."},
            {"role": "user", "content": sentence(2)},
        ]

        # Nothing was stored, so the next message summarises those turns after all.
        running.api.post_as_user(FRIEND, DM_CHANNEL, sentence(3))
        await running.replies(3)
        assert asked[0][:2] == [f"THEM: {sentence(1)}", f"ME: echo: {sentence(1)} [turns=1]"]
        system = last_chat(fake_openai)[0]["content"]
        assert system == "You are Sam's assistant.\n\nEarlier in this conversation: SUMMARY 1"
