"""Loading `reply_config.py` by path, and reloading it when it changes."""

from __future__ import annotations

import asyncio
import logging
import runpy
from collections.abc import Callable
from pathlib import Path

from server.conversation.rules import RulesError, RuleSet, parse_rules

log = logging.getLogger(__name__)


def load_rules(path: Path) -> RuleSet:
    """Execute `path` in a fresh namespace (never imported) and parse its rules.

    Raises `RulesError` naming the file for a missing file, a Python error or a bad rule.
    """
    if not path.is_file():
        raise RulesError(f"{path}: file not found")
    try:
        namespace = runpy.run_path(str(path), run_name="reply_config")
    except Exception as exc:  # the person's own Python: any error must be reported, not crash
        where = _error_line(exc, path)
        raise RulesError(f"{path}{where}: {type(exc).__name__}: {exc}") from None
    return parse_rules(namespace, str(path))


def _error_line(exc: BaseException, path: Path) -> str:
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f":{exc.lineno}"
    traceback = exc.__traceback__
    line = None
    while traceback is not None:
        if Path(traceback.tb_frame.f_code.co_filename).resolve() == path.resolve():
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return f":{line}" if line else ""


class RulesWatcher:
    """Holds the current rules and reloads them when the file changes; bad edits keep the old."""

    def __init__(
        self,
        path: Path,
        on_change: Callable[[RuleSet], None],
        *,
        interval: float = 1.0,
    ) -> None:
        self.path = path
        self.current = load_rules(path)
        self._on_change = on_change
        self._interval = interval
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[float, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime, stat.st_size)

    async def reload_if_changed(self) -> bool:
        """Reload if the file changed since the last look; True if new rules took effect."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            rules = await asyncio.to_thread(load_rules, self.path)
        except RulesError as exc:
            log.error("reply config not reloaded, keeping the last good rules: %s", exc)
            return False
        if rules == self.current:
            return False
        self.current = rules
        log.info("reply config reloaded: %d rule(s)", len(rules.rules))
        self._on_change(rules)
        return True

    async def run(self) -> None:
        """Poll the file forever (cancel to stop)."""
        while True:
            await asyncio.sleep(self._interval)
            await self.reload_if_changed()
