"""Messengers: the ways a reply reaches Discord (REST, the plugin, a GUI macro)."""
