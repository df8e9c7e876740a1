"""A password that never shows: not in a repr, a log line, a traceback's locals or a command line."""

from __future__ import annotations

import sys
from pathlib import Path

from edgekit.errors import UsageError


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The password itself, for the one place that hands it to SSH or sudo."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    @classmethod
    def from_file(cls, path: Path) -> Secret:
        """The first line of ``path`` (``-`` reads standard input), without its line ending."""
        try:
            text = sys.stdin.readline() if str(path) == "-" else path.read_text()
        except OSError as exc:
            raise UsageError(f"The password file {path} cannot be read ({exc.strerror}); check its path.") from exc
        lines = text.splitlines()
        if not lines or not lines[0]:
            raise UsageError(f"The password file {path} is empty; write the password on its first line.")
        return cls(lines[0])
