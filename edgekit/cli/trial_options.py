"""The options of every command that puts a release on trial (provision, calibrate, rollback)."""

from __future__ import annotations

from typing import Annotated

import typer

TrialResultsOption = Annotated[
    int, typer.Option(min=1, help="Results the release must write on trial before it is committed.")
]
TrialDeadlineOption = Annotated[
    float,
    typer.Option(
        min=1.0,
        help="Seconds the release has to send READY and write them; the device rolls back a release that "
        "does not, by itself if the host has gone.",
    ),
]
