"""Getting a reply out exactly once: the outbox, the splitter, recognising echoes."""
