"""Files the builder leaves on the device, written so that a crash never leaves half of one."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from typing import Any, Iterator


def write_atomically(path: str, data: bytes) -> None:
    """Temp file, fsync, rename, fsync the directory: readers see the old file or the new one."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_dir(directory)


def fsync_dir(path: str) -> None:
    """A rename or unlink in ``path`` reaches the disk only once the folder itself is fsynced."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: str) -> dict[str, Any] | None:
    """The JSON object in ``path``; None if it is missing, unreadable or not an object."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_or_none(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    return data or None


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """An exclusive flock on ``path`` for the block: the host, the deadline timer and the unit's
    ExecStartPre may decide a trial at the same moment, and each must see the other's result."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
