"""Who gets automatic replies, and as whom. Edited by you; reloaded while the server runs.

REPLY_TO lists (user id, channel id) pairs; "*" is a wildcard for one side:
    ("123456789012345678", "987654321098765432")  # that user in that channel (e.g. your DM)
    ("123456789012345678", "*")                   # that user anywhere you can both see
    ("*", "987654321098765432")                   # anyone in that channel
Add a third item (or use a dict) for per-rule settings, all optional:
    ("123456789012345678", "*", {
        "persona": "You are Sam's laid-back alter ego. Keep it short.",  # replaces CONTEXT_MESSAGE
        "model": "gpt-4o",        # model name for this rule
        "temperature": 0.7,       # 0 to 2
        "max_tokens": 300,        # replaces MAX_TOKENS
        "memory_length": 5,       # interactions remembered, replaces MEMORY_LENGTH
    })
    {"user": "*", "channel": "987654321098765432", "persona": "You answer FAQs politely."}
The most specific rule wins: exact pair, then user anywhere, then anyone in a channel.
("*", "*") is refused: it would answer everyone everywhere.
Ids are Discord snowflakes: turn on Developer Mode, then right-click > Copy ID.

Bot-account mode only (`discord-auto-reply bot`, see README.md):
    "listen": "all" in a rule's settings answers its guild messages without a mention;
    PERSONAS = {"pirate": "You are a cheerful pirate."} names system prompts for /persona.
"""

CONTEXT_MESSAGE = (
    "You are replying on my behalf while I am away. Be brief, friendly and honest that I will "
    "get back to them myself later."
)

REPLY_TO: list[object] = [
    # ("USER_ID", "CHANNEL_ID"),
]
