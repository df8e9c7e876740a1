"""The SSH options every device command takes, and opening the connection from them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from edgekit.cli.output import err_console

if TYPE_CHECKING:
    from edgekit.api import Endpoint


TargetArgument = Annotated[str, typer.Argument(help="The device, as [user@]host[:port] or a ~/.ssh/config alias.")]
IdentityOption = Annotated[Path | None, typer.Option("--identity", "-i", help="SSH private key.")]
KnownHostsOption = Annotated[Path, typer.Option(help="known_hosts file to verify the device against.")]
AcceptNewHostKeyOption = Annotated[bool, typer.Option(help="Trust an unknown host key (its fingerprint is printed).")]
SshConfigOption = Annotated[bool, typer.Option(help="Read ~/.ssh/config for aliases, users, keys, ProxyJump.")]
ProfileOption = Annotated[
    str | None, typer.Option(help="Device profile to use instead of the detected one (`edgekit profiles list`).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
T = TypeVar("T")


def endpoint(
    target: str,
    identity: Path | None,
    known_hosts: Path,
    accept_new_host_key: bool,
    ssh_config: bool,
) -> Endpoint:
    from edgekit.api import Endpoint

    return Endpoint(
        target,
        identity=identity,
        known_hosts=known_hosts,
        accept_new_host_key=accept_new_host_key,
        use_ssh_config=ssh_config,
        on_new_host_key=lambda host, fp: err_console.print(f"trusting new host key of {host}: {fp}"),
    )


def read_device(target: str, read: Callable[[], T]) -> T:
    """``read`` under a spinner: the shape of every read-only command."""
    with err_console.status(f"reading {target}"):
        return read()
