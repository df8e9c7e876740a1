"""The real connection to a device: run a command, put a file, get a file.

``SSHConnection`` implements ``edgekit.ssh.seam.Connection`` on Fabric (for ~/.ssh/config,
ProxyJump and command running) with paramiko's host key checking put back in.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import fabric
import paramiko
from invoke.exceptions import CommandTimedOut

from edgekit.errors import AuthFailed, DeviceError, DeviceUnreachable
from edgekit.ssh.hostkeys import KnownHostsPolicy, changed_key_error, load_known_hosts
from edgekit.ssh.seam import ProgressCallback, RunResult, checked, command_line
from edgekit.ssh.target import Target

CONNECT_TIMEOUT_S = 15.0
# Resumed uploads go in pieces this size, so a dropped link loses at most one.
CHUNK_BYTES = 1 << 20


class SSHConnection:
    """A live SSH connection; use :func:`open_connection` to make one."""

    def __init__(self, target: Target, conn: fabric.Connection) -> None:
        self.target = target
        self._conn = conn
        self._sftp: paramiko.SFTPClient | None = None

    @property
    def is_root(self) -> bool:
        # fabric is untyped: name the type its user has.
        user: str = self._conn.user
        return user == "root"

    def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        check: bool = True,
        timeout: float | None = None,
    ) -> RunResult:
        line = command_line(argv, sudo and not self.is_root)
        timed_out = DeviceUnreachable(
            f"{self.target} did not finish `{line}` within {timeout or 0:.0f} s; check the device's load and re-run."
        )
        started = time.monotonic()
        try:
            raw = self._conn.run(line, hide=True, warn=True, in_stream=False, timeout=timeout)
        except CommandTimedOut as exc:
            raise timed_out from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self._dropped(exc) from exc
        result = RunResult(line, raw.exited, raw.stdout, raw.stderr)
        # invoke decides "timed out" by whether its timer thread has ended: a command its timer
        # has just killed can come back as a plain failure while that thread is still winding down.
        if timeout is not None and not result.ok and time.monotonic() - started >= timeout:
            raise timed_out
        return checked(self.target, result, check)

    def put(self, local: Path, remote: str, progress: ProgressCallback | None = None) -> None:
        """Upload ``local`` to ``remote``, resuming a partial ``remote`` left by a dropped link."""
        total = local.stat().st_size
        try:
            sftp = self._sftp_client()
            try:
                offset = sftp.stat(remote).st_size or 0
            except FileNotFoundError:
                offset = 0
            if offset > total:
                sftp.remove(remote)
                offset = 0
            with open(local, "rb") as source, sftp.open(remote, "ab" if offset else "wb") as dest:
                dest.set_pipelined(True)
                source.seek(offset)
                while chunk := source.read(CHUNK_BYTES):
                    dest.write(chunk)
                    offset += len(chunk)
                    if progress:
                        progress(offset, total)
        except (FileNotFoundError, PermissionError) as exc:
            raise DeviceError(
                f"{self.target} refused writing {remote} ({exc}); check the folder and its permissions."
            ) from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self._dropped(exc) from exc

    def get(self, remote: str, local: Path) -> None:
        try:
            self._sftp_client().get(remote, str(local))
        except (FileNotFoundError, PermissionError) as exc:
            raise DeviceError(
                f"{self.target} cannot give {remote} ({exc}); check that it exists and is readable."
            ) from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self._dropped(exc) from exc

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
        self._conn.close()

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = self._conn.sftp()
        return self._sftp

    def _dropped(self, exc: BaseException) -> DeviceUnreachable:
        # The next call reconnects (Fabric reopens a dead transport); a stale SFTP channel would not.
        self._sftp = None
        return DeviceUnreachable(
            f"The link to {self.target} dropped ({exc or type(exc).__name__}); "
            "re-run the same command, finished steps are not repeated."
        )


def open_connection(
    target: Target,
    *,
    known_hosts: Path,
    accept_new_host_key: bool = False,
    identity: Path | None = None,
    use_ssh_config: bool = True,
    on_new_host_key: Callable[[str, str], None] = lambda host, fp: None,
) -> SSHConnection:
    """Connect and authenticate, verifying the host key against ``known_hosts``.

    ~/.ssh/config (host alias, user, port, key, ProxyJump) applies unless
    ``use_ssh_config`` is off; explicit arguments win over it.
    """
    # An explicit empty SSHConfig is Fabric's way to load no ssh_config file at all.
    config = fabric.Config() if use_ssh_config else fabric.Config(ssh_config=paramiko.SSHConfig())
    connect_kwargs: dict[str, object] = {}
    if identity is not None:
        if not identity.exists():
            raise AuthFailed(f"The identity file {identity} does not exist; pass an existing key with -i.")
        connect_kwargs["key_filename"] = [str(identity)]
    conn = fabric.Connection(
        target.host,
        user=target.user,
        port=target.port,
        config=config,
        connect_timeout=CONNECT_TIMEOUT_S,
        connect_kwargs=connect_kwargs,
    )
    policy = KnownHostsPolicy(known_hosts, accept_new_host_key, on_new_host_key)
    hop: fabric.Connection | None = conn
    while isinstance(hop, fabric.Connection):
        _install_host_key_checking(hop.client, known_hosts, policy)
        hop = hop.gateway if isinstance(hop.gateway, fabric.Connection) else None
    resolved = Target(host=conn.host, user=conn.user, port=conn.port)
    try:
        conn.open()
    except paramiko.BadHostKeyException as exc:
        raise changed_key_error(conn.host, conn.port, known_hosts, exc.key) from exc
    except paramiko.AuthenticationException as exc:
        raise AuthFailed(
            f"{resolved} refused our SSH key for user {conn.user!r}; pass the right key with -i "
            "or install ours with ssh-copy-id."
        ) from exc
    except (socket.gaierror, socket.herror) as exc:
        raise DeviceUnreachable(
            f"The host name {conn.host!r} does not resolve; check the spelling or use the IP address."
        ) from exc
    except (OSError, EOFError, paramiko.SSHException) as exc:
        conn.close()
        if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError | ConnectionRefusedError):
            reason = "refused the connection"
        elif isinstance(exc, TimeoutError | socket.timeout):
            reason = "did not answer"
        else:
            reason = f"failed the SSH handshake ({exc})"
        raise DeviceUnreachable(
            f"{resolved} {reason}; check that the device is on, sshd runs and the port is right."
        ) from exc
    return SSHConnection(resolved, conn)


def _install_host_key_checking(client: paramiko.SSHClient, known_hosts: Path, policy: KnownHostsPolicy) -> None:
    host_keys = client.get_host_keys()
    host_keys.clear()
    for name, keys in load_known_hosts(known_hosts).items():
        for key_type, key in keys.items():
            host_keys.add(name, key_type, key)
    client.set_missing_host_key_policy(policy)
