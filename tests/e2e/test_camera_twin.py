"""End to end: the camera service on the twin, under real systemd, fed by a real RTSP server.

The server runs on this machine's loopback (the twin shares it) and is killed, restarted and
frozen mid-stream, as cameras do in the field.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_provision_twin import edgekit, on_twin, provision_args

from edgekit.twin import TwinInfo, twin_exec

pytestmark = pytest.mark.e2e
UNIT = "edgekit-camera.service"
RESULTS = "/var/lib/edgekit/results/results.jsonl"


@pytest.fixture(scope="module")
def provisioned(
    camera_twin: TwinInfo, rtsp_camera: Any, tmp_path_factory: pytest.TempPathFactory, free_ports: Callable[[], int]
) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("camera-home")
    # Twins share this machine's network, so each service gets a port of its own.
    metrics_port = str(free_ports())
    args = provision_args(
        camera_twin, home / "known_hosts", "--accept-new-host-key", "--json", "--metrics-port", metrics_port
    )
    args[args.index("--source") + 1] = rtsp_camera.url
    done = edgekit(*args, home=home)
    assert done.returncode == 0, done.stderr
    return {"home": home, "result": json.loads(done.stdout)}


def unit(twin: TwinInfo) -> dict[str, str]:
    shown = on_twin(twin, "systemctl", "show", UNIT, "--property=MainPID,NRestarts,ActiveState,Result,ExecMainStatus")
    return dict(line.split("=", 1) for line in shown.splitlines())


def newest_record(twin: TwinInfo) -> dict[str, Any] | None:
    line = twin_exec(twin.name, ["tail", "-n", "1", RESULTS]).stdout.strip()
    try:
        return json.loads(line) if line else None
    except ValueError:
        return None


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def fresh_results_from(twin: TwinInfo, pid: str, after_frame: int = -1) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        record = newest_record(twin)
        if record and str(record["pid"]) == pid and record["frame"] > after_frame:
            return record
        return None

    return check


def journal(twin: TwinInfo) -> str:
    return on_twin(twin, "journalctl", "-u", UNIT, "-o", "cat", "--no-pager", "-n", "400")


def status(twin: TwinInfo, home: Path) -> dict[str, Any]:
    done = edgekit(
        "status",
        twin.target,
        "--identity",
        twin.identity,
        "--known-hosts",
        str(home / "known_hosts"),
        "--no-ssh-config",
        "--json",
        home=home,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def test_an_rtsp_camera_is_served_and_status_shows_its_metrics(camera_twin: TwinInfo, provisioned: dict) -> None:
    state = unit(camera_twin)
    assert state["ActiveState"] == "active"
    record = wait_for("results", fresh_results_from(camera_twin, state["MainPID"]), 30)
    assert set(record["latency_ms"]) == {"grab", "pre", "infer", "post", "total"}
    assert record["top"][0]["label"] in [str(d) for d in range(10)]
    shown = status(camera_twin, provisioned["home"])
    text = json.dumps(shown)
    assert "active" in text
    metrics = shown["metrics"]
    assert metrics["fps"] and metrics["fps"] > 1.0
    assert metrics["frames"] > 0
    assert metrics["latency_ms"]["infer"]["p50"] > 0
    # The service keeps frames for recalibration in its own state directory.
    samples = on_twin(camera_twin, "find", "/var/lib/edgekit/samples", "-name", "*.jpg", "-user", "edgekit")
    assert samples.splitlines()


def test_a_killed_rtsp_server_is_reconnected_without_a_restart(
    camera_twin: TwinInfo, provisioned: dict, rtsp_camera: Any
) -> None:
    before = unit(camera_twin)
    last = wait_for("results", fresh_results_from(camera_twin, before["MainPID"]), 30)
    rtsp_camera.kill()
    time.sleep(3)
    rtsp_camera.start()
    wait_for(
        "results after the server came back",
        fresh_results_from(camera_twin, before["MainPID"], last["frame"] + 60),
        90,
    )
    after = unit(camera_twin)
    assert (after["MainPID"], after["NRestarts"]) == (before["MainPID"], before["NRestarts"])
    assert "reconnecting in" in journal(camera_twin)
    assert status(camera_twin, provisioned["home"])["metrics"]["counters"]["source_reconnects"] >= 1


def test_a_frozen_rtsp_server_trips_the_watchdog_and_systemd_restarts_the_service(
    camera_twin: TwinInfo, provisioned: dict, rtsp_camera: Any
) -> None:
    before = unit(camera_twin)
    wait_for("results", fresh_results_from(camera_twin, before["MainPID"]), 30)
    rtsp_camera.pause()
    try:
        # WatchdogSec=30 with no fresh frame; reconnect attempts alone do not feed it.
        wait_for("a watchdog restart", lambda: unit(camera_twin)["NRestarts"] != before["NRestarts"], 90)
    finally:
        rtsp_camera.resume()
    assert "Watchdog timeout" in on_twin(camera_twin, "journalctl", "-u", UNIT, "--no-pager", "-n", "400")

    def restarted() -> dict[str, str] | None:
        state = unit(camera_twin)
        return state if state["ActiveState"] == "active" and state["MainPID"] != before["MainPID"] else None

    after = wait_for("the restarted service", restarted, 120)
    assert after["MainPID"] != before["MainPID"]
    wait_for("results from the new process", fresh_results_from(camera_twin, after["MainPID"]), 60)


def test_sigterm_stops_the_service_cleanly(camera_twin: TwinInfo, provisioned: dict) -> None:
    wait_for("results", fresh_results_from(camera_twin, unit(camera_twin)["MainPID"]), 60)
    started = time.monotonic()
    on_twin(camera_twin, "systemctl", "stop", UNIT)
    assert time.monotonic() - started < 10
    state = unit(camera_twin)
    assert (state["ActiveState"], state["Result"], state["ExecMainStatus"]) == ("inactive", "success", "0")
    assert "stopping on signal 15" in journal(camera_twin)
