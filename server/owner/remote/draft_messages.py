"""What the owner's bot shows in its DM, as Discord payloads: pure functions, no I/O.

A draft becomes a message with Send, Edit and Discard buttons; when the draft is sent,
discarded or expires the same message is edited to say so, without buttons. The buttons' and the
modal's `custom_id`s carry the action and the draft id, so a press needs no state to be read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from server.owner.notifier import Notice, chat_link

ACTION_ROW, BUTTON, TEXT_INPUT = 1, 2, 4
PRIMARY, SECONDARY, DANGER = 1, 2, 4
PARAGRAPH = 2
MESSAGE_LIMIT = 2000
TEXT_INPUT_LIMIT = 4000
"""The longest `value` (and `max_length`) of a modal's text input."""
QUOTE_LIMIT = 600
CUSTOM_ID_PREFIX = "dar"
EDIT_FIELD = "content"
NO_MENTIONS: dict[str, Any] = {"parse": []}

ButtonAction = Literal["send", "edit", "discard"]
FINAL_STATES = {
    "sent": "✅ Sent",
    "discarded": "🗑️ Discarded",
    "expired": "⌛ Expired unsent",
}


@dataclass(frozen=True)
class Press:
    """What a button press or a modal submit asks for: an action on one draft."""

    action: ButtonAction
    draft_id: str


def custom_id(action: ButtonAction, draft_id: str) -> str:
    """The `custom_id` of a draft's button (and of the Edit modal: action "edit")."""
    return f"{CUSTOM_ID_PREFIX}:{action}:{draft_id}"


def read_custom_id(value: object) -> Press | None:
    """The press a `custom_id` stands for; None for anything this bot did not make."""
    if not isinstance(value, str):
        return None
    parts = value.split(":")
    if len(parts) != 3 or parts[0] != CUSTOM_ID_PREFIX or not parts[2].isdigit():
        return None
    action = parts[1]
    if action == "send":
        return Press("send", parts[2])
    if action == "edit":
        return Press("edit", parts[2])
    if action == "discard":
        return Press("discard", parts[2])
    return None


def _quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    text = text.strip() or "(no text)"
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return "\n".join(f"> {line}" for line in text.splitlines())


def _fit(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def draft_text(frame: dict[str, Any], outcome: str | None = None) -> str:
    """The DM's text for a `draft` frame: who, where, their message, the draft, and (once the
    draft is settled) what became of it."""
    who = frame.get("author") or f"user {frame['user']}"
    link = chat_link(str(frame["channel"]), frame.get("guild"))
    head = f"**Draft {frame['id']}** · reply to {who} · {link}"
    body = f"{head}\nThey wrote:\n{_quote(str(frame['question']))}\n"
    body += f"Draft:\n{_quote(str(frame['content']), MESSAGE_LIMIT // 2)}"
    if outcome is not None:
        body = f"{outcome}\n{body}"
    elif frame.get("expires_at"):
        body += f"\nExpires <t:{int(frame['expires_at'])}:R> unless you send it."
    return _fit(body)


def draft_buttons(draft_id: str) -> list[dict[str, Any]]:
    """One action row: Send, Edit, Discard."""
    buttons: list[tuple[str, ButtonAction, int]] = [
        ("Send", "send", PRIMARY),
        ("Edit", "edit", SECONDARY),
        ("Discard", "discard", DANGER),
    ]
    return [
        {
            "type": ACTION_ROW,
            "components": [
                {
                    "type": BUTTON,
                    "style": style,
                    "label": label,
                    "custom_id": custom_id(action, draft_id),
                }
                for label, action, style in buttons
            ],
        }
    ]


def draft_message(frame: dict[str, Any]) -> dict[str, Any]:
    """The create-message body for a new draft."""
    return {
        "content": draft_text(frame),
        "components": draft_buttons(str(frame["id"])),
        "allowed_mentions": NO_MENTIONS,
    }


def settled_message(frame: dict[str, Any], status: str) -> dict[str, Any]:
    """The edit-message body once the draft is `status` (sent, discarded, expired): no buttons."""
    outcome = FINAL_STATES.get(status, status)
    return {
        "content": draft_text(frame, outcome),
        "components": [],
        "allowed_mentions": NO_MENTIONS,
    }


def edit_modal(draft_id: str, content: str) -> dict[str, Any]:
    """The MODAL response's data: one paragraph input holding the draft's text."""
    return {
        "custom_id": custom_id("edit", draft_id),
        "title": f"Edit draft {draft_id}"[:45],
        "components": [
            {
                "type": ACTION_ROW,
                "components": [
                    {
                        "type": TEXT_INPUT,
                        "custom_id": EDIT_FIELD,
                        "style": PARAGRAPH,
                        "label": "Reply",
                        "value": content[:TEXT_INPUT_LIMIT],
                        "min_length": 1,
                        "max_length": TEXT_INPUT_LIMIT,
                        "required": True,
                    }
                ],
            }
        ],
    }


def modal_value(data: object, field: str = EDIT_FIELD) -> str | None:
    """The text the owner submitted in the modal's input `field`, from MODAL_SUBMIT's `data`
    (action rows of text inputs, or the newer label components holding one)."""
    if not isinstance(data, dict):
        return None
    stack: list[Any] = list(data.get("components") or [])
    while stack:
        component = stack.pop(0)
        if not isinstance(component, dict):
            continue
        if component.get("custom_id") == field and isinstance(component.get("value"), str):
            return str(component["value"])
        stack.extend(component.get("components") or [])
        if isinstance(component.get("component"), dict):
            stack.append(component["component"])
    return None


def notice_message(notice: Notice) -> dict[str, Any]:
    """A notifier's notice (urgent, failure, summary) as a DM."""
    return {
        "content": _fit(f"**{notice.title}**\n{notice.text()}"),
        "allowed_mentions": NO_MENTIONS,
    }
