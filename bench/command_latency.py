"""Command latency: how long each command that calls no model takes, start to exit.

Each command runs `--runs` times in a fresh interpreter (`python -m server ...`, as the console
script does) in a scratch folder with its own bytecode cache. First with the server stopped (the
config's port is closed, so `away` gives its "is serve running?" error, `rules` parses
reply_config.py and the database commands read an empty database), then the owner's commands
again against `serve` running in that folder (`rules add` and `rules remove` alternate, so each
changes a rule). The table shows the median wall time, the median CPU time of the command's
process (less sensitive to a busy machine; the server's share is not in it) and whether the
median meets the 300 ms target; the last row is `serve` until its "ready" line with the openai
backend configured (target 1 s).
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
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 0.3
SERVE_TARGET_SECONDS = 1.0
READY_TIMEOUT_SECONDS = 30.0
Command = tuple[str, ...]
# Each group is timed in turns, one run of each command per round.
STOPPED: tuple[tuple[Command, ...], ...] = (
    (("--help",),),
    (("init", "--help"),),
    (("plugin", "install", "--help"),),
    (("plugin", "install", "--dir", "plugins"),),
    (("away", "status"),),
    (("drafts",),),
    (("history",),),
    (("memory", "list"),),
    (("rules",),),
    (("init", "--config", "fresh.json", "--force", "--no-plugin"),),
)
RUNNING: tuple[tuple[Command, ...], ...] = (
    (("away", "status"),),
    (("drafts",),),
    (("rules",),),
    (("rules", "add", "123", "456", "--label", "bench"), ("rules", "remove", "123", "456")),
    (("history",),),
    (("memory", "list"),),
)


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def scratch_folder() -> Path:
    """A folder with a config (its port closed until `serve` runs) and a one-pair rules file."""
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
    """CPU seconds used so far by the children this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_commands(
    folder: Path, commands: Sequence[Command], runs: int
) -> list[tuple[float, float, int]]:
    """Per command, the median wall and CPU seconds of `runs` rounds (after one to fill the
    bytecode cache) that run each command in turn, and its last exit code."""
    walls: list[list[float]] = [[] for _ in commands]
    cpus: list[list[float]] = [[] for _ in commands]
    codes = [0] * len(commands)
    env = command_env(folder)
    for _ in range(runs + 1):
        for index, args in enumerate(commands):
            cpu_before = child_cpu_seconds()
            started = time.perf_counter()
            codes[index] = subprocess.run(
                python_command(args),
                cwd=folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            ).returncode
            walls[index].append(time.perf_counter() - started)
            cpus[index].append(child_cpu_seconds() - cpu_before)
    return [
        (statistics.median(wall[1:]), statistics.median(cpu[1:]), code)
        for wall, cpu, code in zip(walls, cpus, codes, strict=True)
    ]


@contextmanager
def serving(folder: Path) -> Iterator[subprocess.Popen[str]]:
    """`serve` running in `folder`, from its "ready" line until the block ends (then stopped,
    whatever happened); its log is read and dropped so it never fills the pipe."""
    process = subprocess.Popen(
        python_command(["serve"]),
        cwd=folder,
        env=command_env(folder),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    watchdog = threading.Timer(READY_TIMEOUT_SECONDS, process.kill)
    watchdog.start()
    try:
        log: list[str] = []
        for line in process.stderr:
            if "server: ready (started in" in line:
                break
            log.append(line)
        else:
            tail = "".join(log[-5:])
            raise RuntimeError(
                f"serve in {folder} stopped before ready (exit {process.wait()}):\n{tail}"
            )
        watchdog.cancel()
        threading.Thread(target=process.stderr.read, daemon=True).start()
        yield process
    finally:
        watchdog.cancel()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds a running process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2]
    utime, stime = fields.split()[11:13]
    return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


def time_serve(folder: Path, runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds from starting `serve` to its "ready" line."""
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        with serving(folder) as process:
            walls.append(time.perf_counter() - started)
            cpus.append(process_cpu_seconds(process.pid))
    return statistics.median(walls), statistics.median(cpus)


def verdict(seconds: float, target: float) -> str:
    """`yes` when `seconds` is under `target`, else `NO`."""
    return "yes" if seconds < target else "NO"


def print_rows(folder: Path, groups: Sequence[Sequence[Command]], server: str, runs: int) -> None:
    """Time each group and print one row per command."""
    for commands in groups:
        for command, (wall, cpu, code) in zip(
            commands, time_commands(folder, commands, runs), strict=True
        ):
            print(
                f"  {' '.join(command):<44} {server:<8} {wall * 1000:6.0f} ms {cpu * 1000:5.0f} ms"
                f"  {code:>4}  {verdict(wall, TARGET_SECONDS)}"
            )


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
    print(
        f"  {'command':<44} {'server':<8} {'wall':>8} {'cpu':>8}  exit  "
        f"under {TARGET_SECONDS * 1000:.0f} ms"
    )
    print_rows(folder, STOPPED, "stopped", args.runs)
    with serving(folder):
        print_rows(folder, RUNNING, "running", args.runs)
    wall, cpu = time_serve(folder, max(3, args.runs // 2))
    name = "serve, until ready (openai backend)"
    print(
        f"  {name:<44} {'-':<8} {wall * 1000:6.0f} ms {cpu * 1000:5.0f} ms     -  "
        f"{verdict(wall, SERVE_TARGET_SECONDS)} (target {SERVE_TARGET_SECONDS * 1000:.0f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
