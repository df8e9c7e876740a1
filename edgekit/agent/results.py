"""Per-frame result records: one JSON line to stdout for journald, and to a rotated file."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO


class ResultWriter:
    """Writes records as compact JSON lines, keeping the file under ``max_bytes``.

    Full files are shifted to ``path.1`` ... ``path.<backups>``, like logrotate, so a reader
    tailing ``path`` always sees the newest results and the disk use stays bounded.
    """

    def __init__(self, path: str, max_bytes: int, backups: int, stream: TextIO | None = None) -> None:
        self.path = path
        self.max_bytes = int(max_bytes)
        self.backups = int(backups)
        # Looked up at construction, not definition, so a replaced sys.stdout is honoured.
        self._stream = sys.stdout if stream is None else stream
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        # Kept open for the life of the service; close() releases it.
        self._file = open(path, "ab")  # noqa: SIM115
        self._size = self._file.tell()

    def write(self, record: dict[str, Any]) -> str:
        """Write ``record``; the JSON line written (without its newline), for other sinks."""
        line = json.dumps(record, separators=(",", ":")) + "\n"
        self._stream.write(line)
        # journald only sees what is flushed; a buffered stdout would hold results for seconds.
        self._stream.flush()
        data = line.encode("utf-8")
        if self._size > 0 and self._size + len(data) > self.max_bytes:
            self._rotate()
        self._file.write(data)
        self._file.flush()
        self._size += len(data)
        return line[:-1]

    def _rotate(self) -> None:
        self._file.close()
        for index in range(self.backups - 1, 0, -1):
            older = f"{self.path}.{index}"
            if os.path.exists(older):
                os.replace(older, f"{self.path}.{index + 1}")
        if self.backups > 0:
            os.replace(self.path, self.path + ".1")
        self._file = open(self.path, "wb")  # noqa: SIM115
        self._size = 0

    def close(self) -> None:
        self._file.close()
