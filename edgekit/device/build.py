"""The on-device build: a transient systemd unit the host starts, follows and reattaches to.

``systemd-run`` makes the build independent of the SSH session that started it: a dropped
link or a closed laptop does not kill a 20-minute engine build. The host follows the
unit's journal (by invocation id, so older runs do not mix in), reconnects after a drop,
and reads the answer from a result file that outlives the unit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgekit.agent import ENGINES_DIR
from edgekit.device.answers import BuildAnswer
from edgekit.device.layout import BUILDS_DIR, SERVICE_USER, VENV_LINK, release_dir
from edgekit.errors import DeviceError, DeviceUnreachable, LinkDropped, agent_failure
from edgekit.ssh.seam import Connection

POLL_S = 1.0
# How long a dropped link is retried before the host gives up (the build goes on).
RECONNECT_S = 120.0
# What a re-run does after the link dropped during a build (edgekit.linkdrop says it too).
REATTACH = "the build goes on on the device; re-run the same command to reattach to it"
# A build that hangs (a wedged GPU driver) must end some day; the slowest Nano-class
# INT8 builds take well under this.
BUILD_MAX_S = 2 * 3600
_RUNNING = ("active", "activating", "deactivating", "reloading")

_FOLLOW = r"""
inv="$1"; cursor="$2"; unit="$3"
if [ -n "$inv" ]; then
  if [ -n "$cursor" ]; then
    journalctl "_SYSTEMD_INVOCATION_ID=$inv" --output=json --no-pager --after-cursor="$cursor"
  else
    journalctl "_SYSTEMD_INVOCATION_ID=$inv" --output=json --no-pager
  fi
fi
echo "--state--"
systemctl show "$unit" --property=ActiveState,Result,ExecMainStatus,InvocationID
"""


def unit_name(rid: str) -> str:
    return f"edgekit-build-{rid}.service"


def result_path(rid: str) -> str:
    return f"{BUILDS_DIR}/{rid}.json"


@dataclass
class BuildWatch:
    """Where the host is in one build's journal: the unit, its invocation and the last cursor."""

    conn: Connection
    rid: str
    invocation: str = ""
    cursor: str = ""
    state: dict[str, str] | None = None

    @property
    def unit(self) -> str:
        return unit_name(self.rid)

    def refresh(self) -> None:
        """The unit's state (and invocation id), leaving its journal lines for ``poll``."""
        self._query("")

    def poll(self) -> list[str]:
        """New journal lines of this invocation; updates ``state``."""
        if not self.invocation:
            self.refresh()
        return self._query(self.invocation)

    def _query(self, invocation: str) -> list[str]:
        shown = self.conn.run(["sh", "-c", _FOLLOW, "sh", invocation, self.cursor, self.unit], sudo=True)
        journal, _, state_text = shown.stdout.partition("--state--\n")
        self.state = dict(line.split("=", 1) for line in state_text.splitlines() if "=" in line)
        if not self.invocation and self.state.get("InvocationID"):
            self.invocation = self.state["InvocationID"]
        lines = []
        for raw in journal.splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            self.cursor = entry.get("__CURSOR", self.cursor)
            lines.append(field_text(entry.get("MESSAGE")))
        return lines

    @property
    def running(self) -> bool:
        return self.state is not None and self.state.get("ActiveState") in _RUNNING


def field_text(value: Any) -> str:
    """A journal field as text. journald's JSON gives a value that is not valid UTF-8 as a list
    of byte values, and a field logged more than once as a list of its values."""
    if isinstance(value, list):
        if all(isinstance(item, int) for item in value):
            return bytes(value).decode("utf-8", "replace")
        return "\n".join(field_text(item) for item in value)
    return "" if value is None else str(value)


