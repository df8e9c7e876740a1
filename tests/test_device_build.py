"""``edgekit.device.build.follow_build`` against a fake device: the answer, a build that dies, a dropped link."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from edgekit.device import build
from edgekit.device.answers import BuildAnswer, GateReport
from edgekit.device.layout import release_dir
from edgekit.errors import DeviceError, DeviceUnreachable
from edgekit.testing import FakeClock, FakeConnection, Reply, Run

RID = "r1"
UNIT = build.unit_name(RID)
FOLLOW = re.compile(r"^sh -c .*journalctl", re.DOTALL)


class Unit:
    """A build unit's journal and state, answering the host's follow script as systemd would."""

    def __init__(self, journal: list[Any], states: list[str]) -> None:
        self.journal = [{"__CURSOR": f"c{n}", "MESSAGE": message} for n, message in enumerate(journal)]
        self.states = states
        self.queries: list[tuple[str, str]] = []

    def __call__(self, call: Run) -> Reply:
        invocation, cursor, unit = call.argv[4:]
        assert unit == UNIT and call.sudo
        self.queries.append((invocation, cursor))
        after = next((n + 1 for n, entry in enumerate(self.journal) if entry["__CURSOR"] == cursor), 0)
        lines = [json.dumps(entry) for entry in self.journal[after:]] if invocation else []
        active = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        state = f"ActiveState={active}\nResult=success\nExecMainStatus=0\nInvocationID=inv1\n"
        return Reply("".join(line + "\n" for line in lines) + "--state--\n" + state)


GATE = {
    "samples": 10,
    "top1_agreement": 1.0,
    "output_cosine": 0.9999,
    "max_abs_diff": 0.01,
    "accuracy": None,
    "reference_accuracy": None,
    "infer_ms_mean": 1.5,
}


def answer(**changes: Any) -> dict[str, Any]:
    """A build answer as the agent writes it (edgekit/agent/build.py)."""
    base = {"release": RID, "backend": "tensorrt", "precision": "int8", "ready_s": 3.5, "gate": GATE}
    return {**base, **changes}


def device(fake: FakeConnection, unit: Unit, answer: dict[str, Any] | None) -> None:
    fake.on(FOLLOW, unit)
    fake.on(["cat", "--", build.result_path(RID)], Reply(json.dumps(answer) if answer else "", exit_code=0))
    fake.on(["systemctl", "reset-failed", UNIT])


def test_follow_streams_the_journal_and_returns_the_answer(fake_connection: FakeConnection) -> None:
    unit = Unit(["parsing", list(b"caf\xc3\xa9 \xff")], ["active", "active", "inactive"])
    device(fake_connection, unit, answer(invocation="inv1"))
    clock, lines = FakeClock(), []

    found = build.follow_build(build.BuildWatch(fake_connection, RID), lines.append, sleep=clock.sleep)

    # Parsed at the edge into typed fields.
    assert found == BuildAnswer(
        RID, "tensorrt", "int8", 3.5, GateReport(10, 1.0, 0.9999, 0.01, None, None, 1.5), "inv1"
    )
    # journald gives invalid UTF-8 as byte values; each line comes once, the cursor moving on.
    assert lines == ["parsing", "café \ufffd"]
    assert unit.queries[0] == ("", "") and unit.queries[-1] == ("inv1", "c1")
    assert fake_connection.runs[-1].argv == ("systemctl", "reset-failed", UNIT)
    assert clock.sleeps == [build.POLL_S]


@pytest.mark.parametrize("result", ["oom-kill", "exit-code"])
def test_a_build_that_dies_without_an_answer_says_how(fake_connection: FakeConnection, result: str) -> None:
    unit = Unit([], ["inactive"])
    device(fake_connection, unit, None)
    fake_connection.on(FOLLOW, lambda call: Reply(unit(call).stdout.replace("Result=success", f"Result={result}")))

    with pytest.raises(DeviceError) as raised:
        build.follow_build(build.BuildWatch(fake_connection, RID), lambda line: None, sleep=FakeClock().sleep)

    advice = ", and give the build more memory (stop other GPU work)." if result == "oom-kill" else "."
    assert str(raised.value) == (
        f"The build on nvidia@jetson stopped without an answer (result {result}, exit status 0); "
        f"see `journalctl -u {UNIT}` there{advice}"
    )


def test_a_build_error_is_reported_in_its_own_words(fake_connection: FakeConnection) -> None:
    device(fake_connection, Unit([], ["inactive"]), {"error": {"message": "the engine does not fit in memory"}})
    with pytest.raises(DeviceError, match=r"^The build on nvidia@jetson failed: the engine does not fit in memory$"):
        build.follow_build(build.BuildWatch(fake_connection, RID), lambda line: None, sleep=FakeClock().sleep)


def test_a_build_error_raises_the_host_exception_of_its_kind(fake_connection: FakeConnection) -> None:
    from edgekit.errors import AgentCalibrationError

    message = "calib.npy holds float16 images of shape [1, 8, 8], but the network input 'image' takes float32"
    device(fake_connection, Unit([], ["inactive"]), {"error": {"kind": "calibration", "message": message}})
    with pytest.raises(AgentCalibrationError, match="float16 images"):
        build.follow_build(build.BuildWatch(fake_connection, RID), lambda line: None, sleep=FakeClock().sleep)


def test_a_dropped_link_is_retried_until_it_comes_back(
    fake_connection: FakeConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(build, "time", clock)
    unit = Unit(["before", "after"], ["active", "active", "inactive"])
    device(fake_connection, unit, answer(ready_s=1.0))
    drops = iter([False, True, True, False])

    def flaky(call: Run) -> Reply:
        if next(drops, False):
            raise DeviceUnreachable("The link to nvidia@jetson dropped (EOF)")
        return unit(call)

    fake_connection.on(FOLLOW, flaky)
    notes: list[str] = []
    lines: list[str] = []

    found = build.follow_build(build.BuildWatch(fake_connection, RID), lines.append, notes.append, clock.sleep)

    assert found.ready_s == 1.0 and lines == ["before", "after"]
    assert notes == [
        "link dropped (The link to nvidia@jetson dropped (EOF)); reconnecting",
        "link dropped (The link to nvidia@jetson dropped (EOF)); reconnecting",
        "reconnected; following the build again",
    ]
    # The back-off grows with the time the link has been down.
    assert clock.sleeps[:2] == [1.0, 2.0]


def test_a_link_that_stays_down_gives_up_leaving_the_build_running(
    fake_connection: FakeConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(build, "time", clock)

    def down(call: Run) -> Reply:
        raise DeviceUnreachable("The link to nvidia@jetson dropped (EOF)")

    fake_connection.on(FOLLOW, down)
    with pytest.raises(DeviceUnreachable) as raised:
        build.follow_build(build.BuildWatch(fake_connection, RID), lambda line: None, sleep=clock.sleep)
    assert str(raised.value) == (
        f"The link to nvidia@jetson dropped while building the model (it did not come back within "
        f"{build.RECONNECT_S:.0f} s); the build goes on on the device; re-run the same command to reattach to it."
    )
    assert max(clock.sleeps) == 10.0 and sum(clock.sleeps) > build.RECONNECT_S


def test_a_build_unloaded_before_its_invocation_was_seen_still_shows_its_last_lines(
    fake_connection: FakeConnection,
) -> None:
    unit = Unit(["done"], ["inactive"])
    device(fake_connection, unit, answer(ready_s=0.2, invocation="inv0"))
    fake_connection.on(FOLLOW, lambda call: Reply(unit(call).stdout.replace("InvocationID=inv1", "InvocationID=")))
    lines: list[str] = []
    build.follow_build(build.BuildWatch(fake_connection, RID), lines.append, sleep=FakeClock().sleep)
    assert unit.queries[-1] == ("inv0", "") and lines == ["done"]


def test_a_malformed_answer_is_one_sentence(fake_connection: FakeConnection) -> None:
    device(fake_connection, Unit([], ["inactive"]), answer(gate={**GATE, "samples": "ten"}))
    with pytest.raises(DeviceError, match=r"^The device's build answer has gate.samples = 'ten', not an int; .*re-run"):
        build.follow_build(build.BuildWatch(fake_connection, RID), lambda line: None, sleep=FakeClock().sleep)


def started_agent_argv(fake: FakeConnection, **options: Any) -> tuple[str, ...]:
    """The agent's own command line in the ``systemd-run`` that ``start_build`` runs."""
    fake.on(FOLLOW, Unit([], ["inactive"]))
    fake.on(["systemctl"])
    fake.on(["rm"])
    fake.on(["systemd-run"])
    _, started = build.start_build(fake, RID, **options)
    assert started
    [run] = [call for call in fake.runs if call.argv[0] == "systemd-run"]
    return run.argv[run.argv.index("--") + 1 :]


def test_a_build_gates_the_serving_release_too_when_it_is_another(fake_connection: FakeConnection) -> None:
    argv = started_agent_argv(fake_connection, baseline="r0")
    assert argv[-4:] == ("--result", build.result_path(RID), "--baseline-release-dir", release_dir("r0"))


@pytest.mark.parametrize("baseline", [None, RID])
def test_a_build_without_another_serving_release_compares_with_none(
    fake_connection: FakeConnection, baseline: str | None
) -> None:
    argv = started_agent_argv(fake_connection, baseline=baseline)
    assert "--baseline-release-dir" not in argv
    assert argv[-2:] == ("--result", build.result_path(RID))
