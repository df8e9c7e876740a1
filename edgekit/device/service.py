"""The camera service under systemd: restart it, and wait until it is healthy and producing."""

from __future__ import annotations

import json
import time

from edgekit.device.answers import ResultRecord
from edgekit.device.layout import RESULTS_FILE, UNIT_NAME
from edgekit.errors import ActivationFailed
from edgekit.ssh.seam import Connection

START_TIMEOUT_S = 330.0
FIRST_RESULT_TIMEOUT_S = 60.0
# The unit's SyslogIdentifier: the service's own journal lines, not systemd's about the unit.
SYSLOG_IDENTIFIER = "edgekit-camera"


def service_state(conn: Connection) -> dict[str, str]:
    shown = conn.run(
        ["systemctl", "show", UNIT_NAME, "--property=ActiveState,SubState,MainPID,StatusText,NRestarts"],
        check=False,
    )
    return dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)


def is_active(conn: Connection) -> bool:
    return service_state(conn).get("ActiveState") == "active"


def journal_tail(conn: Connection, lines: int = 5, own: bool = False) -> str:
    """The unit's last journal lines; ``own``: the service's own (its error), not systemd's about it."""
    only = ["--identifier", SYSLOG_IDENTIFIER] if own else []
    shown = conn.run(
        ["journalctl", "--unit", UNIT_NAME, *only, "--lines", str(lines), "--output", "cat", "--no-pager"],
        sudo=True,
        check=False,
    )
    return " / ".join(line.strip() for line in shown.stdout.strip().splitlines()[-lines:]) or "no journal output"


def restart(conn: Connection) -> None:
    """Restart and wait for READY (Type=notify makes ``systemctl restart`` wait for it)."""
    done = conn.run(["systemctl", "restart", UNIT_NAME], sudo=True, check=False, timeout=START_TIMEOUT_S)
    if not done.ok or not is_active(conn):
        raise ActivationFailed(
            f"{UNIT_NAME} did not become ready on {conn.target} ({journal_tail(conn)}); "
            f"see `journalctl -u {UNIT_NAME}` on the device."
        )


def wait_ready(conn: Connection, timeout: float = START_TIMEOUT_S) -> bool:
    """Whether the service, restarted by someone else (the device's rollback), reaches READY."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = service_state(conn)
        if state.get("ActiveState") == "active":
            return True
        if state.get("ActiveState") == "failed":
            return False
        time.sleep(0.5)
    return False


def own_result(line: str, main_pid: str | None) -> ResultRecord | None:
    """The result ``line`` holds, if the process ``main_pid`` wrote it."""
    try:
        record = json.loads(line) if line.strip() else None
    except ValueError:
        return None
    # Older lines may come from an earlier release's process, of another shape: read only ours.
    if isinstance(record, dict) and str(record.get("pid")) == main_pid:
        return ResultRecord.parse(record)
    return None


def first_result(conn: Connection, timeout: float = FIRST_RESULT_TIMEOUT_S) -> ResultRecord:
    """The newest result line written by the running service process."""
    deadline = time.monotonic() + timeout
    while True:
        state = service_state(conn)
        if state.get("ActiveState") != "active":
            raise ActivationFailed(
                f"{UNIT_NAME} stopped on {conn.target} ({journal_tail(conn)}); see `journalctl -u {UNIT_NAME}`."
            )
        record = own_result(conn.run(["tail", "-n", "1", RESULTS_FILE], check=False).stdout, state.get("MainPID"))
        if record is not None:
            return record
        if time.monotonic() > deadline:
            raise ActivationFailed(
                f"{UNIT_NAME} runs on {conn.target} but wrote no result within {timeout:.0f} s; "
                "check the camera source in /etc/edgekit/camera.json."
            )
        time.sleep(0.5)
