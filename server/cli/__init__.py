"""The `discord-auto-reply` command line: one module per command group, imported on demand."""
