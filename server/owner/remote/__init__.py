"""The owner's remote: a bot that DMs the owner drafts (with buttons), urgent messages and
failures, and takes /away, /drafts and /history from the owner alone (OWNER_BOT)."""
