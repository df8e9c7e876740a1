"""``open_connection`` and ``SSHConnection`` against a real OpenSSH server on 127.0.0.1.

The fixture starts its own ``sshd`` (installing openssh-server when the machine lacks it and
we are root) with a throwaway host key and authorized_keys, on a free loopback port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest
from sshd import free_port, make_key, running_sshd

from edgekit.errors import (
    AuthFailed,
    DeviceUnreachable,
    EdgekitError,
    HostKeyChanged,
    RemoteCommandFailed,
    UnknownHostKey,
)
from edgekit.ssh.connection import CHUNK_BYTES, SSHConnection, open_connection
from edgekit.ssh.hostkeys import fingerprint
from edgekit.ssh.seam import command_line
from edgekit.ssh.target import Target

pytestmark = pytest.mark.usefixtures("isolated_home")


def find_sshd() -> str | None:
    found = shutil.which("sshd")
    if found:
        return found
    return "/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None


def ensure_sshd() -> str:
    sshd = find_sshd()
    if sshd is None:
        if os.geteuid() != 0:
            pytest.skip("sshd is not installed and installing it needs root")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = ["apt-get", "install", "-y", "-q", "openssh-server"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True, check=True)
        sshd = find_sshd()
        assert sshd is not None, "openssh-server installed but no sshd found"
    return sshd


@dataclass
class Server:
    port: int
    host_key: paramiko.Ed25519Key
    client_key: Path
    stranger_key: Path
    other_host_key: paramiko.Ed25519Key
    root: Path

    @property
    def name(self) -> str:
        return f"[127.0.0.1]:{self.port}"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    ensure_sshd()
    if os.geteuid() != 0:
        pytest.skip("the test sshd logs in as root and needs root to run")
    root = tmp_path_factory.mktemp("sshd")
    client_key = make_key(root / "client_key")
    other_host_key = paramiko.Ed25519Key.from_private_key_file(str(make_key(root / "other_host_key")))
    with running_sshd(root / "server", client_key) as server:
        host_key = paramiko.Ed25519Key.from_private_key_file(str(server.host_keys[0]))
        yield Server(server.port, host_key, client_key, make_key(root / "stranger_key"), other_host_key, root)


def connect(
    server: Server,
    known_hosts: Path,
    *,
    accept: bool = False,
    identity: Path | None = None,
    port: int | None = None,
    accepted: list[tuple[str, str]] | None = None,
) -> SSHConnection:
    return open_connection(
        Target(host="127.0.0.1", port=port or server.port),
        known_hosts=known_hosts,
        accept_new_host_key=accept,
        identity=identity or server.client_key,
        use_ssh_config=False,
        on_new_host_key=lambda host, fp: (accepted if accepted is not None else []).append((host, fp)),
    )


@pytest.fixture
def trusted(sshd: Server, tmp_path: Path) -> Path:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"{sshd.name} ssh-ed25519 {sshd.host_key.get_base64()}\n")
    return known_hosts


@pytest.fixture
def conn(sshd: Server, trusted: Path) -> Iterator[SSHConnection]:
    connection = connect(sshd, trusted)
    yield connection
    connection.close()


def test_unknown_host_key_is_refused(sshd: Server, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    accepted: list[tuple[str, str]] = []
    with pytest.raises(UnknownHostKey) as info:
        connect(sshd, known_hosts, accepted=accepted)
    message = str(info.value)
    assert fingerprint(sshd.host_key) in message
    assert "--accept-new-host-key" in message
    assert accepted == []
    assert not known_hosts.exists()


def test_accepting_a_new_host_key_records_it(sshd: Server, tmp_path: Path) -> None:
    known_hosts = tmp_path / "dir" / "known_hosts"
    accepted: list[tuple[str, str]] = []
    first = connect(sshd, known_hosts, accept=True, accepted=accepted)
    try:
        assert first.run(["true"]).ok
    finally:
        first.close()
    assert accepted == [(sshd.name, fingerprint(sshd.host_key))]
    assert known_hosts.read_text() == f"{sshd.name} ssh-ed25519 {sshd.host_key.get_base64()}\n"
    # The second time the key is known: no --accept-new-host-key needed, nothing appended.
    again: list[tuple[str, str]] = []
    second = connect(sshd, known_hosts, accepted=again)
    try:
        assert second.run(["echo", "ok"]).stdout == "ok\n"
    finally:
        second.close()
    assert again == []
    assert known_hosts.read_text().count("\n") == 1


def test_hashed_known_hosts_entry_is_trusted(sshd: Server, trusted: Path) -> None:
    subprocess.run(["ssh-keygen", "-H", "-f", str(trusted)], check=True, capture_output=True)
    assert "127.0.0.1" not in trusted.read_text()
    connection = connect(sshd, trusted)
    connection.close()


def test_changed_host_key_is_refused(sshd: Server, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"{sshd.name} ssh-ed25519 {sshd.other_host_key.get_base64()}\n")
    for accept in (False, True):
        with pytest.raises(HostKeyChanged) as info:
            connect(sshd, known_hosts, accept=accept)
        message = str(info.value)
        assert "ssh-keygen" in message and "-R" in message
        assert sshd.name in message
        assert fingerprint(sshd.host_key) in message
    # Even --accept-new-host-key never overwrites a changed key.
    assert known_hosts.read_text() == f"{sshd.name} ssh-ed25519 {sshd.other_host_key.get_base64()}\n"


def test_wrong_identity_is_refused(sshd: Server, trusted: Path) -> None:
    with pytest.raises(AuthFailed) as info:
        connect(sshd, trusted, identity=sshd.stranger_key)
    assert "root" in str(info.value)


def test_missing_identity_file(sshd: Server, trusted: Path, tmp_path: Path) -> None:
    with pytest.raises(AuthFailed, match="does not exist"):
        connect(sshd, trusted, identity=tmp_path / "no_such_key")


def test_closed_port_is_unreachable(sshd: Server, trusted: Path) -> None:
    port = free_port()
    with pytest.raises(DeviceUnreachable) as info:
        connect(sshd, trusted, port=port)
    assert "refused the connection" in str(info.value)
    assert str(port) in str(info.value)


def test_unresolvable_host_is_unreachable(trusted: Path, sshd: Server) -> None:
    with pytest.raises(DeviceUnreachable, match="does not resolve"):
        open_connection(
            Target(host="no-such-host.invalid", port=sshd.port),
            known_hosts=trusted,
            identity=sshd.client_key,
            use_ssh_config=False,
        )


def test_root_connection(conn: SSHConnection, sshd: Server) -> None:
    assert conn.is_root is True
    assert conn.target == Target(host="127.0.0.1", user="root", port=sshd.port)
    assert conn.run(["id", "-u"]).stdout == "0\n"
    # root needs no sudo: the command is sent as is.
    result = conn.run(["id", "-u"], sudo=True)
    assert result.command == "id -u"
    assert result.stdout == "0\n"


def test_run_quotes_every_argument(conn: SSHConnection) -> None:
    result = conn.run(["echo", "a b", "$HOME;x"])
    assert result.stdout == "a b $HOME;x\n"
    assert result.exit_code == 0 and result.ok
    tricky = conn.run(["printf", "%s|", "it's", "`id`", "*", "a\nb", ""])
    assert tricky.stdout == "it's|`id`|*|a\nb||"


def test_run_separates_stdout_and_stderr(conn: SSHConnection) -> None:
    result = conn.run(["sh", "-c", "echo out; echo err >&2"])
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


def test_failed_command(conn: SSHConnection) -> None:
    with pytest.raises(RemoteCommandFailed) as info:
        conn.run(["false"])
    assert info.value.result.exit_code == 1
    assert info.value.result.command == "false"
    assert not info.value.result.ok
    with pytest.raises(RemoteCommandFailed) as info:
        conn.run(["sh", "-c", "echo first >&2; echo 'the last line' >&2; exit 3"])
    assert info.value.result.exit_code == 3
    assert "exit code 3" in str(info.value)
    assert "the last line" in str(info.value)
    unchecked = conn.run(["false"], check=False)
    assert unchecked.exit_code == 1
    assert not unchecked.ok


def test_run_timeout(conn: SSHConnection) -> None:
    started = time.monotonic()
    with pytest.raises(DeviceUnreachable, match="did not finish"):
        conn.run(["sleep", "10"], timeout=1)
    assert time.monotonic() - started < 8


def test_put_uploads_and_resumes(conn: SSHConnection, sshd: Server, tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK_BYTES)
    local = tmp_path / "blob.bin"
    local.write_bytes(data)
    remote = sshd.root / f"upload-{tmp_path.name}.bin"
    calls: list[tuple[int, int]] = []
    conn.put(local, str(remote), progress=lambda done, total: calls.append((done, total)))
    assert remote.read_bytes() == data
    assert calls[-1] == (len(data), len(data))

    # A dropped link left the first MiB: only the rest is sent.
    remote.write_bytes(data[:CHUNK_BYTES])
    calls.clear()
    conn.put(local, str(remote), progress=lambda done, total: calls.append((done, total)))
    assert remote.read_bytes() == data
    assert calls == [(2 * CHUNK_BYTES, len(data)), (3 * CHUNK_BYTES, len(data))]

    # Already complete: nothing to send, the bytes stay.
    calls.clear()
    conn.put(local, str(remote), progress=lambda done, total: calls.append((done, total)))
    assert remote.read_bytes() == data
    assert calls == []


def test_put_restarts_when_remote_is_longer(conn: SSHConnection, sshd: Server, tmp_path: Path) -> None:
    local = tmp_path / "small.bin"
    local.write_bytes(b"new content")
    remote = sshd.root / f"longer-{tmp_path.name}.bin"
    remote.write_bytes(b"x" * 1000)
    conn.put(local, str(remote))
    assert remote.read_bytes() == b"new content"


def test_get(conn: SSHConnection, sshd: Server, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    remote = sshd.root / f"download-{tmp_path.name}.bin"
    remote.write_bytes(data)
    local = tmp_path / "got.bin"
    conn.get(str(remote), local)
    assert local.read_bytes() == data


def test_command_line() -> None:
    assert command_line(["a b"], sudo=True) == "sudo -n -- 'a b'"
    assert command_line(["a b"], sudo=False) == "'a b'"
    assert command_line(["echo", "$HOME;x"], sudo=False) == "echo '$HOME;x'"
    assert command_line(["systemctl", "restart", "edgekit-camera.service"], sudo=True) == (
        "sudo -n -- systemctl restart edgekit-camera.service"
    )


def test_missing_remote_path_is_not_a_dropped_link(conn: SSHConnection, sshd: Server, tmp_path: Path) -> None:
    local = tmp_path / "f.bin"
    local.write_bytes(b"data")
    with pytest.raises(EdgekitError) as info:
        conn.put(local, str(sshd.root / "no" / "such" / "dir" / "f.bin"))
    assert not isinstance(info.value, DeviceUnreachable)
    with pytest.raises(EdgekitError) as info:
        conn.get(str(sshd.root / "no-such-file"), tmp_path / "x")
    assert not isinstance(info.value, DeviceUnreachable)
