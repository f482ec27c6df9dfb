"""`discord-auto-reply memory list | show | reset | export`: reading and resetting conversations.

They open the same database as a running server (SQLite's WAL lets both use it at once); a
reset takes effect at the server's next reply.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TextIO

from server.conversation.memory import PairKey
from server.storage.conversations import ConversationStore, StoredTurn


def _when(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def _speaker(turn: StoredTurn) -> str:
    if turn.kind == "message":
        return f"them ({turn.author_id})" if turn.author_id else "them"
    if turn.kind == "owner":
        return "you"
    if turn.kind == "summary":
        return "summary"
    status = "" if turn.delivered else ", not delivered"
    return f"relay ({turn.backend or '?'}{status})"


async def list_pairs(store: ConversationStore, out: TextIO = sys.stdout) -> int:
    """Print each pair with its turn count, last activity and takeover pause."""
    pairs = await store.pairs()
    if not pairs:
        print(f"no conversations in {store.path}", file=out)
        return 0
    print(f"{'USER':<20} {'CHANNEL':<20} {'TURNS':>5}  {'LAST ACTIVITY':<19}  PAUSED", file=out)
    for pair in pairs:
        paused = f"until {_when(pair.paused_until)}" if pair.paused_until else "no"
        print(
            f"{pair.pair[0]:<20} {pair.pair[1]:<20} {pair.turns:>5}  "
            f"{_when(pair.last_activity):<19}  {paused}",
            file=out,
        )
    return 0


async def show(store: ConversationStore, pair: PairKey, out: TextIO = sys.stdout) -> int:
    """Print the pair's conversation since its last reset, oldest first."""
    turns = await store.conversation(pair)
    if not turns:
        print(f"no conversation with user {pair[0]} in channel {pair[1]}", file=out)
        return 0
    from rich.text import Text  # noqa: PLC0415 -- only `show` styles its output

    from server.conversation.turn_parts import styled  # noqa: PLC0415
    from server.owner.history import console_for  # noqa: PLC0415

    console = console_for(out)
    for turn in turns:
        line = Text(f"{_when(turn.at)}  {_speaker(turn)}: ")
        line.append_text(styled(turn.content))  # placeholders dim and italic in a terminal
        console.print(line, soft_wrap=True)
    return 0


async def reset(store: ConversationStore, pair: PairKey | None, out: TextIO = sys.stdout) -> int:
    """Start one pair (or all, with None) afresh."""
    if pair is None:
        count = await store.reset_all()
        print(f"reset {count} conversation(s); the next message starts afresh", file=out)
    else:
        await store.reset(pair)
        print(
            f"reset the conversation with user {pair[0]} in channel {pair[1]}; "
            "the next message starts afresh",
            file=out,
        )
    return 0


async def export(
    store: ConversationStore, pair: PairKey | None, output: Path | None, out: TextIO = sys.stdout
) -> int:
    """Write every stored turn (of one pair, or all) as JSON, to `output` or standard output."""
    document = {
        "database": store.path,
        "exported_at": time.time(),
        "conversations": await store.export(pair),
    }
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if output is None:
        out.write(text)
    else:
        await asyncio.to_thread(output.write_text, text, encoding="utf-8")
        print(f"wrote {output}", file=out)
    return 0
