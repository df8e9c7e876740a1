"""``build``: make a release ready to serve on this device, then gate it.

Run by the host as a transient systemd unit, so it goes on when the SSH link drops. The
model is loaded the way the service will load it (for TensorRT: the engine is built into
the engine cache, or found there) and the gate samples are run through it. The answer,
or the error, is written to a result file that a reattaching host can read at any time.

With a baseline (the release serving now), that release is gated on the same samples
too, so the host can set old against new on the same held-out frames.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from .backends import load_backend
from .config import load_release
from .errors import AgentError
from .files import write_atomically
from .gate import run_gate


def log(line: str) -> None:
    # The journal of the build unit carries these lines to the host's progress display.
    print(line, file=sys.stderr, flush=True)


def run_build(release_dir: str, samples_path: str, engines_dir: str, baseline_dir: str | None = None) -> dict[str, Any]:
    release = load_release(release_dir)
    log(f"preparing release {release.release}: {release.backend}, {release.precision}")
    started = time.monotonic()
    backend = load_backend(release, engines_dir, log)
    try:
        ready_s = time.monotonic() - started
        log(f"model ready in {ready_s:.1f} s; running the gate samples")
        gate = run_gate(backend, samples_path, release)
        engine = backend.engine
    finally:
        backend.close()
    answer: dict[str, Any] = {
        "release": release.release,
        "backend": release.backend,
        "precision": release.precision,
        "ready_s": round(ready_s, 3),
        "gate": gate,
        # What the gate figures hold for: a re-provision trusts them only while its key holds.
        "engine": engine,
    }
    if baseline_dir is not None:
        answer["baseline"] = gate_baseline(baseline_dir, samples_path, engines_dir)
    return answer


def gate_baseline(baseline_dir: str, samples_path: str, engines_dir: str) -> dict[str, Any]:
    """The serving release's gate on the new release's samples, or why there is none.

    Called only after the new release's backend is closed: a Jetson's GPU memory may hold
    one model, not two. A baseline that cannot be gated (gone, or a model the samples do
    not fit) costs the comparison only, never the build.
    """
    name = os.path.basename(os.path.normpath(baseline_dir))
    try:
        baseline = load_release(baseline_dir)
        name = baseline.release
        log(f"gating the serving release {name} on the same samples")
        backend = load_backend(baseline, engines_dir, log)
        try:
            return {"release": name, "gate": run_gate(backend, samples_path, baseline)}
        finally:
            backend.close()
    except AgentError as exc:
        log(f"the serving release {name} could not be gated: {exc.message}")
        return {"release": name, "error": exc.message}


def build_and_record(
    release_dir: str, samples_path: str, engines_dir: str, result_path: str, baseline_dir: str | None = None
) -> dict[str, Any]:
    """``run_build``, with its answer or its AgentError also written to ``result_path``.

    The unit's invocation id goes with it, so a host that comes late can still find the
    build's lines in the journal after systemd unloaded the unit.
    """
    invocation = {"invocation": os.environ.get("INVOCATION_ID")}
    try:
        answer = run_build(release_dir, samples_path, engines_dir, baseline_dir)
    except AgentError as exc:
        write_atomically(result_path, json.dumps(dict(exc.to_dict(), **invocation), sort_keys=True).encode())
        raise
    answer.update(invocation)
    write_atomically(result_path, json.dumps(answer, sort_keys=True).encode())
    return answer
