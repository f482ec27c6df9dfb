"""`discord-auto-reply chat`: try a rule or a persona in the terminal before going live.

You play the other person; the real relay answers, with the same rule, system prompt, memory
window, backend chain, prefix and splitting, and a messenger that prints instead of posting. No
Discord and no server are needed. Memory goes to a scratch database unless `--keep`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import Callable
from typing import TextIO

from server.config import Settings
from server.conversation.memory import PairKey
from server.conversation.prompt_context import PromptContext, system_prompt
from server.conversation.relay import Relay
from server.conversation.rules import Rule, RulesError, RuleSet
from server.llm.chain import BackendChain, build_backend_chain
from server.messengers.base import Messenger
from server.owner.away_schedule import zone_named
from server.storage.conversations import ConversationStore
from server.storage.owner_store import OwnerStore
from server.transport.protocol import Author, IncomingMessage

PROMPT = "them> "
CHAT_NAME = "them"
"""The other person's name in a try-out."""
SCRATCH = ":memory:"


class TerminalMessenger(Messenger):
    """A messenger that prints each reply part instead of posting it."""

    name = "terminal"

    def __init__(self, out: TextIO) -> None:
        self._out = out

    async def send(
        self,
        channel_id: str,
        content: str,
        *,
        nonce: str,
        reply_to: str | None = None,
        deadline: float | None = None,
    ) -> None:
        """Print one part of a reply."""
        print(content, file=self._out, flush=True)

    async def typing(self, channel_id: str) -> None:
        """Nothing to show in a terminal."""

    async def aclose(self) -> None:
        """Nothing to release."""


def chat_rule(rules: RuleSet, pair: PairKey, persona: str | None) -> Rule:
    """The rule the relay would use for `pair` (its persona replaced by `persona` if given).

    Raises `RulesError` when no rule matches and no persona is given.
    """
    rule = rules.match(*pair)
    if rule is None and persona is None:
        raise RulesError(
            f"user {pair[0]} in channel {pair[1]} matches no rule in the reply config; "
            "add one, or try a persona with --persona TEXT"
        )
    rule = rule or Rule(*pair)
    if persona is not None:
        rule = dataclasses.replace(rule, persona=persona)
    # The chat always shows the reply: never a draft, whatever the owner's presence.
    return dataclasses.replace(rule, user=pair[0], channel=pair[1], mode=None, reply_when="always")


class ChatSession:
    """One terminal conversation with the relay, driven line by line."""

    def __init__(
        self, settings: Settings, rules: RuleSet, rule: Rule, *, keep: bool, out: TextIO
    ) -> None:
        self.pair: PairKey = (rule.user, rule.channel)
        self.settings = settings.model_copy(
            # A try-out answers every line at once: no bursts, drafts, presence or reply limits.
            update={
                "COALESCE_SECONDS": 0.0,
                "MODE": "send",
                "REPLY_WHEN": "always",
                "MAX_REPLIES_PER_MINUTE": 0,
                "MAX_REPLIES_PER_HOUR": 0,
            }
        )
        self.rules = RuleSet(rules.context_message, (rule,))
        self.out = out
        self.store = ConversationStore(settings.DATABASE if keep else SCRATCH)
        self.records = OwnerStore(self.store)
        self.llm: BackendChain = build_backend_chain(self.settings)
        self.relay = Relay(
            settings=self.settings,
            rules=lambda: self.rules,
            llm=self.llm,
            messenger=TerminalMessenger(out),
            store=self.store,
        )
        self._count = 0

    async def open(self) -> None:
        """Open the store and load what the relay needs."""
        await self.store.open()
        await self.relay.start()

    async def say(self, text: str) -> None:
        """The other person says `text`: print the relay's reply, its backend and its time."""
        self._count += 1
        started = time.time()
        message = IncomingMessage(
            type="message",
            id=f"chat-{time.time_ns()}-{self._count}",
            channel=self.pair[1],
            author=Author(id=self.pair[0], username=CHAT_NAME),
            content=text,
        )
        await self.relay.accept(message)
        await self.relay.drain()
        replies = [e for e in await self.records.history(started, self.pair) if e.kind == "reply"]
        if not replies:
            print("(no reply: the log above says why)", file=self.out, flush=True)
        for reply in replies:
            took = "" if reply.seconds is None else f", {reply.seconds:.2f} s"
            print(f"  ({reply.backend}{took})", file=self.out, flush=True)

    async def reset(self) -> None:
        """Start the conversation afresh."""
        await self.store.reset(self.pair)
        print("(conversation reset: the next message starts afresh)", file=self.out, flush=True)

    async def close(self) -> None:
        """Stop the relay, close the backends and the store."""
        await self.relay.aclose()
        await self.llm.aclose()
        await self.store.close()


def introduce(session: ChatSession, keep: bool) -> list[str]:
    """The lines printed before the first prompt."""
    rule = session.rules.rules[0]
    persona = session.rules.system_prompt(rule)
    prompt = persona or "(no system prompt)"
    backends = ", ".join(session.llm.names) or "none (only FALLBACK_MESSAGE can be sent)"
    memory = f"kept in {session.store.path}" if keep else "a scratch store (nothing is kept)"
    zone = zone_named(session.settings.TIMEZONE)
    context = PromptContext(CHAT_NAME, session.relay.owner_context(), time.time(), zone)
    sent = system_prompt(persona, context)
    told = f"Context line: {context.line()}" if sent.endswith(context.line()) else f"Sent: {sent}"
    return [
        f"You are user {session.pair[0]} in channel {session.pair[1]}.",
        f"System prompt: {prompt}",
        told,
        f"Backends: {backends}. Memory: {memory}.",
        "Type as them; /reset starts over, /quit or Ctrl-D ends.",
    ]


def run_chat(
    settings: Settings,
    rules: RuleSet,
    rule: Rule,
    *,
    keep: bool,
    read: Callable[[str], str] = input,
    out: TextIO = sys.stdout,
) -> int:
    """The conversation: read a line, let the relay answer, until /quit, Ctrl-D or Ctrl-C."""
    with asyncio.Runner() as runner:
        session = ChatSession(settings, rules, rule, keep=keep, out=out)
        runner.run(session.open())
        try:
            for line in introduce(session, keep):
                print(line, file=out)
            while True:
                try:
                    text = read(PROMPT).strip()
                except (EOFError, KeyboardInterrupt):
                    print(file=out)
                    break
                if text == "/quit":
                    break
                try:
                    if text == "/reset":
                        runner.run(session.reset())
                    elif text:
                        runner.run(session.say(text))
                except KeyboardInterrupt:
                    print("\n(interrupted)", file=out)
                    break
        finally:
            runner.run(session.close())
    return 0
