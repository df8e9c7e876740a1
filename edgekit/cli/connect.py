"""The SSH options every device command takes, and opening the connection from them."""

from __future__ import annotations

import functools
import getpass
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from edgekit.cli.output import err_console
from edgekit.errors import UsageError
from edgekit.secret import Secret
from edgekit.ssh.seam import DEFAULT_KNOWN_HOSTS

if TYPE_CHECKING:
    from edgekit.api import Endpoint


TargetArgument = Annotated[str, typer.Argument(help="The device, as [user@]host[:port] or a ~/.ssh/config alias.")]
IdentityOption = Annotated[Path | None, typer.Option("--identity", "-i", help="SSH private key.")]
KnownHostsOption = Annotated[Path, typer.Option(help="known_hosts file to verify the device against.")]
AcceptNewHostKeyOption = Annotated[bool, typer.Option(help="Trust an unknown host key (its fingerprint is printed).")]
SshConfigOption = Annotated[bool, typer.Option(help="Read ~/.ssh/config for aliases, users, keys, ProxyJump.")]
SshConfigFileOption = Annotated[
    Path | None, typer.Option("--ssh-config-file", "-F", help="Read this SSH config file instead of ~/.ssh/config.")
]
AskPasswordOption = Annotated[
    bool,
    typer.Option("--ask-password", help="Prompt once for the SSH password; password login is never tried otherwise."),
]
PasswordFileOption = Annotated[
    Path | None, typer.Option(help="Read the SSH password from the first line of this file ('-': stdin).")
]
AskSudoPasswordOption = Annotated[
    bool, typer.Option("--ask-sudo-password", help="Prompt once for the device user's sudo password.")
]
SudoPasswordFileOption = Annotated[
    Path | None, typer.Option(help="Read the sudo password from the first line of this file ('-': stdin).")
]
ProfileOption = Annotated[
    str | None, typer.Option(help="Device profile to use instead of the detected one (`edgekit profiles list`).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
T = TypeVar("T")
R = TypeVar("R")

# Every device command's SSH options: (parameter, annotation, default).
_SSH_OPTIONS: tuple[tuple[str, object, object], ...] = (
    ("identity", IdentityOption, None),
    ("known_hosts", KnownHostsOption, DEFAULT_KNOWN_HOSTS),
    ("accept_new_host_key", AcceptNewHostKeyOption, False),
    ("ssh_config", SshConfigOption, True),
    ("ssh_config_file", SshConfigFileOption, None),
    ("ask_password", AskPasswordOption, False),
    ("password_file", PasswordFileOption, None),
    ("ask_sudo_password", AskSudoPasswordOption, False),
    ("sudo_password_file", SudoPasswordFileOption, None),
)


def device_command(command: Callable[..., R]) -> Callable[..., R]:
    """``command`` with every device command's SSH options in place of its ``device`` parameter,
    which gets the Endpoint they describe (passwords asked for before anything else happens)."""
    own = inspect.signature(command)
    # Annotations are strings here (PEP 563); typer needs the objects, and ``device``'s type is
    # imported for type checking only.
    params = [
        p.replace(annotation=eval(p.annotation, command.__globals__) if isinstance(p.annotation, str) else p.annotation)
        for p in own.parameters.values()
        if p.name != "device"
    ]
    options = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
        for name, annotation, default in _SSH_OPTIONS
    ]

    @functools.wraps(command)
    def with_endpoint(**kwargs: Any) -> R:
        ssh = {name: kwargs.pop(name) for name, _, _ in _SSH_OPTIONS}
        return command(**kwargs, device=endpoint(kwargs["target"], **ssh))

    # typer reads the options from the signature: the command's own, then the SSH ones.
    signature = own.replace(parameters=[*params, *options], return_annotation=None)
    with_endpoint.__signature__ = signature  # type: ignore[attr-defined]
    with_endpoint.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    return with_endpoint


def endpoint(
    target: str,
    identity: Path | None,
    known_hosts: Path,
    accept_new_host_key: bool,
    ssh_config: bool,
    ssh_config_file: Path | None,
    ask_password: bool,
    password_file: Path | None,
    ask_sudo_password: bool,
    sudo_password_file: Path | None,
) -> Endpoint:
    from edgekit.api import Endpoint

    return Endpoint(
        target,
        identity=identity,
        known_hosts=known_hosts,
        accept_new_host_key=accept_new_host_key,
        use_ssh_config=ssh_config,
        ssh_config_file=ssh_config_file,
        password=_password("SSH", "", target, ask_password, password_file),
        sudo_password=_password("sudo", "sudo-", target, ask_sudo_password, sudo_password_file),
        on_new_host_key=lambda host, fp: err_console.print(f"trusting new host key of {host}: {fp}"),
    )


def _password(kind: str, flag: str, target: str, ask: bool, path: Path | None) -> Secret | None:
    if path is not None:
        return Secret.from_file(path)
    if not ask:
        return None
    if not sys.stdin.isatty():
        # getpass would fall back to reading stdin with the password echoed.
        raise UsageError(
            f"--ask-{flag}password needs a terminal to prompt on; "
            f"give --{flag}password-file (or '-' for stdin) in scripts."
        )
    return Secret(getpass.getpass(f"{kind} password for {target}: "))


def read_device(target: str, read: Callable[[], T]) -> T:
    """``read`` under a spinner: the shape of every read-only command."""
    with err_console.status(f"reading {target}"):
        return read()
