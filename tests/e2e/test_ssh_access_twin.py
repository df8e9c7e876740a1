"""How edgekit gets into a device, against real sshd: jump hosts (one and two hops, each hop's key
checked), ProxyCommand, ssh-agent and IdentitiesOnly, password login only when asked, and sudo
with a password (given once, fed on stdin), without one, and a wrong one. Every output and the
device's journal are scanned for the passwords at the end.

The twin gets a second user, ``field``, whose sudo asks for a password and who may log in with
one; the jump hosts are sshd on other loopback ports (tests/sshd.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pty
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd import Sshd, make_key, running_sshd
from test_provision_twin import edgekit, provision_args

from edgekit.errors import AuthFailed, HostKeyChanged
from edgekit.secret import Secret
from edgekit.ssh.connection import open_connection
from edgekit.ssh.target import Target, parse_target
from edgekit.twin import TwinInfo, twin_exec

pytestmark = pytest.mark.e2e
SSH_PASSWORD = "ssh-Pw-4f1c9e"
SUDO_PASSWORD = "sudo-Pw-b7d02a"
# Everything these tests printed or read back, for the scan at the end.
OUTPUTS: list[str] = []


def as_root(twin: TwinInfo, script: str) -> str:
    done = twin_exec(twin.name, ["sh", "-c", script])
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def access_twin(plain_access_twin: TwinInfo) -> TwinInfo:
    """The twin with ``field``, whose sudo asks for a password, and ``viewer``, who may log in with one."""
    as_root(
        plain_access_twin,
        f"""set -e
        useradd --create-home --shell /bin/bash field
        printf '%s\\n' 'field:{SUDO_PASSWORD}' | chpasswd
        echo 'field ALL=(ALL) ALL' > /etc/sudoers.d/field && chmod 0440 /etc/sudoers.d/field
        echo 'field ALL=(ALL) NOPASSWD: /usr/bin/timeout' >> /etc/sudoers.d/field
        install -d -m 0700 -o field -g field /home/field/.ssh
        install -m 0600 -o field -g field /home/jetson/.ssh/authorized_keys /home/field/.ssh/
        useradd --create-home --shell /bin/bash viewer
        printf '%s\\n' 'viewer:{SSH_PASSWORD}' | chpasswd
        printf 'Match User viewer\\n  PasswordAuthentication yes\\n' > /etc/ssh/sshd_config.d/20-viewer.conf
        systemctl reload ssh
        """,
    )
    return plain_access_twin


@pytest.fixture(scope="module")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_key(tmp_path_factory.mktemp("client") / "id_ed25519")


@contextlib.contextmanager
def jump_hosts(directory: Path, key: Path, *targets: int) -> Iterator[list[Sshd]]:
    """One sshd per port in ``targets``, each allowed to forward only to that port, so a chain
    dialled in the wrong order cannot get through."""
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(running_sshd(directory / f"jump{i}", key, config=f"PermitOpen 127.0.0.1:{port}"))
            for i, port in enumerate(targets)
        ]


def device_known_hosts(twin: TwinInfo, path: Path, *jumps: Sshd) -> Path:
    path.write_text(Path(twin.known_hosts).read_text() + "".join(jump.known_hosts_line() for jump in jumps))
    return path


def ssh_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def hop_block(name: str, jump: Sshd, key: Path) -> str:
    return f"Host {name}\n  HostName 127.0.0.1\n  Port {jump.port}\n  User root\n  IdentityFile {key}\n"


def device_block(twin: TwinInfo, extra: str = "") -> str:
    return (
        f"Host device\n  HostName 127.0.0.1\n  Port {twin.port}\n  User jetson\n  IdentityFile {twin.identity}\n{extra}"
    )


def hostname_via(config: Path, known_hosts: Path) -> str:
    conn = open_connection(parse_target("device"), known_hosts=known_hosts, ssh_config_file=config)
    try:
        return conn.run(["hostname"]).stdout.strip()
    finally:
        conn.close()


def test_proxyjump_through_one_and_two_hops_in_openssh_order(
    access_twin: TwinInfo, client_key: Path, tmp_path: Path
) -> None:
    with jump_hosts(tmp_path, client_key, access_twin.port) as [last]:
        config = ssh_config(
            tmp_path / "one", hop_block("last", last, client_key) + device_block(access_twin, "  ProxyJump last\n")
        )
        known = device_known_hosts(access_twin, tmp_path / "kh1", last)
        assert hostname_via(config, known) == access_twin.name
        # The first hop may only forward to the second, the second only to the device.
        with jump_hosts(tmp_path / "two", client_key, last.port) as [first]:
            config = ssh_config(
                tmp_path / "two.conf",
                hop_block("first", first, client_key)
                + hop_block("last", last, client_key)
                + device_block(access_twin, "  ProxyJump first,last\n"),
            )
            known = device_known_hosts(access_twin, tmp_path / "kh2", first, last)
            assert hostname_via(config, known) == access_twin.name


def test_a_changed_jump_host_key_names_the_jump_host_and_its_own_known_hosts_line(
    access_twin: TwinInfo, client_key: Path, tmp_path: Path
) -> None:
    with jump_hosts(tmp_path, client_key, access_twin.port) as [jump]:
        config = ssh_config(
            tmp_path / "conf", hop_block("jump", jump, client_key) + device_block(access_twin, "  ProxyJump jump\n")
        )
        stale = make_key(tmp_path / "stale_host_key")
        stale_line = f"{jump.name} {' '.join(Path(f'{stale}.pub').read_text().split()[:2])}\n"
        known = tmp_path / "known_hosts"
        known.write_text(Path(access_twin.known_hosts).read_text() + stale_line)
        with pytest.raises(HostKeyChanged) as raised:
            hostname_via(config, known)
    message = str(raised.value)
    OUTPUTS.append(message)
    assert "jump host" in message
    assert f"-R '{jump.name}'" in message
    assert f"[127.0.0.1]:{access_twin.port}" not in message


def test_proxycommand_carries_the_connection(access_twin: TwinInfo, client_key: Path, tmp_path: Path) -> None:
    with jump_hosts(tmp_path, client_key, access_twin.port) as [jump]:
        jump_known = device_known_hosts(access_twin, tmp_path / "jump_known", jump)
        command = (
            f"ssh -i {client_key} -o IdentitiesOnly=yes -o UserKnownHostsFile={jump_known} "
            f"-o StrictHostKeyChecking=yes -p {jump.port} -W %h:%p root@127.0.0.1"
        )
        config = ssh_config(tmp_path / "conf", device_block(access_twin, f"  ProxyCommand {command}\n"))
        assert hostname_via(config, Path(access_twin.known_hosts)) == access_twin.name


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    sock = tmp_path / "agent.sock"
    process = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        # No default key under ~/.ssh may get in instead of the agent's.
        monkeypatch.setenv("HOME", str(tmp_path))
        yield sock
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_keys_come_from_ssh_agent_unless_identities_only(access_twin: TwinInfo, agent: Path, tmp_path: Path) -> None:
    subprocess.run(["ssh-add", "-q", access_twin.identity], check=True, env=dict(os.environ))
    block = f"Host device\n  HostName 127.0.0.1\n  Port {access_twin.port}\n  User jetson\n"
    known = Path(access_twin.known_hosts)
    assert hostname_via(ssh_config(tmp_path / "agent.conf", block), known) == access_twin.name
    # The agent holds the device's key; IdentitiesOnly leaves only a key the device does not know.
    stranger = make_key(tmp_path / "stranger")
    only = ssh_config(tmp_path / "only.conf", block + f"  IdentitiesOnly yes\n  IdentityFile {stranger}\n")
    with pytest.raises(AuthFailed, match="refused our SSH keys"):
        hostname_via(only, known)


def test_connect_timeout_and_server_alive_interval_come_from_ssh_config(access_twin: TwinInfo, tmp_path: Path) -> None:
    config = ssh_config(tmp_path / "conf", device_block(access_twin, "  ConnectTimeout 7\n  ServerAliveInterval 9\n"))
    conn = open_connection(parse_target("device"), known_hosts=Path(access_twin.known_hosts), ssh_config_file=config)
    try:
        fabric_conn = conn._conn  # noqa: SLF001 - what Fabric was told is the point here
        assert fabric_conn.connect_timeout == 7
        assert fabric_conn.transport.packetizer._Packetizer__keepalive_interval == 9  # noqa: SLF001
        # ServerAliveCountMax (3 by default) unanswered intervals close a link that went silent.
        sock = fabric_conn.transport.sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 9 * 3 * 1000
    finally:
        conn.close()


def test_password_login_is_tried_only_when_a_password_is_given(
    access_twin: TwinInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    target = Target("127.0.0.1", "viewer", access_twin.port)
    known = Path(access_twin.known_hosts)
    with pytest.raises(AuthFailed, match="no SSH key to offer .* log in with --ask-password") as raised:
        open_connection(target, known_hosts=known, use_ssh_config=False)
    OUTPUTS.append(str(raised.value))
    with pytest.raises(AuthFailed, match="refused the password") as raised:
        open_connection(target, known_hosts=known, use_ssh_config=False, password=Secret("not-it"))
    OUTPUTS.append(str(raised.value))
    conn = open_connection(target, known_hosts=known, use_ssh_config=False, password=Secret(SSH_PASSWORD))
    try:
        assert conn.run(["id", "-un"]).stdout.strip() == "viewer"
    finally:
        conn.close()


def field(twin: TwinInfo) -> TwinInfo:
    return dataclasses.replace(twin, user="field")


def edgekit_logged(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    done = edgekit(*args, home=home)
    OUTPUTS.extend((done.stdout, done.stderr))
    return done


def device_state(twin: TwinInfo) -> str:
    return as_root(twin, "ls -la /var/lib/edgekit 2>&1; ls /etc/systemd/system | grep edgekit || true")


def test_sudo_without_its_password_or_with_a_wrong_one_stops_before_anything_changes(
    access_twin: TwinInfo, tmp_path: Path
) -> None:
    before = device_state(access_twin)
    done = edgekit_logged(*provision_args(field(access_twin), Path(access_twin.known_hosts)), home=tmp_path)
    assert done.returncode == 5, done.stderr
    assert "asks for a sudo password; give it with --ask-sudo-password or --sudo-password-file" in done.stderr
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    done = edgekit_logged(
        *provision_args(field(access_twin), Path(access_twin.known_hosts), "--sudo-password-file", str(wrong)),
        home=tmp_path,
    )
    assert done.returncode == 4, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("AuthFailed: sudo on field@127.0.0.1") and "refused the password" in last, done.stderr
    assert "Traceback" not in done.stderr
    assert device_state(access_twin) == before


def test_ask_sudo_password_prompts_once_on_a_terminal_and_refuses_without_one(
    access_twin: TwinInfo, tmp_path: Path
) -> None:
    args = [
        "facts",
        field(access_twin).target,
        "-i",
        access_twin.identity,
        "--known-hosts",
        access_twin.known_hosts,
        "--no-ssh-config",
        "--ask-sudo-password",
        "--json",
    ]
    done = edgekit_logged(*args, home=tmp_path)
    assert done.returncode == 2 and "--ask-sudo-password needs a terminal" in done.stderr, done.stderr
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-c", "from edgekit.cli import main; main()", *args])
    seen = b""
    prompts = 0
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if seen.count(b"sudo password for") > prompts:
            prompts += 1
            os.write(fd, SUDO_PASSWORD.encode() + b"\n")
    _, status = os.waitpid(pid, 0)
    text = seen.decode(errors="replace")
    OUTPUTS.append(text)
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert prompts == 1, text
    assert '"device"' in text


def test_a_command_sudo_lets_through_without_asking_never_sees_the_password(access_twin: TwinInfo) -> None:
    conn = open_connection(
        Target("127.0.0.1", "field", access_twin.port),
        known_hosts=Path(access_twin.known_hosts),
        identity=Path(access_twin.identity),
        use_ssh_config=False,
        sudo_password=Secret(SUDO_PASSWORD),
    )
    try:
        # field's sudo asks for a password, except for `timeout`: cat echoes whatever its stdin holds.
        echoed = conn.run(["timeout", "2", "cat"], sudo=True, check=False)
        OUTPUTS.append(echoed.stdout + echoed.stderr)
        assert echoed.stdout == ""
        assert conn.run(["id", "-u"], sudo=True).stdout.strip() == "0"
    finally:
        conn.close()


def test_provision_with_a_sudo_password_from_a_file(access_twin: TwinInfo, tmp_path: Path) -> None:
    password_file = tmp_path / "sudo-password"
    password_file.write_text(SUDO_PASSWORD + "\n")
    args = provision_args(field(access_twin), Path(access_twin.known_hosts), "--sudo-password-file", str(password_file))
    done = edgekit_logged(*args, "--trial-results", "5", "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert as_root(access_twin, "systemctl is-active edgekit-camera").strip() == "active"
    OUTPUTS.append(as_root(access_twin, "journalctl --no-pager -o cat; cat /var/log/auth.log 2>/dev/null || true"))


def test_no_password_in_any_output_or_the_device_journal() -> None:
    # Runs last in this module: the scan covers every command above.
    assert OUTPUTS, "run this test with the rest of its module"
    for text in OUTPUTS:
        assert SUDO_PASSWORD not in text and SSH_PASSWORD not in text
