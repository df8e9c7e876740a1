"""Build progress as log lines, which the host turns into a progress display.

TensorRT 10 and later report their build phases through an IProgressMonitor; 8.x builds
say nothing until they finish, so there only the calibration batches mark progress.
"""

from __future__ import annotations

from typing import Any, Callable

Log = Callable[[str], None]
# The host parses lines that start with this; keep it in step with edgekit/device/build.py.
PROGRESS_PREFIX = "progress:"


def progress_line(phase: str, done: int, total: int) -> str:
    return f"{PROGRESS_PREFIX} {phase} {done}/{total}"


def make_progress_monitor(trt: Any, log: Log) -> Any:
    """An IProgressMonitor of the imported release that logs top-level phase steps."""
    base = trt.IProgressMonitor

    class BuildProgress(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self._totals: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            # Nested phases (per layer, per tactic) would flood the journal.
            if parent_phase is None:
                self._totals[phase_name] = num_steps
                log(progress_line(phase_name, 0, num_steps))

        def step_complete(self, phase_name: str, step: int) -> bool:
            total = self._totals.get(phase_name)
            if total is not None:
                log(progress_line(phase_name, step + 1, total))
            # False would cancel the build.
            return True

        def phase_finish(self, phase_name: str) -> None:
            self._totals.pop(phase_name, None)

    return BuildProgress()
