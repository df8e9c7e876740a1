"""Asking a device what it is, without writing anything on it."""

from __future__ import annotations

from importlib import resources
from typing import Any

from edgekit.device.agent import json_answer, last_stderr_line
from edgekit.device.layout import STATE_DIR
from edgekit.errors import DeviceError, PreflightFailed
from edgekit.ssh.seam import Connection

FACTS_TIMEOUT_S = 120.0


def facts_source() -> str:
    return resources.files("edgekit.agent").joinpath("facts.py").read_text()


def read_facts(conn: Connection) -> dict[str, Any]:
    """The agent's facts module, sent as ``python3 -c`` so that nothing lands on the device."""
    result = conn.run(["python3", "-c", facts_source(), STATE_DIR], check=False, timeout=FACTS_TIMEOUT_S)
    if result.exit_code == 127:
        raise PreflightFailed(f"{conn.target} has no python3; flash JetPack 5.1 or later, which ships it.")
    facts = json_answer(result) if result.ok else None
    if facts is None:
        raise DeviceError(
            f"{conn.target} could not describe itself with python3 ({last_stderr_line(result)}); "
            "check that `python3 -V` runs there."
        )
    return facts
