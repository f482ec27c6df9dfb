"""`discord-auto-reply away | drafts`: the owner's switch and the drafts, from the terminal.

`away` and sending a draft talk to the running server (only it can post); listing drafts reads
the database, and a draft can be discarded there too when the server is not running.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from server.owner.away_schedule import describe_until, zone_named

if TYPE_CHECKING:
    from server.config_file import OwnerSettings
    from server.storage.owner_store import OwnerStore

SWITCH_TEXT = {
    "auto": "auto (follows your Discord status)",
    "on": "on (you are away, whatever your Discord status)",
    "off": "off (you are present, whatever your Discord status)",
}


def describe_away_status(status: dict[str, Any]) -> list[str]:
    """The lines `away status` prints for an `away_status` frame."""
    presence = status.get("presence") or "not reported since the server started"
    reply_when = status.get("reply_when")
    if not status.get("replying"):
        why = "you are present"
    elif reply_when == "always":
        why = 'REPLY_WHEN is "always"'
    else:
        why = "you are away"
    lines = [
        f"away switch:     {SWITCH_TEXT.get(str(status.get('switch')), status.get('switch'))}",
        f"Discord status:  {presence}",
        f"replies go out:  {'yes' if status.get('replying') else 'no'} ({why})",
    ]
    always = int(status.get("always_rules") or 0)
    if always and reply_when != "always":
        lines.append(f'{"":17}({always} rule(s) with "reply_when": "always" reply anyway)')
    if status.get("note"):
        lines.append(f'away note:       "{status["note"]}" ({status.get("note_source")})')
    elif "note" in status:
        lines.append("away note:       none (set one with: away note TEXT)")
    schedule = status.get("schedule")
    if schedule:
        lines.append(f"away hours:      {_describe_schedule(schedule, str(status.get('switch')))}")
    return lines


def _describe_schedule(schedule: dict[str, Any], switch: str) -> str:
    """The away hours line: the window in force and when it ends, or when the next starts."""
    try:
        zone = zone_named(str(schedule.get("zone") or ""))
    except ValueError:
        zone = None
    now = time.time()
    ignored = f" (not counted: the switch is {switch})" if switch in ("on", "off") else ""
    if schedule.get("window"):
        until = describe_until(float(schedule["until"]), now, zone)
        return f"{schedule['window']!r} applies until {until}{ignored}"
    if schedule.get("next"):
        return f"none now; the next starts {describe_until(float(schedule['next']), now, zone)}"
    return "none now"


async def away(
    settings: OwnerSettings, mode: str, out: TextIO = sys.stdout, *, note: str | None = None
) -> int:
    """Set the away switch (on, off, auto) and/or the away note (`note`, "" clears it), or print
    the status (status)."""
    from server.cli.control_client import ask  # noqa: PLC0415 -- `drafts` lists without it

    frame: dict[str, Any] = {"type": "away"}
    if mode not in ("status", "note"):
        frame["mode"] = mode
    if note is not None:
        frame["note"] = note
    status = await ask(
        settings, frame, lambda answer: answer.get("type") == "away_status", timeout=10.0
    )
    for line in describe_away_status(status):
        print(line, file=out)
    return 0


async def list_drafts(store: OwnerStore, out: TextIO = sys.stdout) -> int:
    """Print the drafts waiting for the owner."""
    drafts = await store.drafts()
    if not drafts:
        print("no drafts waiting", file=out)
        return 0
    from rich.table import Table  # noqa: PLC0415 -- `away` answers without loading rich
    from rich.text import Text  # noqa: PLC0415

    from server.owner.history import console_for  # noqa: PLC0415
    from server.storage.owner_store import first_line  # noqa: PLC0415

    table = Table("ID", "TO", "CHAT", "WRITTEN", "EXPIRES IN", "REPLY", title="Drafts waiting")
    now = time.time()
    for draft in drafts:
        name = draft.author_name or draft.pair[0]
        minutes = max(0.0, draft.expires - now) / 60
        table.add_row(  # Text, not markup: a reply may well contain [brackets]
            str(draft.id),
            Text(f"{name} ({draft.pair[0]})"),
            draft.pair[1],
            datetime.fromtimestamp(draft.created).strftime("%Y-%m-%d %H:%M:%S"),
            "being sent" if draft.status == "sending" else f"{minutes:.0f} min",
            Text(first_line(draft.content, 200)),
        )
    console_for(out).print(table)
    return 0


async def act_on_draft(
    settings: OwnerSettings,
    store: OwnerStore,
    draft_id: str,
    action: str,
    out: TextIO = sys.stdout,
) -> int:
    """Send or discard a draft through the running server; discard in the database when the
    server is not running."""
    from server.cli.control_client import ControlError, ask  # noqa: PLC0415

    frame = {"type": "draft_action", "id": draft_id, "action": action}
    try:
        done = await ask(
            settings,
            frame,
            lambda answer: answer.get("type") == "draft_done" and answer.get("id") == draft_id,
            timeout=settings.SEND_TIMEOUT_SECONDS + 30.0,
        )
    except ControlError:
        if action != "discard" or not draft_id.isdigit():
            raise
        if not await store.discard_draft(int(draft_id)):
            print(f"discord-auto-reply: error: no pending draft {draft_id}", file=sys.stderr)
            return 1
        print(f"draft {draft_id} discarded (the server is not running)", file=out)
        return 0
    wanted = "sent" if action == "send" else "discarded"
    if done.get("error") or done.get("status") != wanted:
        print(f"discord-auto-reply: error: {done.get('error')}", file=sys.stderr)
        return 1
    print(f"draft {draft_id} {wanted}", file=out)
    return 0
