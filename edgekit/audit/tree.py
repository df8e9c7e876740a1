"""The files of a tree to audit, the same way whether it is a directory or a tarball.

Each rule sees an :class:`Entry`: its relative posix path, its size and a ``read`` that returns
only the bytes asked for, so content checks read headers, ELF dynamic sections and metadata
files rather than whole files. A directory's entries come in sorted path order, a tarball's in
archive order (see walk_tarball); the audit sorts its findings, so both give the same.
Symbolic links, devices and other non-regular files are not entries: what a link names is
audited where it lives.
"""

from __future__ import annotations

import functools
import os
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO


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
    """Members in archive order, each read front to back: a compressed tarball cannot seek
    backwards without decompressing again from its start, so sorting members or re-reading one
    from its start would make the walk quadratic in the archive's size."""
    with tarfile.open(path) as archive:
        for member in archive:
            if member.isreg():
                reader = _ForwardReader(functools.partial(archive.extractfile, member))
                try:
                    yield Entry(member.name.removeprefix("./"), member.size, reader.read)
                finally:
                    reader.close()


# A tar member's first bytes are kept whole (headers, ELF program headers and .dynstr, metadata
# files); past them only a window follows the reads, so a 1 GB library costs no 1 GB of memory.
HEAD_BYTES = 16 << 20
WINDOW_BYTES = 16 << 20
CHUNK_BYTES = 1 << 20


class _ForwardReader:
    """Reads of one tar member served from what was read of it so far, reading on only forwards.

    The rare read behind the window (a rule going back past the head in a large member) opens
    the member again, which costs a decompression from the archive's start and nothing else."""

    def __init__(self, open_member: Callable[[], IO[bytes] | None]) -> None:
        self._open = open_member
        self._stream: IO[bytes] | None = None
        self._head = bytearray()
        # The window holds the member's bytes from _window_at on, after the head.
        self._window = bytearray()
        self._window_at = 0
        self._position = 0

    def _next(self) -> bytes:
        if self._stream is None:
            self._stream = self._open()
            if self._stream is None:
                return b""
        chunk = self._stream.read(CHUNK_BYTES)
        self._position += len(chunk)
        return chunk

    def read(self, offset: int, size: int) -> bytes:
        end = offset + size if size >= 0 else None
        if offset < self._window_at and (end is None or end > len(self._head)) and self._window_at > len(self._head):
            # The span needs bytes the window has left behind: start the member over.
            self.close()
            self._head.clear()
            self._window.clear()
            self._window_at = self._position = 0
        self._fill(end, keep_from=offset)
        stop = self._position if end is None else min(end, self._position)
        if offset >= stop:
            return b""
        pieces = []
        if offset < len(self._head):
            pieces.append(bytes(self._head[offset : min(stop, len(self._head))]))
        if stop > self._window_at:
            start = max(offset, self._window_at) - self._window_at
            pieces.append(bytes(self._window[start : stop - self._window_at]))
        return b"".join(pieces)

    def _fill(self, end: int | None, keep_from: int) -> None:
        """Read on until ``end`` (None: the member's end), keeping the head, and the window from
        ``keep_from`` on, so that the span being read is whole however long it is."""
        while end is None or self._position < end:
            chunk = self._next()
            if not chunk:
                return
            if len(self._head) < HEAD_BYTES:
                room = HEAD_BYTES - len(self._head)
                self._head += chunk[:room]
                chunk = chunk[room:]
                self._window_at = len(self._head)
            self._window += chunk
            drop = min(len(self._window) - WINDOW_BYTES, keep_from - self._window_at)
            if drop > 0:
                del self._window[:drop]
                self._window_at += drop

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def is_tarball(path: Path) -> bool:
    return path.is_file() and tarfile.is_tarfile(path)


def entries(path: Path) -> Iterator[Entry]:
    """The regular files under ``path``, a directory or a tarball (plain, gzip, bzip2 or xz)."""
    return walk_tarball(path) if is_tarball(path) else walk_directory(path)


def entry_of_bytes(path: str, data: bytes) -> Entry:
    """An entry held in memory: a file inside another one (a zip member), and tests."""
    return Entry(path, len(data), lambda offset, size: data[offset:] if size < 0 else data[offset : offset + size])
