"""The config keys bot-account mode needs, and the error that names one left empty."""

from __future__ import annotations

from server.config import ConfigError, Settings

WHERE_TO_FIND = {
    "DISCORD_BOT_TOKEN": "Developer Portal → your application → Bot → Reset Token",
    "DISCORD_APPLICATION_ID": "Developer Portal → your application → General Information",
    "DISCORD_PUBLIC_KEY": "Developer Portal → your application → General Information",
}
BOT_KEYS = ("DISCORD_BOT_TOKEN",)
INTERACTIONS_KEYS = ("DISCORD_PUBLIC_KEY", "DISCORD_APPLICATION_ID")


def require(settings: Settings, command: str, keys: tuple[str, ...]) -> None:
    """Raise `ConfigError` naming the first of `keys` that is empty, and where to find it."""
    for key in keys:
        if not getattr(settings, key):
            raise ConfigError(
                f"{key} is empty: `discord-auto-reply {command}` needs it "
                f"({WHERE_TO_FIND[key]}; set it in config.json or the environment)"
            )
