"""Command latency: how long each command that calls no model takes, start to exit.

Each command runs `--runs` times in a fresh interpreter (`python -m server ...`, as the console
script does) in a scratch folder whose config points at a port nothing listens on, so `away`
gives its "is serve running?" error and the database commands read an empty database. The table
shows the median wall time, the median CPU time of the process (less sensitive to a busy
machine) and whether the median meets the 300 ms target; the last row is `serve` until its
"ready" line with the openai backend configured (target 1 s).
Run: `make bench` (after the relay benchmark) or `.venv/bin/python -m bench.command_latency`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 0.3
SERVE_TARGET_SECONDS = 1.0
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("--help",),
    ("init", "--help"),
    ("plugin", "install", "--help"),
    ("away", "status"),
    ("drafts",),
    ("history",),
    ("memory", "list"),
    ("rules",),
    ("init", "--config", "fresh.json", "--force", "--no-plugin"),
)


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def scratch_folder() -> Path:
    """A folder with a config whose server is not running and a one-pair rules file."""
    folder = Path(tempfile.mkdtemp(prefix="command-latency-"))
    config = {
        "WEBSOCKET_PORT": closed_port(),
        "WEBSOCKET_SECRET": "command-latency-secret",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{closed_port()}/v1",
        "LLM_BACKENDS": ["openai"],
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "reply_config.py").write_text('REPLY_TO = [("1", "2")]\n')
    return folder


def command_env(folder: Path) -> dict[str, str]:
    """This environment, with bytecode cached (in `folder`) as an installed copy has it, even
    where PYTHONDONTWRITEBYTECODE is set: otherwise every run compiles the project anew."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": str(folder / "pyc")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def python_command(args: Sequence[str]) -> list[str]:
    """How the console script runs: the project's interpreter, `-m server`."""
    return [sys.executable, "-m", "server", *args]


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(folder: Path, args: Sequence[str], runs: int) -> tuple[float, float, int]:
    """Median wall and CPU seconds of `runs` runs (after one to fill the bytecode cache), and
    the last exit code."""
    walls: list[float] = []
    cpus: list[float] = []
    code = 0
    env = command_env(folder)
    for _ in range(runs + 1):
        cpu_before = child_cpu_seconds()
        started = time.perf_counter()
        code = subprocess.run(
            python_command(args),
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        ).returncode
        walls.append(time.perf_counter() - started)
        cpus.append(child_cpu_seconds() - cpu_before)
    return statistics.median(walls[1:]), statistics.median(cpus[1:]), code


def time_serve(folder: Path, runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds from starting `serve` to its "ready" line."""
    walls: list[float] = []
    cpus: list[float] = []
    tick = os.sysconf("SC_CLK_TCK")
    for _ in range(runs):
        started = time.perf_counter()
        process = subprocess.Popen(
            python_command(["serve"]),
            cwd=folder,
            env=command_env(folder),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        try:
            for line in process.stderr:
                if "server: ready (started in" in line:
                    walls.append(time.perf_counter() - started)
                    fields = Path(f"/proc/{process.pid}/stat").read_text().rpartition(")")[2]
                    utime, stime = fields.split()[11:13]
                    cpus.append((int(utime) + int(stime)) / tick)
                    break
            else:
                raise RuntimeError("serve exited before it was ready")
        finally:
            process.terminate()
            process.wait(timeout=10)
    return statistics.median(walls), statistics.median(cpus)


def verdict(seconds: float, target: float) -> str:
    return "yes" if seconds < target else "NO"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table; 0 whatever the figures (they are read, not asserted)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11, help="runs per command (median)")
    args = parser.parse_args(argv)
    folder = scratch_folder()
    load = os.getloadavg()[0]
    print(
        f"command latency, median of {args.runs} fresh processes ({os.cpu_count()} CPUs, "
        f"load average {load:.2f}):"
    )
    print(f"  {'command':<44} {'wall':>8} {'cpu':>8}  exit  under {TARGET_SECONDS * 1000:.0f} ms")
    for command in COMMANDS:
        wall, cpu, code = time_command(folder, command, args.runs)
        name = " ".join(command)
        print(
            f"  {name:<44} {wall * 1000:6.0f} ms {cpu * 1000:5.0f} ms  {code:>4}  "
            f"{verdict(wall, TARGET_SECONDS)}"
        )
    wall, cpu = time_serve(folder, max(3, args.runs // 2))
    name = "serve, until ready (openai backend)"
    print(
        f"  {name:<44} {wall * 1000:6.0f} ms {cpu * 1000:5.0f} ms     -  "
        f"{verdict(wall, SERVE_TARGET_SECONDS)} (target {SERVE_TARGET_SECONDS * 1000:.0f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
