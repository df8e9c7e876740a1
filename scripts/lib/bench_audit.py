"""The audit benchmark behind scripts/bench-audit: edgekit audit over the twin's Debian rootfs.

The tree is real and written by no one here: the twin's debootstrap rootfs (tens of thousands
of files; built and cached by the twin, /var/cache/edgekit/twin). Three passes run in the same
rounds, so load elsewhere hits them alike:

- ``edgekit audit`` (every rule, policy rootfs), which reads only what each rule needs;
- ``file(1)`` over every file, the content triage a general scanner starts with (its magic
  database, first bytes of each file), as the peer;
- reading every byte of every file, what a content scan without per-rule limits costs.

Prints best, median and spread per pass, files per second, the ratio to edgekit's best, and
edgekit's findings by rule. Target (issue 16): the whole rootfs in under a minute here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.audit.policy import load_policy
from edgekit.audit.scan import AuditReport, audit
from edgekit.twin.rootfs import ensure_rootfs

TARGET_S = 60.0


def regular_files(root: Path) -> list[str]:
    return [
        os.path.join(folder, name)
        for folder, _, names in os.walk(root)
        for name in names
        if os.path.isfile(os.path.join(folder, name)) and not os.path.islink(os.path.join(folder, name))
    ]


def read_everything(files: list[str]) -> None:
    for path in files:
        with open(path, "rb") as stream:
            while stream.read(1 << 20):
                pass


def file_magic(files: list[str]) -> None:
    # Batches keep each command line well under ARG_MAX.
    for start in range(0, len(files), 2000):
        subprocess.run(["file", "-b", "--", *files[start : start + 2000]], check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (best of N is reported)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    root = ensure_rootfs(lambda line: print(line, flush=True))
    files = regular_files(root)
    policy = load_policy("rootfs")
    last: dict[str, AuditReport] = {}

    def edgekit() -> None:
        last["report"] = audit(root, policy)

    passes: dict[str, Callable[[], None]] = {
        "edgekit audit (all rules)": edgekit,
        "file(1) on every file (peer)": lambda: file_magic(files),
        "read every byte": lambda: read_everything(files),
    }
    # One untimed round: the page cache holds the tree afterwards, for every pass alike.
    read_everything(files)
    times: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(args.repeat):
        for name, run in passes.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    report = last["report"]
    best_edgekit = min(times["edgekit audit (all rules)"])
    rows: list[dict[str, Any]] = []
    for name, samples in times.items():
        best = min(samples)
        rows.append(
            {
                "pass": name,
                "best_s": round(best, 2),
                "median_s": round(statistics.median(samples), 2),
                "spread_s": round(max(samples) - best, 2),
                "files_per_s": round(len(files) / best),
                "x_edgekit": round(best / best_edgekit, 2),
            }
        )
    result = {
        "rootfs": str(root),
        "files": len(files),
        "bytes": report.bytes,
        "repeat": args.repeat,
        "target_s": TARGET_S,
        "met": best_edgekit < TARGET_S,
        "passes": rows,
        "findings_by_rule": report.by_rule(),
        "errors": len(report.errors),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{len(files)} files, {report.bytes / 2**20:.0f} MiB in {root}; best of {args.repeat}")
    print(f"{'pass':32} {'best s':>8} {'median s':>9} {'spread s':>9} {'files/s':>9} {'x edgekit':>10}")
    for row in rows:
        print(
            f"{row['pass']:32} {row['best_s']:>8.2f} {row['median_s']:>9.2f} {row['spread_s']:>9.2f} "
            f"{row['files_per_s']:>9} {row['x_edgekit']:>10.2f}"
        )
    print(f"target: under {TARGET_S:.0f} s: {'met' if result['met'] else 'MISSED'}")
    print("findings by rule (policy rootfs): " + (json.dumps(report.by_rule()) if report.findings else "none"))
    print(f"errors under policy rootfs: {len(report.errors)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
