"""The real server as a subprocess in a folder, its output in a log file, for tests that need
the whole process (its logs, its memory, its signals)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ServerSubprocess:
    """Runs `command` (a `python -m server serve …` or a stand-in) in `directory` until it logs
    where it listens; `url` is then its WebSocket address."""

    def __init__(self, directory: Path, command: list[str], log_name: str = "server.log") -> None:
        self.log_path = directory / log_name
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                command,
                cwd=directory,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=log,
                stderr=log,
            )
        self.url = f"ws://127.0.0.1:{self._wait_for_port()}"

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for line in self.log().splitlines():
                if "listening on ws://127.0.0.1:" in line:
                    return int(line.rsplit(":", 1)[1])
            assert self.process.poll() is None, self.log()
            time.sleep(0.05)
        raise AssertionError(f"the server did not start:\n{self.log()}")

    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace")
