"""``edgekit.device.service`` against a fake device and a fake clock: restart, health and the first result."""

from __future__ import annotations

import json

import pytest

from edgekit.device import service
from edgekit.device.layout import RESULTS_FILE, UNIT_NAME
from edgekit.errors import ActivationFailed
from edgekit.testing import FakeClock, FakeConnection, Reply

SHOW = ["systemctl", "show", UNIT_NAME]
JOURNAL = ["journalctl", "--unit", UNIT_NAME]
TAIL = ["tail", "-n", "1", RESULTS_FILE]


def state(active: str = "active", pid: int = 42) -> Reply:
    return Reply(f"ActiveState={active}\nSubState=running\nMainPID={pid}\nStatusText=ok\nNRestarts=0\n")


def result_line(pid: int) -> Reply:
    latency = {"grab": 1.0, "pre": 2.0, "infer": 3.0, "post": 0.5, "total": 7.0}
    top = [{"index": 3, "label": "3", "score": 0.9}]
    line = {"ts": 1.5, "frame": 9, "release": "r1", "pid": pid, "latency_ms": latency, "fps": 29.5, "top": top}
    return Reply(json.dumps(line) + "\n")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(service, "time", fake)
    return fake


def test_restart_waits_for_ready_and_checks_the_unit(fake_connection: FakeConnection) -> None:
    fake_connection.on(["systemctl", "restart"])
    fake_connection.on(SHOW, state())
    service.restart(fake_connection)
    restart = fake_connection.runs[0]
    assert restart.argv == ("systemctl", "restart", UNIT_NAME) and restart.sudo
    assert restart.timeout == service.START_TIMEOUT_S
    assert service.is_active(fake_connection)


@pytest.mark.parametrize(("exit_code", "active"), [(1, "failed"), (0, "activating")])
def test_a_restart_that_does_not_end_active_fails_quoting_the_journal(
    fake_connection: FakeConnection, exit_code: int, active: str
) -> None:
    fake_connection.on(["systemctl", "restart"], Reply(exit_code=exit_code))
    fake_connection.on(SHOW, state(active))
    fake_connection.on(JOURNAL, Reply("starting\n  no camera at /dev/video0 \n"))
    with pytest.raises(ActivationFailed) as raised:
        service.restart(fake_connection)
    assert str(raised.value) == (
        f"{UNIT_NAME} did not become ready on nvidia@jetson (starting / no camera at /dev/video0); "
        f"see `journalctl -u {UNIT_NAME}` on the device."
    )
    assert fake_connection.runs[-1].sudo


def test_an_empty_journal_is_named(fake_connection: FakeConnection) -> None:
    fake_connection.on(JOURNAL)
    assert service.journal_tail(fake_connection) == "no journal output"


def test_first_result_waits_for_a_line_of_the_running_process(
    fake_connection: FakeConnection, clock: FakeClock
) -> None:
    fake_connection.on(SHOW, state(pid=42))
    # An old process's line, then a torn one, then the service's own.
    fake_connection.on(TAIL, result_line(7), Reply('{"pid": 4'), result_line(42))
    assert service.first_result(fake_connection).pid == 42
    assert clock.sleeps == [0.5, 0.5]


def test_first_result_fails_when_the_service_stops(fake_connection: FakeConnection, clock: FakeClock) -> None:
    fake_connection.on(SHOW, state(), state("failed"))
    fake_connection.on(TAIL, Reply(""))
    fake_connection.on(JOURNAL, Reply("Traceback\nRuntimeError: engine\n"))
    with pytest.raises(ActivationFailed) as raised:
        service.first_result(fake_connection)
    assert str(raised.value) == (
        f"{UNIT_NAME} stopped on nvidia@jetson (Traceback / RuntimeError: engine); see `journalctl -u {UNIT_NAME}`."
    )


def test_first_result_times_out_on_a_silent_service(fake_connection: FakeConnection, clock: FakeClock) -> None:
    fake_connection.on(SHOW, state())
    fake_connection.on(TAIL, Reply(""))
    with pytest.raises(ActivationFailed) as raised:
        service.first_result(fake_connection, timeout=5.0)
    assert str(raised.value) == (
        f"{UNIT_NAME} runs on nvidia@jetson but wrote no result within 5 s; "
        "check the camera source in /etc/edgekit/camera.json."
    )
    # It polls until just past the deadline, every half second.
    assert 5.0 < sum(clock.sleeps) <= 5.5 and set(clock.sleeps) == {0.5}