def start_build(
    conn: Connection, rid: str, restart_after: str | None = None, baseline: str | None = None
) -> tuple[BuildWatch, bool]:
    """Start the build unit, or attach to the one already running; True when it was started.

    With ``restart_after``, that service is stopped for the build and started again by the
    build unit itself when it ends, so a host that never comes back leaves no camera down.
    With ``baseline`` (the release serving now), the unit gates that release too, on the
    same samples, for an old-against-new comparison.
    """
    watch = BuildWatch(conn, rid)
    watch.refresh()
    if watch.running:
        return watch, False
    # A failed earlier run stays loaded under the same name until reset.
    conn.run(["systemctl", "reset-failed", watch.unit], sudo=True, check=False)
    conn.run(["rm", "-f", "--", result_path(rid)], sudo=True)
    path = release_dir(rid)
    restart = (
        [] if restart_after is None else [f"--property=ExecStopPost=+/bin/systemctl start --no-block {restart_after}"]
    )
    compare = [] if baseline is None or baseline == rid else ["--baseline-release-dir", release_dir(baseline)]
    if restart_after is not None:
        conn.run(["systemctl", "stop", restart_after], sudo=True)
    conn.run(
        [
            "systemd-run",
            f"--unit={watch.unit}",
            f"--description=edgekit engine build for release {rid}",
            f"--property=User={SERVICE_USER}",
            f"--property=Group={SERVICE_USER}",
            "--property=SupplementaryGroups=video",
            "--property=StateDirectory=edgekit/engines edgekit/engines/builds",
            "--property=CacheDirectory=edgekit",
            "--property=Environment=HOME=/var/cache/edgekit",
            f"--property=RuntimeMaxSec={BUILD_MAX_S}",
            *restart,
            "--",
            f"{VENV_LINK}/bin/python",
            f"{path}/agent.pyz",
            "build",
            "--release-dir",
            path,
            "--samples",
            f"{path}/gate.npz",
            "--engines-dir",
            ENGINES_DIR,
            "--result",
            result_path(rid),
            *compare,
        ],
        sudo=True,
    )
    watch.refresh()
    return watch, True


def follow_build(
    watch: BuildWatch,
    on_line: Callable[[str], None],
    on_drop: Callable[[str], None] = lambda text: None,
    sleep: Callable[[float], None] = time.sleep,
) -> BuildAnswer:
    """Stream the build's lines until the unit stops, then return its answer."""
    dropped_at: float | None = None
    while True:
        try:
            lines = watch.poll()
        except DeviceUnreachable as exc:
            now = time.monotonic()
            dropped_at = now if dropped_at is None else dropped_at
            if now - dropped_at > RECONNECT_S:
                raise LinkDropped(
                    watch.conn.target,
                    f"it did not come back within {RECONNECT_S:.0f} s",
                    "building the model",
                    REATTACH,
                ) from exc
            on_drop(f"link dropped ({exc}); reconnecting")
            sleep(min(10.0, 1.0 + now - dropped_at))
            continue
        if dropped_at is not None:
            on_drop("reconnected; following the build again")
            dropped_at = None
        for line in lines:
            on_line(line)
        if not watch.running:
            answer = _read_answer(watch)
            # A quick build can finish and be unloaded before the host learns its invocation.
            if not watch.invocation and answer is not None and answer.get("invocation"):
                watch.invocation = str(answer["invocation"])
            # journald may store the last lines just after the unit stopped.
            for line in watch.poll():
                on_line(line)
            return _checked(watch, answer)
        sleep(POLL_S)


def _read_answer(watch: BuildWatch) -> dict[str, Any] | None:
    text = watch.conn.run(["cat", "--", result_path(watch.rid)], sudo=True, check=False).stdout
    try:
        answer = json.loads(text)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _checked(watch: BuildWatch, answer: dict[str, Any] | None) -> BuildAnswer:
    conn, state = watch.conn, watch.state or {}
    conn.run(["systemctl", "reset-failed", watch.unit], sudo=True, check=False)
    if answer is None:
        how = state.get("Result", "unknown")
        raise DeviceError(
            f"The build on {conn.target} stopped without an answer (result {how}, exit status "
            f"{state.get('ExecMainStatus', '?')}); see `journalctl -u {watch.unit}` there"
            + (", and give the build more memory (stop other GPU work)." if how == "oom-kill" else ".")
        )
    if "error" in answer:
        error = answer["error"]
        raise agent_failure(str(error.get("kind")), f"The build on {conn.target} failed: {error.get('message', error)}")
    return BuildAnswer.parse(answer)
