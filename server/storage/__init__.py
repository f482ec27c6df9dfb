"""The SQLite file: its schema and every statement the relay and the owner's commands run."""
