"""A real OpenSSH server on a 127.0.0.1 port, for tests of host keys, certificates and jump hosts.

It runs as root (sshd needs it for privilege separation), lets in only ``root`` with the test's own
key, and keeps all its files (host keys, certificates, config, pid) in the test's directory.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def make_key(path: Path, kind: str = "ed25519") -> Path:
    """A new passphrase-less key pair at ``path`` (and ``path.pub``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path


def sign_host_key(ca: Path, host_key: Path, principals: str = "127.0.0.1", validity: str = "-5m:+1h") -> Path:
    """An OpenSSH host certificate for ``host_key`` signed by ``ca``: ``<host_key>-cert.pub``."""
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-s",
            str(ca),
            "-h",
            "-I",
            "edgekit-test",
            "-n",
            principals,
            "-V",
            validity,
            f"{host_key}.pub",
        ],
        check=True,
    )
    return Path(f"{host_key}-cert.pub")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Sshd:
    port: int
    dir: Path
    host_keys: tuple[Path, ...]

    @property
    def name(self) -> str:
        """The server's known_hosts name."""
        return f"[127.0.0.1]:{self.port}"

    def public_key(self, index: int = 0) -> str:
        """``<type> <base64>`` of host key ``index``."""
        kind, blob = Path(f"{self.host_keys[index]}.pub").read_text().split()[:2]
        return f"{kind} {blob}"

    def known_hosts_line(self, index: int = 0) -> str:
        return f"{self.name} {self.public_key(index)}\n"


@contextlib.contextmanager
def running_sshd(
    directory: Path,
    client_key: Path,
    *,
    host_key_kinds: Sequence[str] = ("ed25519",),
    certificate_ca: Path | None = None,
    principals: str = "127.0.0.1",
    config: str = "",
) -> Iterator[Sshd]:
    """sshd on a free port, letting ``root`` in with ``client_key`` (its ``.pub`` is authorized).

    With ``certificate_ca``, the first host key also gets a host certificate signed by that CA
    for ``principals``; ``config`` adds lines to sshd_config (a ForceCommand, a PermitOpen...).
    """
    directory.mkdir(parents=True, exist_ok=True)
    host_keys = tuple(make_key(directory / f"ssh_host_{kind}_key", kind) for kind in host_key_kinds)
    lines = [f"HostKey {key}" for key in host_keys]
    if certificate_ca is not None:
        lines.append(f"HostCertificate {sign_host_key(certificate_ca, host_keys[0], principals)}")
    authorized = directory / "authorized_keys"
    authorized.write_text(Path(f"{client_key}.pub").read_text())
    port = free_port()
    config_file = directory / "sshd_config"
    config_file.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                *lines,
                f"PidFile {directory / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                # The test's files live under /tmp, which sshd's ownership checks would refuse.
                "StrictModes no",
                "AllowTcpForwarding yes",
                "Subsystem sftp internal-sftp",
                "LogLevel ERROR",
                config,
                "",
            ]
        )
    )
    # sshd's privilege separation directory; a machine whose own sshd never ran lacks it.
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config_file)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_listening(port, process)
        yield Sshd(port, directory, host_keys)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"sshd exited with {process.returncode}: {error.strip()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port} within 10 s")
