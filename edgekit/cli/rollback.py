"""``edgekit rollback HOST [--to ID]``: back to the previous or a committed release, through a trial."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from edgekit.cli.connect import (
    JsonOption,
    TargetArgument,
    device_command,
)
from edgekit.cli.output import console, err_console, print_json
from edgekit.cli.trial_options import TrialDeadlineOption, TrialResultsOption
from edgekit.device.trial import TrialPolicy

if TYPE_CHECKING:
    from edgekit.api import Endpoint
    from edgekit.provision import RollbackResult


@device_command
def rollback_command(
    target: TargetArgument,
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="ID", help="A committed release to go back to (default: the previous one)."),
    ] = None,
    trial_results: TrialResultsOption = TrialPolicy.results,
    trial_deadline: TrialDeadlineOption = TrialPolicy.deadline_s,
    as_json: JsonOption = False,
    *,
    device: Endpoint,
) -> None:
    """Switch back to the previous release (or --to a committed one); it must prove healthy on trial again."""
    from edgekit import api

    policy = TrialPolicy(results=trial_results, deadline_s=trial_deadline)
    with err_console.status(f"rolling back {target}") as spinner:
        done = api.rollback(device, to, policy, api.Reporter(step=lambda text: spinner.update(escape(text))))
    if as_json:
        print_json(done.to_dict())
    else:
        _summary(done)


def _summary(done: RollbackResult) -> None:
    state = done.lifecycle
    console.print(
        f"[bold green]rolled back[/] {escape(done.left)} -> {escape(done.target)}: committed again on trial; "
        f"previous is {escape(state.previous or 'none')}"
    )
