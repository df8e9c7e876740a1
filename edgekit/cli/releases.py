"""``edgekit releases HOST`` and ``edgekit prune HOST``: the releases on a device, and removing old ones."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from edgekit.cli.connect import (
    JsonOption,
    TargetArgument,
    device_command,
    read_device,
)
from edgekit.cli.output import console, print_json
from edgekit.device.releases import KEEP

if TYPE_CHECKING:
    from edgekit.api import Endpoint
    from edgekit.device.releases import Pruned, Release, Releases

# How the states read in the table: the trial's outcome in colour, the links plain.
_STATE_STYLES = {
    "committed": "green",
    "on trial": "yellow",
    "rolled back": "red",
    "failed trial": "red",
    "failed gate": "red",
}


@device_command
def releases_command(
    target: TargetArgument,
    as_json: JsonOption = False,
    *,
    device: Endpoint,
) -> None:
    """List the releases on the device: model, gate, trial state, links and size on disk, newest first."""
    from edgekit import api

    found = read_device(target, lambda: api.releases(device))
    if as_json:
        print_json(found.to_dict())
    else:
        _releases_table(found)


@device_command
def prune_command(
    target: TargetArgument,
    keep: Annotated[
        int, typer.Option(min=0, help="Committed releases to keep (current, previous and one on trial always stay).")
    ] = KEEP,
    check: Annotated[bool, typer.Option("--check", help="Only show what would be removed.")] = False,
    as_json: JsonOption = False,
    *,
    device: Endpoint,
) -> None:
    """Remove old releases, then the blobs, engines and caches only they used."""
    from edgekit import api

    done = read_device(target, lambda: api.prune(device, keep, check))
    if as_json:
        print_json(done.to_dict())
    else:
        _prune_summary(done)


def _releases_table(found: Releases) -> None:
    table = Table(title=f"{escape(found.target)}: releases")
    for column in ("release", "created", "model", "calibration", "precision", "backend", "gate", "state", "size"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for release in found.releases:
        table.add_row(
            escape(release.release),
            datetime.fromtimestamp(release.created).astimezone().strftime("%Y-%m-%d %H:%M"),
            _digest(release.onnx_sha256),
            _digest(release.calibration_sha256),
            escape(release.precision or "?"),
            escape(release.backend or "?"),
            _gate(release),
            _state(release),
            f"{_size(release.bytes)} ({_size(release.bytes - release.shared_bytes)} own)",
        )
    console.print(table)


def _digest(value: str | None) -> str:
    return "-" if not value else escape(value[:12])


def _gate(release: Release) -> str:
    if release.build_error is not None:
        return f"[red]build failed:[/] {escape(release.build_error)}"
    measured = release.measured()
    if measured is None:
        return "-"
    measure, figure = measured
    return f"{measure} {'-' if figure is None else f'{figure:.4g}'}"


def _state(release: Release) -> str:
    if release.state is None:
        shown = "none recorded"
    else:
        style = _STATE_STYLES.get(release.state, "")
        shown = f"[{style}]{escape(release.state)}[/]" if style else escape(release.state)
        shown += f": {escape(release.reason)}" if release.reason else ""
    links = ["committed link" if link == "committed" else link for link in release.links]
    return shown + (f" ({', '.join(links)})" if links else "")


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count / 2**10:.0f} KiB"


def _prune_summary(done: Pruned) -> None:
    verb = "would remove" if done.check else "removed"
    for removal in done.removed:
        console.print(f"{verb} {removal.kind} {escape(removal.path)} ({_size(removal.bytes)})", highlight=False)
    kept = ", ".join(f"{escape(kept.release)} ({escape('; '.join(kept.why))})" for kept in done.kept) or "none"
    freed = "would free" if done.check else "freed"
    console.print(f"kept {kept}", highlight=False)
    console.print(f"[bold]{freed} {_size(done.bytes)}[/] on {escape(done.target)}", highlight=False)
