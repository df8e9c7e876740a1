"""Host key trust: known_hosts is checked for every connection and never extended silently.

Fabric 3 hard-codes ``AutoAddPolicy`` (fabric#2071); edgekit replaces it with
``KnownHostsPolicy``, which accepts an unknown key only when the user said so and shows
the fingerprint it trusted.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import paramiko

from edgekit.errors import HostKeyChanged, UnknownHostKey


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form, so it can be compared with ``ssh-keygen -lf``."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_name(host: str, port: int) -> str:
    # OpenSSH records non-default ports as [host]:port; a bare host would not match.
    return host if port == 22 else f"[{host}]:{port}"


def load_known_hosts(path: Path) -> paramiko.HostKeys:
    """Read known_hosts, skipping the @cert-authority/@revoked lines paramiko cannot parse."""
    keys = paramiko.HostKeys()
    if not path.exists():
        return keys
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(("#", "@")):
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, lineno)
        except (paramiko.hostkeys.InvalidHostKey, paramiko.SSHException):
            # OpenSSH skips a corrupt line too; the host it named is then simply unknown.
            continue
        if entry is not None:
            for name in entry.hostnames:
                keys.add(name, entry.key.get_name(), entry.key)
    return keys


class KnownHostsPolicy(paramiko.MissingHostKeyPolicy):
    """Reject unknown keys unless ``accept_new``; then append the key to ``path``."""

    def __init__(self, path: Path, accept_new: bool, on_accept: Callable[[str, str], None]) -> None:
        self.path = path
        self.accept_new = accept_new
        self.on_accept = on_accept

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if not self.accept_new:
            raise UnknownHostKey(
                f"{hostname} is not in {self.path} (its {key.get_name()} key is "
                f"{fingerprint(key)}); check that fingerprint on the device and re-run "
                "with --accept-new-host-key to trust it."
            )
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path, "a") as stream:
            stream.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
            stream.flush()
            os.fsync(stream.fileno())
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.on_accept(hostname, fingerprint(key))


def changed_key_error(host: str, port: int, path: Path, got: paramiko.PKey) -> HostKeyChanged:
    name = known_hosts_name(host, port)
    return HostKeyChanged(
        f"The host key of {name} changed (now {fingerprint(got)}), which means a re-flashed "
        f"device or someone in the middle; if the device was re-flashed, run "
        f"`ssh-keygen -f {path} -R '{name}'` and connect again with --accept-new-host-key."
    )
