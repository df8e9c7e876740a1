"""End to end: the on-device build runs as a transient systemd unit that outlives the SSH link."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest
from test_provision_twin import edgekit, on_twin, provision_args

from edgekit.api import Endpoint
from edgekit.device import build
from edgekit.device.build import follow_build, result_path, start_build
from edgekit.errors import DeviceError, DeviceUnreachable
from edgekit.ssh.seam import Connection
from edgekit.twin import TwinInfo, twin_exec

pytestmark = pytest.mark.e2e


def provision(twin: TwinInfo, tmp_path: Path) -> tuple[str, str]:
    """Provision the twin with the CLI; the release id and what the CLI showed."""
    done = edgekit(*provision_args(twin, tmp_path / "known_hosts", "--accept-new-host-key", "--json"), home=tmp_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["release"], done.stderr


def connect(twin: TwinInfo, tmp_path: Path) -> contextlib.AbstractContextManager[Connection]:
    """The same connection the public API opens, trusting the key the provision recorded."""
    endpoint = Endpoint(twin.target, Path(twin.identity), tmp_path / "known_hosts", use_ssh_config=False)
    return endpoint.connect()


def test_the_build_survives_a_dropped_link_and_is_reattached(build_twin: TwinInfo, tmp_path: Path) -> None:
    twin = build_twin
    rid, stderr = provision(twin, tmp_path)
    # The CLI showed the build unit's own lines while it ran.
    assert "device: model ready" in stderr
    with connect(twin, tmp_path) as conn:
        watch, started = start_build(conn, rid)
        assert started and watch.invocation
        # Hold the build where it is, so it is surely still running when the host comes back.
        on_twin(twin, "systemctl", "kill", "--signal=SIGSTOP", watch.unit)
        again, started_again = start_build(conn, rid)
        assert not started_again
        assert again.invocation == watch.invocation

        # The link drops: sshd goes away with every session, while the build unit stays.
        on_twin(twin, "systemctl", "stop", "ssh.service")
        twin_exec(twin.name, ["pkill", "-x", "sshd"])
        assert on_twin(twin, "systemctl", "is-active", watch.unit) == "active"
        drops: list[str] = []

        def on_drop(text: str) -> None:
            drops.append(text)
            if len(drops) == 1:
                on_twin(twin, "systemctl", "start", "ssh.service")
                on_twin(twin, "systemctl", "kill", "--signal=SIGCONT", watch.unit)

        lines: list[str] = []
        answer = follow_build(again, lines.append, on_drop=on_drop, sleep=lambda seconds: None)
    assert drops[0].startswith("link dropped") and drops[-1].startswith("reconnected")
    assert answer.invocation == watch.invocation
    assert answer.gate.samples == 360 and answer.gate.top1_agreement >= 0.99
    assert any(line.startswith("preparing release") for line in lines), lines
    assert any(line.startswith("model ready") for line in lines)
    # It ran as the unprivileged service user, and systemd forgot the finished unit.
    assert on_twin(twin, "stat", "-c", "%U", result_path(rid)) == "edgekit"
    assert twin_exec(twin.name, ["systemctl", "is-failed", "--quiet", watch.unit]).returncode != 0


def test_a_paused_service_is_started_again_by_the_build_unit_itself(build_twin: TwinInfo, tmp_path: Path) -> None:
    twin = build_twin
    rid, _ = provision(twin, tmp_path)
    service = "edgekit-camera.service"
    before = on_twin(twin, "systemctl", "show", "--property=MainPID", "--value", service)
    with connect(twin, tmp_path) as conn:
        watch, started = start_build(conn, rid, restart_after=service)
        assert started
        # Paused for the build: on a 4 GB Jetson the engine build needs the service's memory.
        assert twin_exec(twin.name, ["systemctl", "is-active", "--quiet", service]).returncode != 0
        # The host goes away; the unit brings the service back on its own when it ends.
    for _ in range(60):
        if twin_exec(twin.name, ["systemctl", "is-active", "--quiet", service]).returncode == 0:
            break
        time.sleep(0.5)
    assert on_twin(twin, "systemctl", "is-active", service) == "active"
    assert on_twin(twin, "systemctl", "show", "--property=MainPID", "--value", service) != before
    assert json.loads(on_twin(twin, "cat", result_path(rid)))["gate"]["samples"] == 360


def test_a_killed_build_and_a_link_that_stays_down_are_explained(
    build_twin: TwinInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    twin = build_twin
    rid, _ = provision(twin, tmp_path)
    with connect(twin, tmp_path) as conn:
        watch, _ = start_build(conn, rid)
        on_twin(twin, "systemctl", "kill", "--signal=SIGSTOP", watch.unit)
        # The link goes down for longer than the host waits: it says the build goes on.
        monkeypatch.setattr(build, "RECONNECT_S", 0.5)
        on_twin(twin, "systemctl", "stop", "ssh.service")
        twin_exec(twin.name, ["pkill", "-x", "sshd"])
        try:
            reattach = "the build goes on on the device; re-run the same command to reattach"
            with pytest.raises(DeviceUnreachable, match=reattach):
                follow_build(watch, lambda line: None, sleep=lambda seconds: time.sleep(0.2))
        finally:
            on_twin(twin, "systemctl", "start", "ssh.service")
        assert on_twin(twin, "systemctl", "is-active", watch.unit) == "active"
        # Killed on the device (the kernel's OOM killer does the same): no answer, and the host says so.
        on_twin(twin, "systemctl", "kill", "--signal=SIGKILL", watch.unit)
        with pytest.raises(DeviceError, match=r"stopped without an answer \(result signal"):
            follow_build(watch, lambda line: None)
    assert twin_exec(twin.name, ["test", "-e", result_path(rid)]).returncode != 0
