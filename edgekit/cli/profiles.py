"""``edgekit profiles list|show``: the Jetson modules and JetPack lines edgekit knows."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from edgekit.cli.connect import JsonOption
from edgekit.cli.output import console, print_json
from edgekit.profiles import load_profile, load_profiles

app = typer.Typer(help="Device profiles: one per Jetson module and JetPack line.", no_args_is_help=True)


@app.command("list")
def list_command(as_json: JsonOption = False) -> None:
    """List every profile with its JetPack, TensorRT and INT8 path."""
    profiles = load_profiles()
    if as_json:
        print_json([profile.to_dict() for profile in profiles])
        return
    table = Table("profile", "module", "JetPack", "L4T", "TensorRT", "INT8", "DLA", "memory", "supported")
    table.columns[0].no_wrap = True
    for profile in profiles:
        table.add_row(
            profile.name,
            profile.module.name,
            profile.software.jetpack,
            f"{profile.software.l4t[0]}-{profile.software.l4t[-1]}",
            profile.software.tensorrt,
            profile.build.int8,
            str(profile.module.dla_cores),
            f"{profile.module.memory_mib // 1024} GB",
            "yes" if profile.supported else "[red]no[/]",
        )
    console.print(table)


@app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="Profile name, as `edgekit profiles list` prints it.")],
    as_json: JsonOption = False,
) -> None:
    """Show everything a profile decides."""
    profile = load_profile(name)
    data = profile.to_dict()
    if as_json:
        print_json(data)
        return
    table = Table(title=f"{profile.name}: {profile.description}", show_header=False)
    if not profile.supported:
        table.add_row("[red]unsupported[/]", profile.unsupported)
    for section in ("module", "software", "build", "camera"):
        for key, value in data[section].items():
            shown = ", ".join(value) if isinstance(value, list | tuple) else str(value)
            table.add_row(f"{section}.{key}", shown)
    console.print(table)
