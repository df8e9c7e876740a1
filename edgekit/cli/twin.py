"""``edgekit twin up|down|status|ssh``: the local Jetson twin."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Annotated

import typer

from edgekit.cli.output import err_console, print_json
from edgekit.errors import TwinError
from edgekit.profiles import load_profile
from edgekit.twin import twin_down, twin_status, twin_up
from edgekit.twin.machine import list_twins

app = typer.Typer(help="Run a local Jetson twin (systemd-nspawn) to rehearse provisioning.", no_args_is_help=True)

NameOption = Annotated[str, typer.Option("--name", "-n", help="Twin name; several twins can run at once.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command("up")
def up_command(
    name: NameOption = "jetson",
    profile: Annotated[str, typer.Option(help="Device profile whose identity the twin shows.")] = "twin",
    port: Annotated[int | None, typer.Option(help="sshd port on 127.0.0.1 (default: first free from 2222).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Boot a twin (building its rootfs once) and print how to reach it."""
    chosen = load_profile(profile)
    with err_console.status(f"starting twin {name!r}") as status:
        info = twin_up(name, chosen, port, log=lambda line: status.update(line[:100]))
    if as_json:
        print_json(asdict(info) | {"target": info.target})
        return
    err_console.print(f"twin [bold]{info.name}[/] ({info.profile}) is up: ssh on 127.0.0.1:{info.port}")
    err_console.print(f"  host key  {info.host_key_fingerprint}")
    err_console.print(f"  provision edgekit provision {info.target} -i {info.identity} --accept-new-host-key")
    err_console.print(f"  shell     edgekit twin ssh --name {info.name}")


@app.command("down")
def down_command(name: NameOption = "jetson") -> None:
    """Power the twin off and delete its state (the cached rootfs stays)."""
    if twin_down(name):
        err_console.print(f"twin {name!r} is down")
    else:
        err_console.print(f"twin {name!r} was not running")


@app.command("status")
def status_command(
    name: Annotated[str | None, typer.Option("--name", "-n")] = None, as_json: JsonOption = False
) -> None:
    """Show one twin, or all of them."""
    infos = [twin_status(name)] if name else list_twins()
    found = [info for info in infos if info is not None]
    if as_json:
        print_json([asdict(info) | {"target": info.target} for info in found])
        return
    if not found:
        err_console.print("no twins; start one with `edgekit twin up`")
    for info in found:
        state = "running" if info.running else "stopped"
        err_console.print(f"{info.name}: {state}, {info.profile}, {info.target}")


@app.command("ssh", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ssh_command(ctx: typer.Context, name: NameOption = "jetson") -> None:
    """Open a shell on the twin (extra arguments run as a command), checking its pinned host key."""
    info = twin_status(name)
    if info is None or not info.running:
        raise TwinError(f"The twin {name!r} is not running; start it with `edgekit twin up --name {name}`.")
    argv = [
        "ssh",
        "-i",
        info.identity,
        "-p",
        str(info.port),
        "-o",
        f"UserKnownHostsFile={info.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
        f"{info.user}@127.0.0.1",
        *ctx.args,
    ]
    os.execvp("ssh", argv)
