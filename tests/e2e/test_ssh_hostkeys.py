"""Host key checking against a real OpenSSH server: what ``open_connection`` trusts, refuses and records.

Each server comes from tests/sshd.py (a root sshd on a free 127.0.0.1 port); a server with a
host certificate presents it only to a client that asks for certificate algorithms first.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd import Sshd, make_key, running_sshd

from edgekit.errors import HostKeyChanged, HostKeyRevoked, UnknownHostKey
from edgekit.ssh.connection import open_connection
from edgekit.ssh.target import Target

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("isolated_home")]


def ssh_keygen_fingerprint(public_key: Path) -> str:
    printed = subprocess.run(["ssh-keygen", "-l", "-f", str(public_key)], check=True, capture_output=True, text=True)
    return printed.stdout.split()[1]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    for name in ("client", "ca", "other_ca", "stranger"):
        make_key(directory / name)
    make_key(directory / "stranger_rsa", "rsa")
    return directory


@pytest.fixture(scope="module")
def server(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """An sshd with an ed25519 and an ecdsa host key, the ed25519 one first in paramiko's order."""
    with running_sshd(tmp_path_factory.mktemp("sshd"), keys / "client", host_key_kinds=("ed25519", "ecdsa")) as sshd:
        yield sshd


@pytest.fixture(scope="module")
def cert_server(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """An sshd whose ed25519 host key has a certificate from ``ca`` for 127.0.0.1."""
    directory = tmp_path_factory.mktemp("cert-sshd")
    with running_sshd(directory, keys / "client", certificate_ca=keys / "ca") as sshd:
        yield sshd


@pytest.fixture
def known_hosts(tmp_path: Path) -> Path:
    return tmp_path / "ssh" / "known_hosts"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def public(key: Path) -> str:
    """``<type> <base64>`` of a key pair's public half."""
    kind, blob = Path(f"{key}.pub").read_text().split()[:2]
    return f"{kind} {blob}"


def ca_line(keys: Path, name: str = "ca") -> str:
    # OpenSSH looks a non-default port up as [host]:port, @cert-authority patterns included.
    return f"@cert-authority [127.0.0.1]:* {public(keys / name)}\n"


def run_true(server: Sshd, keys: Path, known_hosts: Path, accept: bool = False) -> list[tuple[str, str]]:
    """Connect, run `true`, close; what the connection reported as newly trusted."""
    accepted: list[tuple[str, str]] = []
    conn = open_connection(
        Target(host="127.0.0.1", user="root", port=server.port),
        known_hosts=known_hosts,
        accept_new_host_key=accept,
        identity=keys / "client",
        use_ssh_config=False,
        on_new_host_key=lambda host, fp: accepted.append((host, fp)),
    )
    try:
        assert conn.run(["true"]).ok
    finally:
        conn.close()
    return accepted


def run_through_jump_host(device: Sshd, jump: Sshd, keys: Path, tmp_path: Path, known_hosts: Path) -> None:
    # The jump host is "localhost": one with the device's own HostName would count as no jump host at all.
    config = write(
        tmp_path / "ssh_config",
        f"Host device\n  HostName 127.0.0.1\n  Port {device.port}\n  User root\n"
        f"  ProxyJump root@localhost:{jump.port}\n"
        f"Host *\n  IdentityFile {keys / 'client'}\n  IdentitiesOnly yes\n",
    )
    conn = open_connection(Target(host="device"), known_hosts=known_hosts, ssh_config_file=config)
    try:
        assert conn.run(["true"]).ok
    finally:
        conn.close()


def test_unknown_host_key_is_refused(server: Sshd, keys: Path, known_hosts: Path) -> None:
    with pytest.raises(UnknownHostKey) as info:
        run_true(server, keys, known_hosts)
    message = str(info.value)
    assert message.startswith(f"The device {server.name} is not in {known_hosts}")
    assert ssh_keygen_fingerprint(Path(f"{server.host_keys[0]}.pub")) in message
    assert "--accept-new-host-key" in message
    assert not known_hosts.exists()


def test_accepted_host_key_is_recorded_and_then_known(server: Sshd, keys: Path, known_hosts: Path) -> None:
    accepted = run_true(server, keys, known_hosts, accept=True)
    assert accepted == [(server.name, ssh_keygen_fingerprint(Path(f"{server.host_keys[0]}.pub")))]
    assert known_hosts.read_text() == server.known_hosts_line(0)
    assert run_true(server, keys, known_hosts) == []
    assert known_hosts.read_text() == server.known_hosts_line(0)


def test_changed_host_key_is_refused_even_with_accept_new(server: Sshd, keys: Path, known_hosts: Path) -> None:
    old = f"{server.name} {public(keys / 'stranger')}\n"
    write(known_hosts, old)
    for accept in (False, True):
        with pytest.raises(HostKeyChanged) as info:
            run_true(server, keys, known_hosts, accept=accept)
        message = str(info.value)
        assert ssh_keygen_fingerprint(keys / "stranger.pub") in message
        assert ssh_keygen_fingerprint(Path(f"{server.host_keys[0]}.pub")) in message
        assert f"`ssh-keygen -f {known_hosts} -R '{server.name}'`" in message
        assert "the device" in message and "--accept-new-host-key" in message
    assert known_hosts.read_text() == old


def test_revoked_host_key_is_refused(server: Sshd, keys: Path, known_hosts: Path) -> None:
    write(known_hosts, server.known_hosts_line(0) + f"@revoked * {server.public_key(0)}\n")
    with pytest.raises(HostKeyRevoked) as info:
        run_true(server, keys, known_hosts, accept=True)
    assert "@revoked" in str(info.value)
    assert ssh_keygen_fingerprint(Path(f"{server.host_keys[0]}.pub")) in str(info.value)


def test_host_known_only_with_another_type_counts_as_changed(server: Sshd, keys: Path, known_hosts: Path) -> None:
    write(known_hosts, f"{server.name} {public(keys / 'stranger_rsa')}\n")
    with pytest.raises(HostKeyChanged) as info:
        run_true(server, keys, known_hosts, accept=True)
    assert ssh_keygen_fingerprint(keys / "stranger_rsa.pub") in str(info.value)
    assert ssh_keygen_fingerprint(Path(f"{server.host_keys[0]}.pub")) in str(info.value)


def test_known_type_is_asked_for_first(server: Sshd, keys: Path, known_hosts: Path) -> None:
    # Only the server's ecdsa key is known: paramiko alone would ask for ed25519 and call it changed.
    write(known_hosts, server.known_hosts_line(1))
    assert run_true(server, keys, known_hosts) == []


def test_any_of_several_keys_for_the_host_is_accepted(server: Sshd, keys: Path, known_hosts: Path) -> None:
    write(
        known_hosts,
        f"{server.name} {public(keys / 'stranger')}\n"
        f"[127.0.0.1]:1 {server.public_key(0)}\n"
        f"{server.name} {server.public_key(0)}\n",
    )
    assert run_true(server, keys, known_hosts) == []


def test_hashed_entry_is_found(server: Sshd, keys: Path, known_hosts: Path) -> None:
    write(known_hosts, server.known_hosts_line(0))
    subprocess.run(["ssh-keygen", "-H", "-f", str(known_hosts)], check=True, capture_output=True)
    assert "127.0.0.1" not in known_hosts.read_text()
    assert run_true(server, keys, known_hosts) == []


def test_non_default_port_needs_the_bracketed_name(server: Sshd, keys: Path, known_hosts: Path) -> None:
    write(known_hosts, f"127.0.0.1 {server.public_key(0)}\n")
    with pytest.raises(UnknownHostKey):
        run_true(server, keys, known_hosts)
    write(known_hosts, f"[127.0.0.1]:* {server.public_key(0)}\n")
    assert run_true(server, keys, known_hosts) == []


def test_host_certificate_from_a_trusted_ca_is_accepted(cert_server: Sshd, keys: Path, known_hosts: Path) -> None:
    write(known_hosts, ca_line(keys))
    assert run_true(cert_server, keys, known_hosts) == []
    assert known_hosts.read_text() == ca_line(keys)


def test_host_certificate_from_another_ca_is_not_trusted(cert_server: Sshd, keys: Path, known_hosts: Path) -> None:
    write(known_hosts, ca_line(keys, "other_ca"))
    with pytest.raises(UnknownHostKey) as info:
        run_true(cert_server, keys, known_hosts)
    assert "host certificate is signed by CA" in str(info.value)


def test_host_certificate_for_another_name_is_refused(keys: Path, tmp_path: Path, known_hosts: Path) -> None:
    with running_sshd(tmp_path / "sshd", keys / "client", certificate_ca=keys / "ca", principals="jetson") as sshd:
        write(known_hosts, ca_line(keys))
        with pytest.raises(UnknownHostKey) as info:
            run_true(sshd, keys, known_hosts)
    assert "host certificate is for jetson, not 127.0.0.1" in str(info.value)


def test_jump_host_key_is_checked_as_its_own_hop(
    server: Sshd, cert_server: Sshd, keys: Path, tmp_path: Path, known_hosts: Path
) -> None:
    device, jump, jump_name = cert_server, server, f"[localhost]:{server.port}"
    write(known_hosts, device.known_hosts_line(0))
    with pytest.raises(UnknownHostKey, match=rf"^The jump host \[localhost\]:{jump.port} is not in"):
        run_through_jump_host(device, jump, keys, tmp_path, known_hosts)
    write(known_hosts, device.known_hosts_line(0) + f"{jump_name} {public(keys / 'stranger')}\n")
    with pytest.raises(HostKeyChanged) as info:
        run_through_jump_host(device, jump, keys, tmp_path, known_hosts)
    message = str(info.value)
    assert message.startswith(f"The host key of the jump host {jump_name} changed")
    assert f"-R '{jump_name}'" in message and device.name not in message
    write(known_hosts, device.known_hosts_line(0) + f"{jump_name} {jump.public_key(0)}\n")
    run_through_jump_host(device, jump, keys, tmp_path, known_hosts)
    # The device behind it is checked too.
    write(known_hosts, f"{device.name} {public(keys / 'stranger')}\n{jump_name} {jump.public_key(0)}\n")
    with pytest.raises(HostKeyChanged, match=rf"^The host key of the device \[127.0.0.1\]:{device.port} changed"):
        run_through_jump_host(device, jump, keys, tmp_path, known_hosts)
