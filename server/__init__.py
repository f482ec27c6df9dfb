"""discord-auto-reply: a local relay from a BetterDiscord plugin to an LLM and back to Discord."""

__version__ = "0.1.0"
