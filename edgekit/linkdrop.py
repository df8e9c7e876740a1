"""What a dropped link interrupted, and what a re-run does from there.

A long command (provision, calibrate, rollback) tells its Reporter each step; the sentence of a
``LinkDropped`` raised inside it names the last step and what running the command again will do,
which depends on where the link went: nothing changed yet, an upload resumes, a build goes on
on the device, a trial ends there by itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from edgekit.device.build import REATTACH
from edgekit.errors import LinkDropped
from edgekit.provision import Reporter

NOTHING_CHANGED = "nothing on the device changed yet; re-run the same command when the link is back"
TRIAL_ENDS = "the device ends the trial by itself, committing or rolling back; `edgekit releases` shows which"
# Step texts' beginnings (edgekit.provision, edgekit.recalibration), each with the stage it
# starts and what a re-run does after a drop in it; a step that starts none (a build's
# "reconnecting" line) leaves the stage as it was.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("checking the model", "checking the model", NOTHING_CHANGED),
    ("connecting", "connecting", NOTHING_CHANGED),
    ("reading the device", "reading the device", NOTHING_CHANGED),
    ("reading device facts", "reading the device", NOTHING_CHANGED),
    ("device is", "preparing the model", NOTHING_CHANGED),
    ("reading what the device serves", "reading the device", NOTHING_CHANGED),
    ("release", "reading the serving release", NOTHING_CHANGED),
    ("fetching the sample frames", "fetching the sample frames", NOTHING_CHANGED),
    ("uploading", "uploading", "re-run the same command: every file resumes where it stopped"),
    ("installing the runtime", "installing the runtime", LinkDropped.RERUN),
    ("building", "building the model", REATTACH),
    ("reattached", "building the model", REATTACH),
    ("model ready", "reading the gate", LinkDropped.RERUN),
    ("installing the service", "installing the service", LinkDropped.RERUN),
    ("starting the service on trial", "waiting for the trial's results", TRIAL_ENDS),
    ("on trial", "waiting for the trial's results", TRIAL_ENDS),
    ("reading the newest result", "reading the first result", LinkDropped.RERUN),
    ("rolling back", "rolling back", "re-run the same command to finish the rollback"),
    ("fetching the device's runtime wheels", "fetching the runtime wheels", LinkDropped.RERUN),
)


@contextlib.contextmanager
def naming_drops(reporter: Reporter) -> Iterator[Reporter]:
    """``reporter``, watched: a LinkDropped out of the block names the stage it cut."""
    stage = ["connecting", NOTHING_CHANGED]

    def step(text: str) -> None:
        for prefix, name, rerun in STAGES:
            if text.startswith(prefix):
                stage[:] = [name, rerun]
                break
        reporter.step(text)

    try:
        yield dataclasses.replace(reporter, step=step)
    except LinkDropped as exc:
        raise exc.during(*stage) from exc
