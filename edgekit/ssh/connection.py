"""The real connection to a device: run a command, put a file, get a file.

``SSHConnection`` implements ``edgekit.ssh.seam.Connection`` on Fabric (for ~/.ssh/config,
ProxyJump and command running) with paramiko's host key checking put back in.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import fabric
import paramiko
from invoke.exceptions import CommandTimedOut, ThreadException
from invoke.watchers import Responder

from edgekit.errors import AuthFailed, DeviceError, DeviceUnreachable, LinkDropped, UsageError
from edgekit.secret import Secret
from edgekit.ssh import transfer
from edgekit.ssh.hostkeys import HostKeyCheck
from edgekit.ssh.seam import ProgressCallback, RunResult, checked, command_line
from edgekit.ssh.target import Target

CONNECT_TIMEOUT_S = 15
# What sudo -S prints when it wants the password: a token no command prints, so the password
# answers sudo only (and the token is taken out of what the command wrote to stderr).
SUDO_PROMPT = f"[edgekit sudo {secrets.token_hex(8)}]"
# paramiko logs a failed handshake's traceback at ERROR from its transport thread; with no
# handler, Python prints that on stderr, in the middle of the one sentence the user gets.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
# Resumed uploads go in pieces this size, so a dropped link loses at most one.
CHUNK_BYTES = 1 << 20


class SSHConnection:
    """A live SSH connection; use :func:`open_connection` to make one."""

    def __init__(self, target: Target, conn: fabric.Connection, sudo_password: Secret | None = None) -> None:
        self.target = target
        self._conn = conn
        self._sftp: paramiko.SFTPClient | None = None
        self._sudo_password = sudo_password

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
        elevate = sudo and not self.is_root
        password = self._sudo_password if elevate else None
        line = command_line(argv, elevate, prompt=SUDO_PROMPT if password is not None else None)
        timed_out = DeviceUnreachable(
            f"{self.target} did not finish `{line}` within {timeout or 0:.0f} s; check the device's load and re-run."
        )
        # The password is written to sudo -S only when sudo prompts for it: a command sudo lets
        # through without one (NOPASSWD for it alone) never finds it on its stdin.
        answer = [Responder(re.escape(SUDO_PROMPT), password.reveal() + "\n")] if password is not None else []
        started = time.monotonic()
        try:
            raw = self._conn.run(line, hide=True, warn=True, in_stream=False, timeout=timeout, watchers=answer)
        except CommandTimedOut as exc:
            raise timed_out from exc
        except ThreadException as exc:
            # invoke's stream threads died with the link; their tracebacks are not the sentence.
            why = "; ".join(str(found.value) or type(found.value).__name__ for found in exc.exceptions)
            raise self._dropped(EOFError(why)) from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self._dropped(exc) from exc
        # invoke decides "timed out" by whether its timer thread has ended: a command its timer
        # has just killed (closing its channel) can come back as a plain failure, with no exit
        # status, while that thread is still winding down.
        if timeout is not None and raw.exited != 0 and time.monotonic() - started >= timeout:
            raise timed_out
        if raw.exited == -1 and not self._conn.is_connected:
            # The channel closed without an exit status because the link went. (A command killed
            # by a signal has none either, on a live link: that is the command's failure.)
            raise self._dropped(EOFError("the session closed without an exit status"))
        result = RunResult(line, raw.exited, raw.stdout, raw.stderr.replace(SUDO_PROMPT, ""))
        return checked(self.target, result, check)

    def put(self, local: Path, remote: str, progress: ProgressCallback | None = None) -> None:
        """Upload ``local`` to ``remote``, resuming a partial ``remote`` left by a dropped link."""
        try:
            transfer.upload(self._sftp_client(), local, remote, CHUNK_BYTES, progress)
        except (FileNotFoundError, PermissionError) as exc:
            raise DeviceError(
                f"{self.target} refused writing {remote} ({exc}); check the folder and its permissions."
            ) from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            # Its transport can read as alive for a moment after the link went, and Fabric would
            # not reopen it: closed now, the next call (a retry) connects afresh.
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                self._conn.close()
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
        # Closing a link that already dropped fails too; that must not hide why the command stopped.
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            if self._sftp is not None:
                self._sftp.close()
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            self._conn.close()

    def verify_sudo(self) -> None:
        """With a sudo password, prove it before anything changes on the device."""
        if self._sudo_password is None or self.is_root:
            return
        refused = self.run(["true"], sudo=True, check=False)
        if refused.ok:
            return
        detail = (refused.stderr.strip().splitlines() or ["no answer"])[-1]
        raise AuthFailed(
            f"sudo on {self.target} refused the password given for {self._conn.user!r} ({detail}); "
            "check the password and that the user may use sudo, then re-run."
        )

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            # Our own session, not Fabric's sftp(): that one is kept across a reconnect, dead.
            self._conn.open()
            sftp = paramiko.SFTPClient.from_transport(self._conn.transport)
            if sftp is None:
                raise paramiko.SSHException("the device opened no SFTP session")
            self._sftp = sftp
        return self._sftp

    def _dropped(self, exc: BaseException) -> LinkDropped:
        # The next call reconnects (Fabric reopens a dead transport); a stale SFTP channel would not.
        self._sftp = None
        return LinkDropped(self.target, str(exc) or type(exc).__name__)


def open_connection(
    target: Target,
    *,
    known_hosts: Path,
    accept_new_host_key: bool = False,
    identity: Path | None = None,
    use_ssh_config: bool = True,
    ssh_config_file: Path | None = None,
    password: Secret | None = None,
    sudo_password: Secret | None = None,
    on_new_host_key: Callable[[str, str], None] = lambda host, fp: None,
) -> SSHConnection:
    """Connect and authenticate, verifying every hop's host key against ``known_hosts``.

    ~/.ssh/config (or ``ssh_config_file``, as ``ssh -F``) applies as OpenSSH reads it unless
    ``use_ssh_config`` is off; explicit arguments win over it. Keys come from ``identity``,
    IdentityFile and ssh-agent; a ``password`` is tried only when given. A ``sudo_password``
    is checked here, before anything changes on the device.
    """
    connect_kwargs: dict[str, object] = {}
    if identity is not None:
        if not identity.exists():
            raise AuthFailed(f"The identity file {identity} does not exist; pass an existing key with -i.")
        connect_kwargs["key_filename"] = [str(identity)]
    if password is not None:
        connect_kwargs["password"] = password.reveal()
    conn = _Hop(
        target.host,
        user=target.user,
        port=target.port,
        config=_fabric_config(use_ssh_config, ssh_config_file),
        connect_kwargs=connect_kwargs,
    )
    check = HostKeyCheck(known_hosts, accept_new_host_key, on_new_host_key)
    for role, hop in _hops(conn):
        _install_host_key_checking(hop, check, role)
    resolved = Target(host=conn.host, user=conn.user, port=conn.port)
    try:
        conn.open()
    except paramiko.AuthenticationException as exc:
        raise _auth_refused(resolved, conn, password is not None) from exc
    except paramiko.SSHException as exc:
        if str(exc) != "No authentication methods available":
            raise _unreachable(resolved, conn, exc) from exc
        _, hop = _first_closed_hop(conn)
        raise AuthFailed(
            f"We have no SSH key to offer {hop.user}@{hop.host}:{hop.port} (no -i, IdentityFile, ssh-agent key "
            "or ~/.ssh/id_*); pass one with -i, load one into ssh-agent, or log in with --ask-password."
        ) from exc
    except (socket.gaierror, socket.herror) as exc:
        _, hop = _first_closed_hop(conn)
        raise DeviceUnreachable(
            f"The host name {hop.host!r} does not resolve; check the spelling or use the IP address."
        ) from exc
    except (OSError, EOFError) as exc:
        raise _unreachable(resolved, conn, exc) from exc
    connection = SSHConnection(resolved, conn, sudo_password)
    try:
        connection.verify_sudo()
    except BaseException:
        connection.close()
        raise
    return connection


class _Hop(fabric.Connection):  # type: ignore[misc]  # fabric is untyped
    """A Fabric connection that reads ProxyJump, IdentitiesOnly and ServerAliveInterval as OpenSSH does."""

    def get_gateway(self) -> fabric.Connection | str | None:
        jump = self.ssh_config.get("proxyjump")
        if jump is None:
            return super().get_gateway()
        if jump.strip().lower() == "none":
            return None
        # Fabric chains ProxyJump's hops last-first; OpenSSH dials the first hop first and each
        # later hop through the one before, so a two-hop chain went through the hops backwards.
        gateway: _Hop | None = None
        for hop in (name.strip() for name in jump.split(",")):
            shorthand = self.derive_shorthand(hop)
            if shorthand["host"] == self.host and (shorthand["port"] or 22) == self.port:
                # A wildcard Host block that names this host as its own jump host.
                return None
            gateway = _Hop(hop, config=self.config.clone(), gateway=gateway)
        return gateway

    def resolve_connect_kwargs(self, connect_kwargs: dict[str, object] | None) -> dict[str, object]:
        kwargs = dict(super().resolve_connect_kwargs(connect_kwargs))
        if "key_filename" in kwargs:
            # OpenSSH passes over an IdentityFile that does not exist; paramiko would stop at it.
            kwargs["key_filename"] = [key for key in kwargs["key_filename"] if Path(key).expanduser().exists()]
        if str(self.ssh_config.get("identitiesonly", "no")).lower() == "yes":
            # OpenSSH still offers the default ~/.ssh/id_* when no IdentityFile is named.
            kwargs.update(allow_agent=False, look_for_keys=not kwargs.get("key_filename"))
        return kwargs

    def open(self) -> object:
        opened = super().open()
        _send_at_once(self.transport)
        interval = int(self.ssh_config.get("serveraliveinterval", 0))
        if interval and self.transport is not None:
            self.transport.set_keepalive(interval)
            # paramiko's keepalive asks for no reply, so it alone never finds a link that went
            # silent; the kernel closes one whose keepalives stay unacknowledged for
            # ServerAliveCountMax intervals, as ssh does.
            misses = int(self.ssh_config.get("serveralivecountmax", 3))
            if isinstance(self.transport.sock, socket.socket):
                self.transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, interval * misses * 1000)
        return opened


def _unreachable(resolved: Target, conn: fabric.Connection, exc: BaseException) -> DeviceUnreachable:
    role, hop = _first_closed_hop(conn)
    with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
        conn.close()
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError | ConnectionRefusedError):
        reason = "refused the connection"
    elif isinstance(exc, TimeoutError | socket.timeout):
        reason = "did not answer"
    else:
        reason = f"failed the SSH handshake ({str(exc) or type(exc).__name__})"
    name = f"{resolved}" if hop is conn else f"The jump host {hop.user}@{hop.host}:{hop.port} (to {resolved})"
    return DeviceUnreachable(
        f"{name} {reason}; check that the {role} is on, sshd runs and the port is right, then re-run."
    )


def _auth_refused(resolved: Target, conn: fabric.Connection, with_password: bool) -> AuthFailed:
    _, hop = _first_closed_hop(conn)
    if hop is not conn:
        return AuthFailed(
            f"The jump host {hop.user}@{hop.host}:{hop.port} (to {resolved}) refused our SSH keys for user "
            f"{hop.user!r}; name its key with IdentityFile in ~/.ssh/config or load it into ssh-agent."
        )
    if with_password:
        return AuthFailed(
            f"{resolved} refused the password and our SSH keys for user {conn.user!r}; "
            "check the password, or pass the right key with -i."
        )
    return AuthFailed(
        f"{resolved} refused our SSH keys for user {conn.user!r}; pass the right key with -i, "
        "load it into ssh-agent, or install ours with ssh-copy-id."
    )


def _send_at_once(transport: paramiko.Transport) -> None:
    """Switch Nagle's algorithm off on the transport's socket, as OpenSSH does. paramiko leaves
    it on, and every round trip (a command, an SFTP stat, open or close) then waits out the
    device's delayed ACK: a stat took 44 ms on loopback with it, 0.5 ms without."""
    sock = transport.sock
    # Through a ProxyJump hop the "socket" is a channel of the hop's transport: nothing to set.
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _fabric_config(use_ssh_config: bool, ssh_config_file: Path | None) -> fabric.Config:
    # Fabric waits forever for a jump host unless its config names a connect timeout;
    # ConnectTimeout in ssh_config still wins for each host it covers.
    overrides = {"timeouts": {"connect": CONNECT_TIMEOUT_S}}
    if not use_ssh_config:
        # An explicit empty SSHConfig is Fabric's way to load no ssh_config file at all.
        return fabric.Config(ssh_config=paramiko.SSHConfig(), overrides=overrides)
    if ssh_config_file is not None:
        if not ssh_config_file.is_file():
            raise UsageError(f"The SSH config file {ssh_config_file} does not exist; check the path given.")
        return fabric.Config(runtime_ssh_path=str(ssh_config_file), overrides=overrides)
    return fabric.Config(overrides=overrides)


def _hops(conn: fabric.Connection) -> list[tuple[str, fabric.Connection]]:
    """The device's connection and each jump host's, device first."""
    hops = [("device", conn)]
    while isinstance(hops[-1][1].gateway, fabric.Connection):
        hops.append(("jump host", hops[-1][1].gateway))
    return hops


def _first_closed_hop(conn: fabric.Connection) -> tuple[str, fabric.Connection]:
    """The hop a failed open stopped at: the one nearest to us that is not connected."""
    for role, hop in reversed(_hops(conn)):
        if not hop.is_connected:
            return role, hop
    return "device", conn


def _install_host_key_checking(hop: fabric.Connection, check: HostKeyCheck, role: str) -> None:
    # hop.connect_kwargs is the dict Fabric's open() passes to SSHClient.connect, where the
    # transport_factory goes; hop.host/port are already resolved from ssh_config (HostName, Port).
    check.install(hop.client, hop.connect_kwargs, hop.host, hop.port, role)
