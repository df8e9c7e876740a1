"""Running the agent zipapp on the device and reading its one JSON answer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from edgekit.errors import DeviceError
from edgekit.ssh.connection import Connection, RunResult


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


def call_agent(
    conn: Connection, python: str, agent: str, args: Sequence[str], timeout: float = 300.0
) -> dict[str, Any]:
    """Run ``python agent args`` and return its JSON object; an agent error becomes DeviceError."""
    result = conn.run([python, agent, *args], check=False, timeout=timeout)
    answer = json_answer(result)
    if answer is None:
        raise DeviceError(
            f"The edgekit agent on {conn.target} gave no answer to `{args[0]}` ({last_stderr_line(result)}); "
            "check that python3 runs there."
        )
    if "error" in answer:
        error = answer["error"]
        raise DeviceError(f"The device could not {args[0]}: {error.get('message', error)}")
    if not result.ok:
        raise DeviceError(f"The edgekit agent on {conn.target} failed `{args[0]}` with exit code {result.exit_code}.")
    return answer
