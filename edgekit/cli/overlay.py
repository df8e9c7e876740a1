"""``edgekit overlay build``: the camera service as files to bake into a Jetson image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from edgekit.cli.connect import JsonOption
from edgekit.cli.output import console, print_json

app = typer.Typer(help="Firmware overlays: the camera service baked into an L4T image.", no_args_is_help=True)


@app.command("build")
def build_command(
    out: Annotated[Path, typer.Option(help="A new folder, or a .tar.gz (.tgz, .tar) to write.", show_default=False)],
    as_json: JsonOption = False,
) -> None:
    """Lay the camera unit, its drop-ins, the service user, /var/lib/edgekit, a config template and the
    agent into OUT, byte for byte the same for the same edgekit; the service waits for `edgekit provision`."""
    from edgekit.overlay import build_overlay

    built = build_overlay(out)
    if as_json:
        print_json(built.to_dict())
        return
    for item in built.files:
        console.print(f"{item.sha256[:12]}  {item.size:>8}  {escape(item.path)}", highlight=False)
    for link, target in built.links.items():
        console.print(f"{'link':12}  {'':>8}  {escape(link)} -> {escape(target)}", highlight=False)
    digest = f" (sha256 {built.sha256})" if built.sha256 else ""
    where = escape(built.out)
    console.print(f"[green]overlay written[/] to {where}{digest}; audit it with `edgekit audit {where}`")
