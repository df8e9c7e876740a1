"""The twin's base rootfs: debootstrapped once from this machine's own apt sources, then cached.

Every twin boots an overlay on top of the cached base, so a new twin costs seconds and a
missing cache costs one debootstrap (a few minutes).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from edgekit.errors import TwinError

# What JetPack gives a Python service: python3, numpy and OpenCV from the distribution,
# plus what edgekit needs from any Linux device: systemd, sshd, sudo, venv; rsync, as
# JetPack's Ubuntu has it, so scripts/bench-transfer can measure edgekit against it.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "sudo",
    "python3",
    "python3-venv",
    "python3-numpy",
    "python3-opencv",
    "iproute2",
    "procps",
    "rsync",
)
TWIN_USER = "jetson"
# Bump when the set-up below changes, so cached rootfs built the old way are not reused.
SETUP_VERSION = "1"
CACHE_ROOT = Path(os.environ.get("EDGEKIT_TWIN_CACHE", "/var/cache/edgekit/twin"))

Log = Callable[[str], None]


def host_suite() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise TwinError("This machine's /etc/os-release names no release codename; the twin needs a Debian host.")


def apt_mirror(suite: str, etc_apt: Path = Path("/etc/apt")) -> str | None:
    """The machine's own Debian mirror for ``suite``, from deb822 or one-line sources."""
    for path in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        for block in re.split(r"\n\s*\n", path.read_text()):
            fields = dict(_deb822_fields(block))
            if "deb" in fields.get("Types", "").split() and suite in fields.get("Suites", "").split():
                return fields.get("URIs", "").split()[0] if fields.get("URIs") else None
    lists = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list"))]
    for path in lists:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                return words[1]
    return None


def _deb822_fields(block: str) -> list[tuple[str, str]]:
    fields = []
    for line in block.splitlines():
        if line.startswith("#") or not line.strip() or line[0].isspace():
            continue
        key, _, value = line.partition(":")
        fields.append((key.strip(), value.strip()))
    return fields


def rootfs_key(suite: str) -> str:
    digest = hashlib.sha256(" ".join((suite, SETUP_VERSION, *PACKAGES)).encode()).hexdigest()
    return f"{suite}-{digest[:12]}"


def ensure_rootfs(log: Log, cache_root: Path = CACHE_ROOT) -> Path:
    """Return the cached base rootfs, building it when absent."""
    suite = host_suite()
    target = cache_root / rootfs_key(suite)
    if (target / ".complete").exists():
        return target / "rootfs"
    if shutil.which("debootstrap") is None:
        raise TwinError("debootstrap is not installed; run `apt-get install debootstrap` (scripts/demo does).")
    building = target.with_name(target.name + ".building")
    _unmount_under(building)
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    mirror = apt_mirror(suite)
    command = [
        "debootstrap",
        "--variant=minbase",
        "--include=" + ",".join(PACKAGES),
        suite,
        str(building / "rootfs"),
    ] + ([mirror] if mirror else [])
    log(f"building the twin rootfs ({suite}, once; cached in {target})")
    _run_logged(command, log)
    _configure(building / "rootfs")
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)
    (target / ".complete").touch()
    return target / "rootfs"


def _unmount_under(path: Path) -> None:
    # A debootstrap that failed leaves its /proc mounted in the rootfs, which rmtree cannot remove.
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{path}/")), reverse=True):
        subprocess.run(["umount", "--lazy", mount], check=False, capture_output=True)


def _run_logged(command: list[str], log: Log) -> None:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert process.stdout is not None
    tail: list[str] = []
    for line in process.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        log(line.rstrip())
    if process.wait() != 0:
        raise TwinError(
            f"`{' '.join(command[:3])} ...` failed ({tail[-1] if tail else 'no output'}); "
            "check that this machine reaches its Debian mirror."
        )


def _configure(root: Path) -> None:
    def chroot(*argv: str) -> None:
        subprocess.run(["chroot", str(root), *argv], check=True, capture_output=True)

    chroot("useradd", "--create-home", "--shell", "/bin/bash", "--groups", "sudo,video", TWIN_USER)
    sudoers = root / "etc/sudoers.d/edgekit-twin"
    sudoers.write_text(f"{TWIN_USER} ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
    # Each twin gets its own host keys at first boot; a shared key would train users to
    # ignore host key changes.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/ssh/sshd_config.d/10-edgekit-twin.conf").write_text(
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n"
    )
    # Timers that reach for the network have nothing to do on an offline device.
    chroot("systemctl", "mask", "apt-daily.timer", "apt-daily-upgrade.timer")
    (root / "etc/machine-id").write_text("")
