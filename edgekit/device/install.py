"""Installing on the device: the runtime venv, a release, the service files, activation.

Each step is idempotent (re-running it with the same inputs changes nothing) and leaves
nothing half-made: work happens in ``*.tmp`` paths that are renamed into place at the end.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from edgekit.data import data_dir
from edgekit.device.blobs import Blob
from edgekit.device.layout import (
    BLOBS_DIR,
    CONFIG_FILE,
    CURRENT_LINK,
    RELEASES_DIR,
    SERVICE_USER,
    UNIT_FILE,
    UNIT_NAME,
    VENV_LINK,
    VENVS_DIR,
    release_dir,
)
from edgekit.ssh.seam import Connection
from edgekit.wheels import parse_pin, wheel_project

OVERLAY_DIR = data_dir("firmware_overlay")
UNIT_SOURCE = OVERLAY_DIR / "etc/systemd/system" / UNIT_NAME
GPU_DROPIN_SOURCE = OVERLAY_DIR / "etc/systemd/system" / f"{UNIT_NAME}.d" / "gpu-devices.conf"
GPU_DROPIN = f"{UNIT_FILE}.d/gpu-devices.conf"

_VENV = r"""
set -e
venvs="$1"; key="$2"; link="$3"; blobs="$4"; shift 4
if [ ! -f "$venvs/$key/.complete" ]; then
  rm -rf "$venvs/$key.tmp" && mkdir -p "$venvs/$key.tmp/wheels"
  reqs=""
  while [ $# -gt 0 ]; do ln -f "$blobs/$1" "$venvs/$key.tmp/wheels/$2"; reqs="$reqs $3"; shift 3; done
  python3 -m venv --system-site-packages "$venvs/$key.tmp/env"
  "$venvs/$key.tmp/env/bin/python" -m pip install --quiet --no-index --no-cache-dir \
      --find-links "$venvs/$key.tmp/wheels" $reqs
  rm -rf "$venvs/$key" && mv "$venvs/$key.tmp" "$venvs/$key" && touch "$venvs/$key/.complete"
  echo changed
fi
if [ "$(readlink "$link")" != "$venvs/$key/env" ]; then
  ln -sfn "$venvs/$key/env" "$link.tmp" && mv -T "$link.tmp" "$link" && echo changed
fi
"""

_RELEASE = r"""
set -e
dir="$1"; blobs="$2"; shift 2
[ -d "$dir" ] && exit 0
rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
while [ $# -gt 0 ]; do mkdir -p "$(dirname "$dir.tmp/$2")"; ln -f "$blobs/$1" "$dir.tmp/$2"; shift 2; done
mv "$dir.tmp" "$dir"
echo changed
"""

# The unprivileged user the build and the service run as.
_USER = r"""
set -e
user="$1"
if ! id -u "$user" >/dev/null 2>&1; then
  getent group video >/dev/null || groupadd --system video
  useradd --system --home-dir /var/cache/edgekit --no-create-home --shell /usr/sbin/nologin --groups video "$user"
  echo changed
fi
"""

# Unit, GPU drop-in ("-": none) and config; prints "changed" when anything differs.
_SYSTEM = r"""
set -e
blobs="$1"; unit_blob="$2"; unit="$3"; config_blob="$4"; config="$5"; dropin_blob="$6"; dropin="$7"
install -d -m 0755 "$(dirname "$config")"
if ! cmp -s "$blobs/$config_blob" "$config"; then
  install -m 0644 "$blobs/$config_blob" "$config.tmp" && mv -f "$config.tmp" "$config" && echo changed
fi
reload=""
if ! cmp -s "$blobs/$unit_blob" "$unit"; then
  install -m 0644 "$blobs/$unit_blob" "$unit.tmp" && mv -f "$unit.tmp" "$unit" && reload=1
fi
if [ "$dropin_blob" = "-" ]; then
  if [ -e "$dropin" ]; then rm -f "$dropin" && reload=1; fi
elif ! cmp -s "$blobs/$dropin_blob" "$dropin"; then
  install -d -m 0755 "$(dirname "$dropin")"
  install -m 0644 "$blobs/$dropin_blob" "$dropin.tmp" && mv -f "$dropin.tmp" "$dropin" && reload=1
fi
if [ -n "$reload" ]; then
  systemctl daemon-reload
  echo changed
fi
systemctl enable --quiet "$(basename "$unit")"
"""


def _changed(conn: Connection, script: str, args: Sequence[str], timeout: float = 600.0) -> bool:
    result = conn.run(["sh", "-c", script, "sh", *args], sudo=True, timeout=timeout)
    return "changed" in result.stdout.split()


def venv_key(python_version: str, wheels: Sequence[Blob]) -> str:
    text = python_version + "".join(sorted(b.digest for b in wheels))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def venv_env(python_version: str, wheels: Sequence[Blob]) -> str:
    """Where ``ensure_venv`` points the venv link for this Python and these wheels."""
    return f"{VENVS_DIR}/{venv_key(python_version, wheels)}/env"


def ensure_venv(conn: Connection, python_version: str, wheels: Sequence[Blob], requirements: Sequence[str]) -> bool:
    """A --system-site-packages venv with the runtime installed offline; ``venv`` points at it."""
    args = [VENVS_DIR, venv_key(python_version, wheels), VENV_LINK, BLOBS_DIR]
    pinned = {parse_pin(req)[0]: req for req in requirements}
    for wheel in wheels:
        args += [wheel.digest, wheel.local.name, pinned[wheel_project(wheel.local.name)[0]]]
    return _changed(conn, _VENV, args)


def release_id(files: Mapping[str, Blob]) -> str:
    listing = json.dumps({name: blob.digest for name, blob in files.items()}, sort_keys=True)
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def ensure_release(conn: Connection, rid: str, files: Mapping[str, Blob]) -> bool:
    """Lay out ``releases/<rid>`` as hard links to blobs, unless it is already there."""
    args = [release_dir(rid), BLOBS_DIR]
    for name, blob in sorted(files.items()):
        args += [blob.digest, name]
    return _changed(conn, _RELEASE, args)


def remove_release(conn: Connection, rid: str) -> None:
    conn.run(["rm", "-rf", "--", release_dir(rid)], sudo=True)


def ensure_service_user(conn: Connection) -> bool:
    return _changed(conn, _USER, [SERVICE_USER])


def install_system(conn: Connection, unit: Blob, config: Blob, gpu_dropin: Blob | None) -> bool:
    """The unit, its GPU drop-in when the device runs TensorRT, and the site config."""
    dropin = "-" if gpu_dropin is None else gpu_dropin.digest
    args = [BLOBS_DIR, unit.digest, UNIT_FILE, config.digest, CONFIG_FILE, dropin, GPU_DROPIN]
    return _changed(conn, _SYSTEM, args)


def system_files(unit: Blob, config: Blob, gpu_dropin: Blob | None) -> dict[str, str | None]:
    """The sha256 of what ``install_system`` leaves at each path; None where it leaves no file."""
    dropin = None if gpu_dropin is None else gpu_dropin.digest
    return {UNIT_FILE: unit.digest, CONFIG_FILE: config.digest, GPU_DROPIN: dropin}


def current_release(conn: Connection) -> str | None:
    link = conn.run(["readlink", CURRENT_LINK], check=False).stdout.strip()
    return link.rsplit("/", 1)[-1] if link.startswith(RELEASES_DIR + "/") else None
