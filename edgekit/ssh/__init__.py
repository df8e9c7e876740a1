"""SSH to the device: one small connection interface (run, put, get) and its real implementation."""

from edgekit.ssh.connection import Connection, RunResult, SSHConnection, open_connection
from edgekit.ssh.target import Target, parse_target

__all__ = ["Connection", "RunResult", "SSHConnection", "Target", "open_connection", "parse_target"]
