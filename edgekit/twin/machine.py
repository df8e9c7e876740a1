"""Boot, inspect and tear down twins; several can run at once, each sshd on its own port.

A twin shares the host's network namespace, and its sshd listens on 127.0.0.1 only, so
nothing leaves loopback. Its state lives in ``STATE_ROOT/<name>``: the overlay's upper
layer, the mount point, the client key and the twin's pinned host key.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from edgekit.errors import TwinError
from edgekit.profiles import Profile
from edgekit.twin.rootfs import TWIN_USER, Log, ensure_rootfs

STATE_ROOT = Path(os.environ.get("EDGEKIT_TWIN_STATE", "/var/lib/edgekit-twin"))
FIRST_PORT = 2222
BOOT_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TwinInfo:
    name: str
    profile: str
    port: int
    pid: int
    user: str
    identity: str
    known_hosts: str
    host_key_fingerprint: str
    running: bool = True

    @property
    def target(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"


def _state_dir(name: str) -> Path:
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise TwinError(f"The twin name {name!r} may hold only letters, digits, - and _.")
    return STATE_ROOT / name


def check_host() -> None:
    if os.geteuid() != 0:
        raise TwinError("The twin needs root (it mounts an overlay and boots a container); run it with sudo.")
    for tool, package in (("systemd-nspawn", "systemd-container"), ("nsenter", "util-linux")):
        if shutil.which(tool) is None:
            raise TwinError(f"{tool} is not installed; run `apt-get install {package}` (scripts/demo does).")


def twin_up(name: str, profile: Profile, port: int | None, log: Log) -> TwinInfo:
    """Boot the twin ``name`` (or return it if it already runs) and wait until sshd answers."""
    check_host()
    current = twin_status(name)
    if current is not None and current.running:
        return current
    twin_down(name)
    base = ensure_rootfs(log)
    state = _state_dir(name)
    root = state / "root"
    for sub in ("upper", "work", "root", "firmware/devicetree/base"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    _mount_overlay(base, state)
    try:
        fingerprint = _personalise(root, state, name, profile, port)
        log(f"booting twin {name!r} ({profile.name}) with sshd on 127.0.0.1:{port}")
        nspawn = _boot(name, state)
        pid = nspawn.pid
        info = TwinInfo(
            name=name,
            profile=profile.name,
            port=port,
            pid=pid,
            user=TWIN_USER,
            identity=str(state / "id_ed25519"),
            known_hosts=str(state / "known_hosts"),
            host_key_fingerprint=fingerprint,
        )
        (state / "twin.json").write_text(json.dumps(asdict(info), indent=2))
        _wait_until_booted(info, state, nspawn)
    except BaseException:
        twin_down(name)
        raise
    return info


def twin_status(name: str) -> TwinInfo | None:
    """The twin's record, with ``running`` telling whether its container is alive."""
    record = _state_dir(name) / "twin.json"
    if not record.is_file():
        return None
    data = json.loads(record.read_text())
    data["running"] = _is_nspawn(data["pid"])
    return TwinInfo(**data)


def list_twins() -> list[TwinInfo]:
    if not STATE_ROOT.is_dir():
        return []
    found = (twin_status(path.name) for path in sorted(STATE_ROOT.iterdir()))
    return [info for info in found if info is not None]


