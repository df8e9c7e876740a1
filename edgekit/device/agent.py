"""Reading the one JSON answer an agent command prints on the device."""

from __future__ import annotations

import json
from typing import Any

from edgekit.ssh.seam import RunResult


def json_answer(result: RunResult) -> dict[str, Any] | None:
    """The JSON object on the last line of stdout, where the agent puts its one answer."""
    lines = result.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def last_stderr_line(result: RunResult) -> str:
    return (result.stderr.strip().splitlines() or ["no output"])[-1]
