"""What every end of the websocket protocol shares, standard library only: its version, the
close codes and how a frame is written.

server/transport/protocol.py parses and builds the frames (with pydantic) on top of this; the
command line's control client needs only this, and so starts without pydantic.
"""

from __future__ import annotations

import json
from typing import Any

PROTOCOL_VERSION = 1
CLOSE_BAD_SECRET = 4001
CLOSE_NO_HELLO = 4002
# Server frames: one encoder, not one per frame as json.dumps builds for non-default separators.
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def encode(frame: dict[str, Any]) -> str:
    """Serialise a frame, as ASCII: any text, even an LLM's lone surrogate, can be sent."""
    return _ENCODER.encode(frame)
