"""``lifecycle serving``: what the device serves now, in one answer, for a re-provision.

The host asks this of the current release's own agent before it uploads anything: when the
release it would make is the current one, committed, laid out with the same files, run by
the same runtime, unit and site config, and its recorded gate figures still pass, nothing
needs to be sent, built, gated or restarted. Reading only; run as root (the lifecycle
records and the service's results are not everyone's to read).
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from typing import Any

from .files import read_json
from .lifecycle import BUILDS_DIR, RESULTS_FILE, UNIT, status

# The newest result line is far shorter; the tail read stays bounded on a busy results file.
RESULT_TAIL_BYTES = 64 << 10


def serving(state_dir: str, files: list[str]) -> dict[str, Any]:
    """``lifecycle status`` with the current release's build answer (its gate figures and
    engine), the sha256 of its release.json and of each of ``files`` (None when absent), the
    runtime venv, the camera service's state and its newest result line."""
    answer = status(state_dir)
    current = answer["current"]
    release = os.path.join(state_dir, "releases", current) if current else None
    return dict(
        answer,
        build=read_json(os.path.join(state_dir, BUILDS_DIR, f"{current}.json")) if current else None,
        release_json=sha256(os.path.join(release, "release.json")) if release else None,
        files={path: sha256(path) for path in files},
        venv=_readlink(os.path.join(state_dir, "venv")),
        service=_show(UNIT, "ActiveState", "MainPID", "UnitFileState"),
        result=last_line(os.path.join(state_dir, RESULTS_FILE)),
    )


def sha256(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def last_line(path: str) -> str | None:
    """The last complete line of ``path``, read from a bounded tail; None if there is none."""
    try:
        # The results file is the service user's: root follows no link there, and a FIFO put in
        # its place must not block the read (it is then refused as not a regular file).
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - RESULT_TAIL_BYTES))
            tail = handle.read(RESULT_TAIL_BYTES)
    except OSError:
        return None
    # The service may be writing the line after it: only what a newline ends is whole.
    end = tail.rfind(b"\n")
    if end < 0:
        return None
    return tail[tail.rfind(b"\n", 0, end) + 1 : end].decode("utf-8", "replace")


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _show(unit: str, *properties: str) -> dict[str, str]:
    try:
        done = subprocess.run(
            ["systemctl", "show", unit, "--property=" + ",".join(properties)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    except OSError:
        return {}
    text = done.stdout.decode("utf-8", "replace")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
