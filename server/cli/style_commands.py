"""`discord-auto-reply style learn | show | set --file F | reset`: the owner's style profile.

`learn` sends a capped sample of the owner's own messages (stored from watched chats, and from
Discord's data package with `--from`) to the configured LLM backends only, and stores the
profile it writes in DATABASE for the owner to review; STYLE (or a rule's "style") puts it in
the system prompt.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TextIO

from server.config import Settings
from server.llm.base import GenerationOptions, LLMError
from server.llm.chain import build_backend_chain
from server.owner.style_profile import (
    MAX_LINES,
    PROFILE_KEY,
    clean_profile,
    learning_request,
    package_lines,
    sample,
)
from server.storage.conversations import ConversationStore
from server.storage.owner_store import OwnerStore

LEARN_MAX_TOKENS = 400


async def learn(
    settings: Settings, owner: OwnerStore, package: Path | None, out: TextIO = sys.stdout
) -> int:
    """Ask the LLM for a profile of the owner's messages; store and print it."""
    lines = await owner.owner_lines(MAX_LINES * 5)
    if package is not None:
        lines += await asyncio.to_thread(package_lines, package)
    picked = sample(lines)
    if not picked:
        print(
            "no messages of yours to learn from: none stored from watched chats yet "
            "(give --from package.zip, Discord's data package)",
            file=sys.stderr,
        )
        return 1
    chain = build_backend_chain(settings)
    try:
        text = await chain.complete(
            learning_request(picked), GenerationOptions(max_tokens=LEARN_MAX_TOKENS)
        )
    except LLMError as exc:
        print(f"discord-auto-reply: error: no profile from the LLM: {exc}", file=sys.stderr)
        return 1
    finally:
        await chain.aclose()
    profile = clean_profile(text)
    await owner.set_owner_state({PROFILE_KEY: profile})
    print(f"learned from {len(picked)} of your messages; your style profile:\n", file=out)
    print(profile, file=out)
    state = "on" if settings.STYLE else "off (set STYLE: true in config.json to use it)"
    print(f"\nreview it (style set --file F to change it); STYLE is {state}", file=out)
    return 0


async def show(owner: OwnerStore, out: TextIO = sys.stdout) -> int:
    """Print the stored profile."""
    profile = (await owner.owner_state()).get(PROFILE_KEY, "")
    print(profile or "no style profile yet (run: discord-auto-reply style learn)", file=out)
    return 0


async def set_profile(owner: OwnerStore, path: Path, out: TextIO = sys.stdout) -> int:
    """Store the profile written in `path`."""
    try:
        text = clean_profile(await asyncio.to_thread(path.read_text, encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        print(f"discord-auto-reply: error: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    await owner.set_owner_state({PROFILE_KEY: text or None})
    print(f"style profile set from {path}" if text else "style profile removed", file=out)
    return 0


async def reset(owner: OwnerStore, out: TextIO = sys.stdout) -> int:
    """Remove the profile."""
    await owner.set_owner_state({PROFILE_KEY: None})
    print("style profile removed", file=out)
    return 0


async def run(settings: Settings, action: str, args_file: Path | None, package: Path | None) -> int:
    """One `style` action against DATABASE."""
    store = ConversationStore(settings.DATABASE)
    await store.open()
    try:
        owner = OwnerStore(store)
        if action == "learn":
            return await learn(settings, owner, package)
        if action == "show":
            return await show(owner)
        if action == "reset":
            return await reset(owner)
        if args_file is None:
            print("discord-auto-reply: error: style set needs --file F", file=sys.stderr)
            return 2
        return await set_profile(owner, args_file)
    finally:
        await store.close()
