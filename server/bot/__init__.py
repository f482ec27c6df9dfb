"""Bot-account mode: the same rules, personas, memory and backends on an official Discord bot.

`discord.py` and `PyNaCl` (the `bot` extra) are imported only by `client.py` and
`interactions.py`, so the relay server runs without them.
"""