def twin_down(name: str, keep: bool = False) -> bool:
    """Power the twin off (systemd shuts down cleanly), unmount it, and forget its state."""
    state = _state_dir(name)
    info = twin_status(name)
    stopped = False
    if info is not None and info.running:
        os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _is_nspawn(info.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _is_nspawn(info.pid):
            os.kill(info.pid, signal.SIGKILL)
        stopped = True
    if os.path.ismount(state / "root"):
        subprocess.run(["umount", str(state / "root")], check=True)
    if not keep and state.exists():
        shutil.rmtree(state)
    return stopped


def twin_power_off(name: str) -> bool:
    """Cut the twin's power: SIGKILL to its init and to systemd-nspawn, no shutdown at all.

    Killing the init of the container's PID namespace makes the kernel kill every process in
    it at once, so no unit stops, nothing is fsynced, no journal is flushed and no link or file
    is touched after the kill: what the device's userspace and systemd had not finished is cut
    short at an arbitrary point, as by a crash or a pulled plug. It does NOT simulate losing
    writes that were not yet on the disk: the twin's files live in this host's page cache,
    which survives the kill, so a write that returned before the kill is kept even without
    fsync. (A lost-write test needs a block device that drops unsynced writes, e.g. dm-flakey
    or dm-log-writes, which the twin does not use.) The state (overlay, keys, port, twin.json)
    is kept, so ``twin_boot`` boots the same disk again. True if the twin was running.
    """
    info = twin_status(name)
    if info is None or not info.running:
        return False
    try:
        leader: int | None = _container_leader(info.pid)
    except (OSError, TwinError):
        leader = None
    if leader is not None:
        _kill(leader)
    _kill(info.pid)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and (_alive(info.pid) or (leader is not None and _alive(leader))):
        time.sleep(0.05)
    if _alive(info.pid) or (leader is not None and _alive(leader)):
        raise TwinError(f"The twin {name!r} still runs {STOP_TIMEOUT_S:.0f} s after SIGKILL (pid {info.pid}).")
    # The dead pid could be reused by another twin's nspawn, which would then pass for this one.
    (_state_dir(name) / "twin.json").write_text(json.dumps(asdict(replace(info, pid=0, running=False)), indent=2))
    return True


def twin_boot(name: str, log: Log = lambda line: None) -> TwinInfo:
    """Boot a twin that is powered off (``twin_power_off``, or its host rebooted) on the same disk.

    Unlike ``twin_up``, which starts over from a fresh overlay, this keeps everything the
    twin wrote, its keys and its sshd port: a power cycle. The overlay is mounted again if it
    is not. There is no machine registration to clean up (``--register=no``); the port is
    still reserved for the twin (other twins skip the ports their records name), but a
    process outside edgekit may have taken it meanwhile, which is an error here.
    """
    check_host()
    info = twin_status(name)
    if info is None:
        raise TwinError(f"There is no twin {name!r} to boot again; start one with `edgekit twin up --name {name}`.")
    if info.running:
        return info
    state = _state_dir(name)
    if not os.path.ismount(state / "root"):
        _mount_overlay(ensure_rootfs(log), state)
    if not _port_free(info.port):
        raise TwinError(f"Port {info.port} of the twin {name!r} is taken on 127.0.0.1; free it to boot the twin.")
    log(f"booting twin {name!r} again with sshd on 127.0.0.1:{info.port}")
    nspawn = _boot(name, state, append=True)
    info = replace(info, pid=nspawn.pid, running=True)
    (state / "twin.json").write_text(json.dumps(asdict(info), indent=2))
    try:
        _wait_until_booted(info, state, nspawn)
    except BaseException:
        # Leave the disk for a look, but nothing running.
        twin_power_off(name)
        raise
    return info


def twin_exec(name: str, argv: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run a command inside the twin's namespaces, as root, bypassing SSH."""
    info = twin_status(name)
    if info is None or not info.running:
        raise TwinError(f"The twin {name!r} is not running; start it with `edgekit twin up --name {name}`.")
    leader = _container_leader(info.pid)
    return subprocess.run(
        ["nsenter", "-t", str(leader), "-a", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _mount_overlay(base: Path, state: Path) -> None:
    options = f"lowerdir={base},upperdir={state / 'upper'},workdir={state / 'work'}"
    done = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(state / "root")],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise TwinError(f"Mounting the twin's overlay failed ({done.stderr.strip()}); the kernel needs overlayfs.")


def twin_identity(profile: Profile) -> tuple[str, str, list[str]]:
    """/etc/nv_tegra_release, device-tree model and compatible of a device of ``profile``.

    Shaped like a real L4T device's, so detection reads the twin exactly as a Jetson.
    """
    major, _, revision = profile.software.l4t[-1].partition(".")
    release = f"# R{major} (release), REVISION: {revision}, GCID: 0, BOARD: generic, EABI: aarch64, DATE: edgekit twin"
    compatible = [profile.module.compatible[0], f"nvidia,{profile.module.soc}"]
    return release, f"{profile.module.name} (edgekit twin, profile {profile.name})", compatible


def _personalise(root: Path, state: Path, name: str, profile: Profile, port: int) -> str:
    """Write what makes this twin itself: identity, hostname, sshd port, keys. Returns the host key fingerprint."""
    release, model, compatible = twin_identity(profile)
    (root / "etc/nv_tegra_release").write_text(release + "\n")
    base = state / "firmware/devicetree/base"
    (base / "model").write_bytes(model.encode() + b"\0")
    (base / "compatible").write_bytes(b"".join(entry.encode() + b"\0" for entry in compatible))
    (root / "etc/hostname").write_text(f"{name}\n")
    # sudo resolves its own host name and complains on every call when it cannot.
    (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {name}\n::1 localhost\n")
    (root / "etc/ssh/sshd_config.d/20-edgekit-twin-port.conf").write_text(f"Port {port}\nListenAddress 127.0.0.1\n")
    host_key = root / "etc/ssh/ssh_host_ed25519_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"twin-{name}", "-f", str(host_key)],
        check=True,
    )
    client_key = state / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"edgekit-twin-{name}", "-f", str(client_key)],
        check=True,
    )
    ssh_dir = root / "home" / TWIN_USER / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(Path(f"{client_key}.pub").read_text())
    uid, gid = _user_ids(root, TWIN_USER)
    for path in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, uid, gid)
    # This machine made the key a moment ago, so pinning it here is first-hand knowledge,
    # not trust on first use; `twin ssh` then checks it strictly.
    public = Path(f"{host_key}.pub").read_text().split()
    (state / "known_hosts").write_text(f"[127.0.0.1]:{port} {public[0]} {public[1]}\n")
    printed = subprocess.run(["ssh-keygen", "-l", "-f", f"{host_key}.pub"], capture_output=True, text=True, check=True)
    return printed.stdout.split()[1]


