"""Build progress as log lines, which the host turns into a progress display.

TensorRT 10 and later report their build phases through an IProgressMonitor; 8.x builds
say nothing until they finish, so there only the calibration batches mark progress.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from .. import Log

# "progress: <phase> <done>/<total>"; the host reads these lines back with parse_progress.
_PROGRESS = re.compile(r"^progress: (?P<phase>.+) (?P<done>\d+)/(?P<total>\d+)$")


class Progress(NamedTuple):
    phase: str
    done: int
    total: int


def progress_line(phase: str, done: int, total: int) -> str:
    return f"progress: {phase} {done}/{total}"


def parse_progress(line: str) -> Progress | None:
    match = _PROGRESS.match(line)
    if match is None:
        return None
    return Progress(match.group("phase"), int(match.group("done")), int(match.group("total")))


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
