"""How the plugin reaches the server: the local port, its WebSocket and HTTP links, the protocol."""
