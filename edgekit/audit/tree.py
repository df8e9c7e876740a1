"""The files of a tree to audit, the same way whether it is a directory or a tarball.

Each rule sees an :class:`Entry`: its relative posix path, its size and a ``read`` that returns
only the bytes asked for, so content checks read headers, ELF dynamic sections and metadata
files rather than whole files. Entries come in sorted path order, so a directory and a tarball
of it give the same findings in the same order. Symbolic links, devices and other non-regular
files are not entries: what a link names is audited where it lives.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    path: str
    size: int
    # read(offset, size) -> at most ``size`` bytes from ``offset`` (size -1: to the end).
    reader: Callable[[int, int], bytes]

    def read(self, offset: int = 0, size: int = -1) -> bytes:
        return self.reader(offset, size)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def _file_reader(path: str) -> Callable[[int, int], bytes]:
    def read(offset: int, size: int) -> bytes:
        with open(path, "rb") as stream:
            stream.seek(offset)
            return stream.read(size)

    return read


def walk_directory(root: Path) -> Iterator[Entry]:
    found: list[tuple[str, str, int]] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in files:
            full = os.path.join(folder, name)
            try:
                info = os.lstat(full)
            except OSError:
                continue
            if not os.path.isfile(full) or os.path.islink(full):
                continue
            found.append((Path(full).relative_to(root).as_posix(), full, info.st_size))
    for relative, full, size in sorted(found):
        yield Entry(relative, size, _file_reader(full))


def walk_tarball(path: Path) -> Iterator[Entry]:
    with tarfile.open(path) as archive:
        members = sorted((m for m in archive.getmembers() if m.isreg()), key=lambda m: m.name.removeprefix("./"))
        for member in members:
            yield Entry(member.name.removeprefix("./"), member.size, _member_reader(archive, member))


def _member_reader(archive: tarfile.TarFile, member: tarfile.TarInfo) -> Callable[[int, int], bytes]:
    def read(offset: int, size: int) -> bytes:
        stream = archive.extractfile(member)
        if stream is None:
            return b""
        with stream:
            stream.seek(offset)
            return stream.read(size)

    return read


def is_tarball(path: Path) -> bool:
    return path.is_file() and tarfile.is_tarfile(path)


def entries(path: Path) -> Iterator[Entry]:
    """The regular files under ``path``, a directory or a tarball (plain, gzip, bzip2 or xz)."""
    return walk_tarball(path) if is_tarball(path) else walk_directory(path)


def entry_of_bytes(path: str, data: bytes) -> Entry:
    """An entry held in memory: a file inside another one (a zip member), and tests."""
    return Entry(path, len(data), lambda offset, size: data[offset:] if size < 0 else data[offset : offset + size])
