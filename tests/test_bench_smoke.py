"""`make bench` still runs: every phase of bench/relay_bench.py, the library floor included, on a
few messages against the real server and the fakes (the figures themselves are not checked, so
the quiet before each phase is short)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_benchmark_phase_runs_and_reports() -> None:
    small = [
        "--messages", "5", "--pairs", "4", "--llm-delay", "0.2", "--rate", "40",
        "--rate-seconds", "0.25", "--volume", "40", "--volume-pairs", "8", "--window", "4",
        "--unwatched", "300", "--settle", "0.05",
    ]  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "bench.relay_bench", *small],
        cwd=ROOT,
        check=False,  # the return code is asserted below, with the output
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = run.stdout
    assert run.returncode == 0, run.stdout + run.stderr
    for heading in (
        "overhead, 5 sequential messages",
        "overhead over the HTTP transport, 5 sequential messages",
        "concurrency, 4 pairs with a 0.20 s LLM",
        "overhead at 40 messages/s, 10 messages over 4 pairs",
        "library floor: the same messages through OpenAIBackend and RestMessenger alone",
        "the relay adds",
        "throughput and memory, 40 messages over 8 pairs",
        "unwatched frames, 300 sent",
        "targets:",
    ):
        assert heading in out, out
    assert "warning(s) or error(s)" not in out, out
    assert "error frame(s)" not in out, out
