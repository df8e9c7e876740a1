"""The CLI start-up benchmark behind scripts/bench-cli.

Commands that need no device should answer at once, so this times them as whole processes,
the way a person or a script runs them: interpreter start, imports, the command, exit. Every
command runs once untimed (bytecode compiled, files in the page cache), then N timed rounds,
each round running every command once, so a burst of load elsewhere hits all of them alike.

A plain ``python -c pass`` in the same rounds is the floor: dividing by it takes out most of
the machine's own speed. Bytecode goes to a private cache that the warm-up fills, as an
installed edgekit's ``__pycache__`` would be; ``--no-bytecode`` compiles every module on every
start instead, which is what a shell with PYTHONDONTWRITEBYTECODE=1 and no ``__pycache__`` gets.

The run exits 0 whenever every command succeeded, because a slow or busy machine is a result,
not an error; only a command that fails makes it exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

BASELINE = "python -c pass"
# What issue 12 asks of the commands that need no device, as whole processes.
TARGET_S = 0.5
# Far beyond any start-up: a command still running by then hangs.
HANG_S = 300.0
MS_COLUMNS = ("best_s", "median_s", "spread_s", "cpu_s")


class Sample(NamedTuple):
    wall_s: float
    cpu_s: float


class CommandFailed(Exception):
    pass


def commands() -> dict[str, list[str]]:
    """The command lines to time, by the name the table shows; the baseline comes first."""
    python = sys.executable
    # The console script pip installed, not ``python -m``: the process a user starts.
    edgekit = str(Path(sysconfig.get_path("scripts")) / "edgekit")
    return {
        BASELINE: [python, "-c", "pass"],
        "python -c 'import edgekit.cli'": [python, "-c", "import edgekit.cli"],
        "edgekit --help": [edgekit, "--help"],
        "edgekit profiles list": [edgekit, "profiles", "list"],
        "edgekit profiles list --json": [edgekit, "profiles", "list", "--json"],
    }


def child_env(pycache: Path, bytecode: bool) -> dict[str, str]:
    env = dict(os.environ)
    # With a prefix, Python reads and writes bytecode only there: the tree and the venv stay as they are.
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_once(name: str, argv: list[str], env: dict[str, str]) -> Sample:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            timeout=HANG_S,
        )
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"`{name}` still ran after {HANG_S:.0f} s") from None
    except OSError as exc:
        raise CommandFailed(f"`{name}` did not start ({exc})") from None
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise CommandFailed(f"`{name}` exited {done.returncode}: {last}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(wall, cpu)


def measure(lines: dict[str, list[str]], runs: int, env: dict[str, str]) -> dict[str, list[Sample]]:
    for name, argv in lines.items():
        run_once(name, argv, env)
    samples: dict[str, list[Sample]] = {name: [] for name in lines}
    for round_number in range(runs):
        progress(f"round {round_number + 1} of {runs}")
        for name, argv in lines.items():
            samples[name].append(run_once(name, argv, env))
    return samples


def progress(message: str) -> None:
    # stderr, so that --json leaves stdout holding only the JSON object.
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Report


def build_report(
    samples: dict[str, list[Sample]], runs: int, bytecode: bool, load_before: float, load_after: float
) -> dict[str, Any]:
    floor = min(sample.wall_s for sample in samples[BASELINE])
    rows = []
    for name, taken in samples.items():
        walls = [sample.wall_s for sample in taken]
        best = min(walls)
        rows.append(
            {
                "command": name,
                "best_s": round(best, 4),
                "median_s": round(statistics.median(walls), 4),
                "spread_s": round(max(walls) - best, 4),
                "cpu_s": round(min(sample.cpu_s for sample in taken), 4),
                "vs_pass": round(best / floor, 2) if floor > 0 else 0.0,
            }
        )
    judged = [row for row in rows if row["command"].startswith("edgekit ")]
    slowest = max((row["best_s"] for row in judged), default=0.0)
    return {
        "machine": {
            "cpus": os.cpu_count() or 0,
            "arch": platform.machine(),
            "python": platform.python_version(),
            "load_average_before": round(load_before, 2),
            "load_average_after": round(load_after, 2),
        },
        "runs": runs,
        "bytecode": "cached" if bytecode else "compiled on every start",
        "commands": rows,
        "target": {"max_best_s": TARGET_S, "slowest_best_s": slowest, "met": slowest < TARGET_S},
    }


def format_report(report: dict[str, Any]) -> str:
    machine = report["machine"]
    header = (
        f"machine: {machine['cpus']} CPUs ({machine['arch']}) | Python {machine['python']} | "
        f"load average {machine['load_average_before']:.2f} before, {machine['load_average_after']:.2f} after | "
        f"{report['runs']} timed run{'s' if report['runs'] > 1 else ''} per command after one warm-up | "
        f"bytecode {report['bytecode']}"
    )
    lines = [header, "", *format_table(report["commands"]), ""]
    target = report["target"]
    verdict = "met" if target["met"] else "NOT met"
    lines.append(
        f"target: every edgekit command under {target['max_best_s'] * 1000:.0f} ms (best): {verdict} "
        f"(slowest {target['slowest_best_s'] * 1000:.0f} ms)"
    )
    return "\n".join(lines)


def format_table(rows: list[dict[str, Any]]) -> list[str]:
    header = ["command", "best ms", "median ms", "spread ms", "cpu ms", "vs pass"]
    table = [header] + [
        [row["command"], *(f"{row[key] * 1000:.1f}" for key in MS_COLUMNS), f"{row['vs_pass']:.2f}x"] for row in rows
    ]
    widths = [max(len(cells[i]) for cells in table) for i in range(len(header))]
    table.insert(1, ["-" * width for width in widths])

    def line(cells: list[str]) -> str:
        # Commands flush left, numbers flush right so that their digits line up.
        numbers = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([cells[0].ljust(widths[0]), *numbers])

    return [line(cells) for cells in table]


# ---------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench-cli",
        description="Time the edgekit commands that need no device as whole processes, against `python -c pass`.",
    )
    parser.add_argument("--runs", type=int, default=10, help="timed runs per command (default 10)")
    parser.add_argument(
        "--no-bytecode", action="store_true", help="compile every module from source on every start (no .pyc)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, not {args.runs}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bytecode = not args.no_bytecode
    load_before = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cli-pycache-") as pycache:
            samples = measure(commands(), args.runs, child_env(Path(pycache), bytecode))
    except CommandFailed as exc:
        print(f"bench-cli: {exc}", file=sys.stderr)
        return 1
    report = build_report(samples, args.runs, bytecode, load_before, os.getloadavg()[0])
    print(json.dumps(report) if args.json else format_report(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