def _user_ids(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise TwinError(f"The twin rootfs has no user {user!r}; delete the rootfs cache to rebuild it.")


def _boot(name: str, state: Path, append: bool = False) -> subprocess.Popen[bytes]:
    # A boot after a power off keeps the console of the boots before it.
    console = open(state / "console.log", "ab" if append else "wb")
    process = subprocess.Popen(
        [
            "systemd-nspawn",
            "--directory",
            str(state / "root"),
            "--boot",
            # The host may run no systemd at all (CI containers): no machined, no scope.
            "--register=no",
            "--keep-unit",
            f"--machine=edgekit-{name}",
            "--link-journal=no",
            "--console=pipe",
            f"--bind-ro={state / 'firmware'}:/sys/firmware",
        ],
        stdin=subprocess.DEVNULL,
        stdout=console,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    console.close()
    return process


def _wait_until_booted(info: TwinInfo, state: Path, nspawn: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while time.monotonic() < deadline:
        # Our own child: poll() knows its exit status, which /proc would lose once reaped.
        status = nspawn.poll()
        if status is not None:
            tail = (state / "console.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise TwinError(
                f"The twin's container exited with status {status} while booting ({' / '.join(tail) or 'no output'})."
            )
        if _ssh_banner(info.port):
            done = twin_exec(info.name, ["systemctl", "is-system-running", "--wait"], timeout=BOOT_TIMEOUT_S)
            if done.stdout.strip() in ("running", "degraded"):
                return
        time.sleep(0.3)
    raise TwinError(
        f"The twin {info.name!r} did not finish booting within {BOOT_TIMEOUT_S:.0f} s; see {state}/console.log."
    )


def _ssh_banner(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def _port_free(port: int) -> bool:
    """No one listens on ``port``; SO_REUSEADDR as sshd sets it, so connections of the killed
    sshd that linger in TIME_WAIT do not count."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    taken = {info.port for info in list_twins()}
    for port in range(FIRST_PORT, FIRST_PORT + 200):
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise TwinError("No free port between 2222 and 2421 on 127.0.0.1; stop some twins with `edgekit twin down`.")


def _is_nspawn(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"systemd-nspawn")
    except OSError:
        return False


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a killed child not reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _container_leader(nspawn_pid: int) -> int:
    children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text().split()
    if not children:
        raise TwinError("The twin's container has no init process yet; wait for it to boot.")
    return int(children[0])
