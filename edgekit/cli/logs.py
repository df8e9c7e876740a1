"""``edgekit logs HOST``: the camera service's journal (or a build unit's), results in their task's terms."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from edgekit.cli.connect import (
    TargetArgument,
    device_command,
    read_device,
)
from edgekit.cli.output import console, err_console

if TYPE_CHECKING:
    from edgekit.api import Endpoint
    from edgekit.device.logs import LogEntry

# syslog priorities at or below these numbers stand out.
_STYLES = ((3, "bold red"), (4, "yellow"))


@device_command
def logs_command(
    target: TargetArgument,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep showing new entries until Ctrl-C.")] = False,
    build: Annotated[
        str | None, typer.Option("--build", metavar="ID", help="The build unit of this release instead.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help='From this time, in journalctl\'s words: "10 min ago", "2026-12-04 10:00", "today".'),
    ] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="How many of the newest entries to show.")] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each entry as one JSON object a line on stdout.")
    ] = False,
    *,
    device: Endpoint,
) -> None:
    """Show the camera service's journal: result records in their task's terms, other lines as logged."""
    from edgekit import api

    request = api.LogsRequest(build=build, since=since, lines=lines, follow=follow)
    if not follow:
        entries = read_device(target, lambda: list(api.logs(device, request)))
        for entry in entries:
            _show(entry, as_json)
        if not entries and not as_json:
            err_console.print(
                f"No entries in the journal of {request.unit} on {target}.", markup=False, highlight=False
            )
        return
    with _interrupt_stops() as stop:
        for entry in api.logs(
            device, request, on_drop=lambda text: err_console.print(text, markup=False, highlight=False), stop=stop
        ):
            _show(entry, as_json)


@contextlib.contextmanager
def _interrupt_stops() -> Iterator[threading.Event]:
    """Ctrl-C ends following cleanly (exit 0): it sets the event the follow loop waits on
    instead of raising, because a KeyboardInterrupt that lands inside a remote command is
    swallowed by invoke (it forwards it to the command and goes on waiting). A second Ctrl-C
    raises as usual, for a link that hangs."""
    stop = threading.Event()

    def interrupted(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _show(entry: LogEntry, as_json: bool) -> None:
    if as_json:
        # One object a line, flushed, so a script reading a pipe sees each entry as it comes.
        print(json.dumps(entry.to_dict(), sort_keys=True), flush=True)
        return
    style = next((style for level, style in _STYLES if entry.priority is not None and entry.priority <= level), "")
    stamp = entry.time.astimezone().strftime("%b %d %H:%M:%S")
    console.print(
        Text(f"{stamp}  ", style="dim") + Text(entry.describe(), style=style), highlight=False, soft_wrap=True
    )
