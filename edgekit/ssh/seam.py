"""The seam between host flows and a device, without the SSH libraries behind it.

Host flows only see ``Connection``; ``edgekit.ssh.connection.SSHConnection`` is the real
one and ``edgekit.testing.FakeConnection`` the one unit tests use. Nothing here imports
fabric or paramiko, so importing the seam stays cheap for the CLI and for tests.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edgekit.errors import RemoteCommandFailed
from edgekit.ssh.target import Target

# Where host keys are checked unless the caller names another file.
DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class RunResult:
    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class Connection(Protocol):
    target: Target

    @property
    def is_root(self) -> bool: ...

    def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        check: bool = True,
        timeout: float | None = None,
    ) -> RunResult: ...

    def put(self, local: Path, remote: str, progress: ProgressCallback | None = None) -> None: ...

    def get(self, remote: str, local: Path) -> None: ...

    def close(self) -> None: ...


def command_line(argv: Sequence[str], sudo: bool, prompt: str | None = None) -> str:
    """Quote every argument; the remote login shell must never re-split our words.

    With a ``prompt``, sudo asks for its password on stderr with that prompt and reads it from
    stdin (-S); without one, sudo must not ask (-n)."""
    quoted = shlex.join(argv)
    if not sudo:
        return quoted
    return f"sudo -S -p {shlex.quote(prompt)} -- {quoted}" if prompt is not None else f"sudo -n -- {quoted}"


def checked(target: Target, result: RunResult, check: bool) -> RunResult:
    """``result``, or with ``check`` and a non-zero exit, the RemoteCommandFailed every
    Connection raises for it, so a fake fails with the words a device would."""
    if check and not result.ok:
        raise RemoteCommandFailed(failure_sentence(target, result), result)
    return result


def failure_sentence(target: Target, result: RunResult) -> str:
    """The message of the ``RemoteCommandFailed`` a checked run raises."""
    detail = (result.stderr.strip() or result.stdout.strip()).splitlines()
    last = detail[-1] if detail else "no output"
    if "sudo: a password is required" in result.stderr:
        return (
            f"{target} asks for a sudo password; give it with --ask-sudo-password or "
            "--sudo-password-file, give the user passwordless sudo, or connect as root."
        )
    return f"`{result.command}` failed on {target} with exit code {result.exit_code}: {last}"
