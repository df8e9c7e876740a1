"""How the camera service on a device is doing: its systemd state and its own metrics.

The metrics port listens on the device's loopback only, so the fetch runs on the device
(``python3 -c``, nothing lands there) and the Prometheus text comes back over SSH.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from edgekit.agent.config import MetricsConfig
from edgekit.agent.metrics import parse_prometheus
from edgekit.device.agent import last_stderr_line
from edgekit.device.install import current_release
from edgekit.device.layout import CONFIG_FILE, UNIT_NAME
from edgekit.device.service import service_state
from edgekit.device.trial import Lifecycle, lifecycle
from edgekit.errors import DeviceError
from edgekit.ssh.seam import Connection, RunResult

FETCH_TIMEOUT_S = 5.0
# The script's own HTTP timeout bounds it; this only catches a device too loaded to start it.
SCRIPT_TIMEOUT_S = 30.0
# Runs on the device's python3, which is 3.6 on JetPack 4.6: standard library only and
# nothing newer. argv: the site config path, the timeout in seconds, the port the service
# uses when the config names none. Exit 0: "port N" then the metrics text on stdout; 2 (bad
# config), 3 (switched off), 4 (no answer): one sentence on stderr, after "port N" once known.
FETCH_SCRIPT = """\
import json, socket, sys, urllib.error, urllib.request

def fail(code, message, port=None):
    if port is not None:
        sys.stdout.write("port %d\\n" % port)
    sys.stderr.write(message + "\\n")
    sys.exit(code)

path, timeout, default_port = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
try:
    with open(path) as handle:
        config = json.load(handle)
except FileNotFoundError:
    fail(2, "there is no %s; provision the device first" % path)
except (OSError, ValueError) as exc:
    fail(2, "cannot read %s (%s)" % (path, exc))
section = config.get("metrics", {}) if isinstance(config, dict) else {}
if section is None:
    fail(3, "metrics are switched off (\\"metrics\\": null in %s)" % path)
port = section.get("port", default_port) if isinstance(section, dict) else None
if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
    fail(2, "metrics.port in %s is not a port number" % path)
url = "http://127.0.0.1:%d/metrics" % port
try:
    body = urllib.request.urlopen(url, timeout=timeout).read().decode("utf-8", "replace")
except urllib.error.HTTPError as exc:
    fail(4, "%s answered HTTP %d, so another program may hold metrics.port" % (url, exc.code), port)
except urllib.error.URLError as exc:
    reason = exc.reason
    if isinstance(reason, ConnectionRefusedError):
        fail(4, "nothing listens on %s" % url, port)
    if isinstance(reason, socket.timeout):
        fail(4, "%s did not answer within %g s" % (url, timeout), port)
    fail(4, "cannot fetch %s (%s)" % (url, reason), port)
except (OSError, socket.timeout) as exc:
    fail(4, "cannot fetch %s (%s)" % (url, exc or "timed out"), port)
sys.stdout.write("port %d\\n" % port)
sys.stdout.write(body)
"""
_PORT_LINE = re.compile(r"port (\d+)\n")
_EDGEKIT_SAMPLE = re.compile(r"^edgekit_frames_total\b", re.MULTILINE)


@dataclass(frozen=True)
class DeviceStatus:
    """The unit's systemd state, and the service's metrics or why there are none."""

    target: str
    active_state: str
    sub_state: str
    main_pid: int | None
    restarts: int | None
    status_text: str
    metrics_port: int | None
    # The shape of edgekit.agent.metrics.Metrics.snapshot(); None when metrics_missing says why.
    metrics: dict[str, Any] | None
    metrics_missing: str | None
    # The release serving, whether it is on trial or committed, its gate figures and the last
    # rollback; None before anything was provisioned (or from an agent older than trials).
    lifecycle: Lifecycle | None = None

    @property
    def running(self) -> bool:
        return self.main_pid is not None

    def to_dict(self) -> dict[str, Any]:
        return {"unit": UNIT_NAME, **asdict(self)}


def device_status(conn: Connection) -> DeviceStatus:
    state = service_state(conn)
    main_pid = _integer(state.get("MainPID"))
    active, sub = state.get("ActiveState") or "unknown", state.get("SubState") or "unknown"
    port: int | None = None
    metrics: dict[str, Any] | None = None
    if main_pid:
        port, metrics, missing = metrics_answer(
            conn.run(
                fetch_argv(CONFIG_FILE),
                check=False,
                timeout=SCRIPT_TIMEOUT_S,
            )
        )
        if missing and active != "active":
            missing += f", while {UNIT_NAME} is {active}/{sub}"
        foreign = not_ours(metrics, port, main_pid) if metrics is not None else None
        if foreign:
            metrics, missing = None, foreign
    else:
        missing = f"{UNIT_NAME} is not running ({active}/{sub}); see `journalctl -u {UNIT_NAME}` on the device"
    return DeviceStatus(
        lifecycle=_lifecycle(conn),
        target=str(conn.target),
        active_state=active,
        sub_state=sub,
        main_pid=main_pid or None,
        restarts=_integer(state.get("NRestarts")),
        status_text=state.get("StatusText", ""),
        metrics_port=port,
        metrics=metrics,
        metrics_missing=missing,
    )


def _lifecycle(conn: Connection) -> Lifecycle | None:
    current = current_release(conn)
    if current is None:
        return None
    try:
        return lifecycle(conn, current, "status")
    except DeviceError:
        # A release provisioned by an edgekit older than trials: its agent has no lifecycle.
        return None


def not_ours(metrics: dict[str, Any], port: int | None, main_pid: int) -> str | None:
    """Why these metrics are not the service's: another process (a second service on a host
    sharing its network, as twins do) may hold the port; None when they are its own."""
    served_by = _integer(str(metrics.get("info", {}).get("pid", "")))
    if served_by == main_pid:
        return None
    return (
        f"port {port} answers for process {served_by or 'unknown'}, not for {UNIT_NAME} ({main_pid}); "
        "give the service its own metrics.port in /etc/edgekit/camera.json"
    )


def fetch_argv(config_file: str, timeout: float = FETCH_TIMEOUT_S) -> list[str]:
    return ["python3", "-c", FETCH_SCRIPT, config_file, f"{timeout:g}", str(MetricsConfig().port)]


def metrics_answer(result: RunResult) -> tuple[int | None, dict[str, Any] | None, str | None]:
    """What FETCH_SCRIPT's run says: (port, metrics, why metrics are missing)."""
    port_line = _PORT_LINE.match(result.stdout)
    port = int(port_line.group(1)) if port_line else None
    if result.exit_code == 127:
        return port, None, "the device has no python3 to fetch them with"
    if not result.ok:
        return port, None, last_stderr_line(result)
    body = result.stdout[port_line.end() :] if port_line else result.stdout
    try:
        metrics = parse_prometheus(body)
    except ValueError as exc:
        return port, None, f"port {port} does not serve edgekit's metrics ({exc}); pick another metrics.port"
    if not _EDGEKIT_SAMPLE.search(body):
        return port, None, f"port {port} serves metrics, but not edgekit's; pick another metrics.port"
    return port, metrics, None


def _integer(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None
