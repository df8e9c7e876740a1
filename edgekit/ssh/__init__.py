"""SSH to the device: one small connection interface (run, put, get) and its real implementation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgekit.ssh.seam import Connection, RunResult
from edgekit.ssh.target import Target, parse_target

if TYPE_CHECKING:
    from edgekit.ssh.connection import SSHConnection, open_connection

__all__ = ["Connection", "RunResult", "SSHConnection", "Target", "open_connection", "parse_target"]


def __getattr__(name: str) -> Any:
    # Importing edgekit.ssh.seam runs this package first; fabric and paramiko load only for
    # the real connection, so the seam's users (the CLI's start-up, unit tests) go without them.
    if name in ("SSHConnection", "open_connection"):
        from edgekit.ssh import connection

        return getattr(connection, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
