"""Who gets automatic replies, and as whom. Edited by you; reloaded while the server runs.

You need not edit this file to start: right-click a chat in Discord > Auto-reply (or run
`discord-auto-reply rules add`). Those chats are kept in the database; this file is for personas
and finer rules, and where both name the same chat, this file wins.

REPLY_TO lists (user id, channel id) pairs; "*" is a wildcard for one side:
    ("123456789012345678", "987654321098765432")  # that user in that channel (e.g. your DM)
    ("123456789012345678", "@dms")                # that user in any DM or group DM with you
    ("123456789012345678", "*")                   # that user anywhere, servers included
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
The most specific rule wins: exact pair, then the user in a DM ("@dms"), then the user anywhere,
then anyone in a channel. ("*", "*") and ("*", "@dms") are refused: they would answer everyone.
Ids are Discord snowflakes: turn on Developer Mode, then right-click > Copy ID.

PERSONAS = {"pirate": "You are a cheerful pirate."} names system prompts: the plugin's
right-click menu offers them (Auto-reply > Persona), and so does the bot's /persona command.
Bot-account mode only (`discord-auto-reply bot`, see docs/bot-mode.md):
    "listen": "all" in a rule's settings answers its guild messages without a mention.
"""

CONTEXT_MESSAGE = (
    "You are replying on my behalf while I am away. Be brief, friendly and honest that I will "
    "get back to them myself later."
)

REPLY_TO: list[object] = [
    # ("USER_ID", "CHANNEL_ID"),
]
