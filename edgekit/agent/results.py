"""Per-frame result records: one JSON line to stdout for journald, and to a rotated file."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable, TextIO

from .errors import AgentError


class ResultWriter:
    """Writes records as compact JSON lines, keeping the file under ``max_bytes``.

    Full files are shifted to ``path.1`` ... ``path.<backups>``, like logrotate, so a reader
    tailing ``path`` always sees the newest results and the disk use stays bounded.
    """

    def __init__(
        self,
        path: str,
        max_bytes: int,
        backups: int,
        stream: TextIO | None = None,
        log: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.path = path
        self.max_bytes = int(max_bytes)
        self.backups = int(backups)
        # Looked up at construction, not definition, so a replaced sys.stdout is honoured.
        self._stream = sys.stdout if stream is None else stream
        self._log = log
        self._failing = False
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            # Kept open for the life of the service; close() releases it.
            self._file = open(path, "ab")  # noqa: SIM115
        except OSError as exc:
            raise AgentError(
                "config",
                f"Cannot write the results file {path} ({exc.strerror}); the service may write only under "
                "/var/lib/edgekit (its StateDirectory): set results.path in /etc/edgekit/camera.json there.",
            ) from None
        self._size = self._file.tell()

    def write(self, record: dict[str, Any]) -> str:
        """Write ``record``; the JSON line written (without its newline), for other sinks."""
        line = json.dumps(record, separators=(",", ":")) + "\n"
        self._stream.write(line)
        # journald only sees what is flushed; a buffered stdout would hold results for seconds.
        self._stream.flush()
        data = line.encode("utf-8")
        try:
            if self._size > 0 and self._size + len(data) > self.max_bytes:
                self._rotate()
            self._file.write(data)
            self._file.flush()
        except OSError as exc:
            # A full disk must not stop the camera: the journal and the sinks still get the
            # results. Said once, and again when writing works again.
            if not self._failing:
                self._log(f"cannot write {self.path} ({exc.strerror}); results go only to the journal and sinks")
            self._failing = True
            self._reopen_after_failed_rotation()
            return line[:-1]
        if self._failing:
            self._log(f"writing {self.path} again")
        self._failing = False
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

    def _reopen_after_failed_rotation(self) -> None:
        if self._file.closed:
            try:
                self._file = open(self.path, "ab")  # noqa: SIM115
                self._size = self._file.tell()
            except OSError:
                pass  # Tried again on the next failed write.

    def close(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass  # What could not be flushed was already reported by write().
