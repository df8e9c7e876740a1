"""A re-provision with nothing changed reads the device once and changes nothing there; when
anything differs (the threshold, the site config, the release's state, the service, TensorRT)
it takes the stages again: upload, install, build, gate, activate."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jetson_facts
import pytest
from test_provision_stages import blob

import edgekit.provision as stages
from edgekit.device import install
from edgekit.device.facts import DeviceFacts
from edgekit.device.layout import CONFIG_FILE, UNIT_FILE, UNIT_NAME
from edgekit.device.trial import TrialPolicy
from edgekit.provision import ProvisionResult, ReleasePlan, Reporter
from edgekit.testing import FakeConnection, Reply

RID = "r1"
SERVING = re.compile(r"agent\.pyz lifecycle serving ")
GATE = {
    "samples": 360,
    "top1_agreement": 0.9972,
    "output_cosine": 0.9999,
    "max_abs_diff": 0.7,
    "accuracy": None,
    "reference_accuracy": None,
    "infer_ms_mean": 0.02,
}
LATENCY = {"grab": 33.0, "pre": 0.2, "infer": 0.2, "post": 0.1, "total": 33.5}
RESULT = {"ts": 1.0, "frame": 7, "release": RID, "pid": 42, "latency_ms": LATENCY, "fps": 30.0, "top": []}
# What the jp62-orin-nano facts say: TensorRT 10.3.0 on compute capability 8.7, L4T 36.4.7.
ENGINE = {"key": "k" * 64, "tensorrt": "10.3.0", "compute_capability": "8.7", "l4t": "36.4.7", "release": RID}


class Staged(Exception):
    """Provision went on to upload: it took the stages."""


@pytest.fixture
def release(tmp_path: Path) -> ReleasePlan:
    return ReleasePlan(
        release=RID,
        python="3.10.12",
        manifest={"release": RID},
        files={"model.int8.onnx": blob(tmp_path, "model.int8.onnx"), "release.json": blob(tmp_path, "release.json")},
        wheels=[blob(tmp_path, "onnxruntime-1.23.2-cp310-cp310-manylinux_2_27_aarch64.whl")],
        camera_json=blob(tmp_path, "camera.json"),
        unit=blob(tmp_path, UNIT_NAME),
        gpu_dropin=None,
    )


def plan(backend: str) -> Any:
    return SimpleNamespace(
        target="nvidia@jetson",
        checks=[],
        facts=DeviceFacts.parse(jetson_facts.facts("jp62-orin-nano")),
        device=SimpleNamespace(model="NVIDIA Jetson Orin Nano", l4t="36.4.7"),
        settings=SimpleNamespace(
            profile="orin-nano-8gb-jp62", build=SimpleNamespace(backend=backend, precision="int8")
        ),
        bundle=SimpleNamespace(model=SimpleNamespace(task="classify", detect=None), mixed_precision=None),
    )


def serving(release: ReleasePlan, backend: str = "onnxruntime", **changes: Any) -> dict[str, Any]:
    """The agent's ``lifecycle serving`` answer for ``release`` serving as provision left it."""
    build = {"release": RID, "backend": backend, "precision": "int8", "ready_s": 0.1, "gate": GATE}
    answer = {
        "current": RID,
        "previous": None,
        "committed": RID,
        "current_state": "committed",
        "trial": None,
        "last_rollback": None,
        "task": "classify",
        "gate": GATE,
        "committed_releases": [RID],
        "build": {**build, "invocation": "i1", "engine": ENGINE if backend == "tensorrt" else None},
        "release_json": release.files["release.json"].digest,
        "files": install.system_files(release.unit, release.camera_json, release.gpu_dropin),
        "venv": install.venv_env(release.python, release.wheels),
        "service": {"ActiveState": "active", "MainPID": "42", "UnitFileState": "enabled"},
        "result": json.dumps(RESULT),
    }
    return {**answer, **changes}


def provision(
    device: FakeConnection,
    release: ReleasePlan,
    monkeypatch: pytest.MonkeyPatch,
    answer: dict[str, Any] | Reply,
    steps: list[str],
    threshold: float | None = None,
    backend: str = "onnxruntime",
) -> ProvisionResult:
    def staged(*args: Any) -> None:
        raise Staged

    monkeypatch.setattr(stages, "plan_release", lambda plan, request: release)
    monkeypatch.setattr(stages, "upload", staged)
    device.on(SERVING, answer if isinstance(answer, Reply) else Reply(json.dumps(answer)))
    request = SimpleNamespace(gate_threshold=threshold, trial=TrialPolicy())
    return stages.provision(device, plan(backend), request, Reporter(step=steps.append))


@pytest.mark.parametrize("backend", ["onnxruntime", "tensorrt"])
def test_a_release_serving_as_it_is_is_not_sent_built_gated_or_restarted(
    fake_connection, release, monkeypatch, backend
):
    steps: list[str] = []
    result = provision(fake_connection, release, monkeypatch, serving(release, backend), steps, backend=backend)
    assert (result.unchanged, result.changed, result.uploaded, result.release) == (True, False, [], RID)
    # The figures its build recorded, held to today's threshold.
    assert (result.gate.top1_agreement, result.gate.threshold, result.gate.measure) == (0.9972, 0.99, "top-1 agreement")
    assert (result.first_result.frame, result.fps) == (7, 30.0)
    # One read of the device, and nothing else: no upload, build unit, trial or restart.
    assert [run.line for run in fake_connection.runs] == [
        f"/var/lib/edgekit/venv/bin/python /var/lib/edgekit/current/agent.pyz lifecycle serving "
        f"--state-dir /var/lib/edgekit {UNIT_FILE} {CONFIG_FILE} {install.GPU_DROPIN}"
    ]
    assert fake_connection.runs[0].sudo and fake_connection.puts == []
    assert steps[-1] == "reading what the device serves"
    assert result.to_dict()["unchanged"] is True


def test_a_lower_threshold_the_figures_pass_changes_nothing_either(fake_connection, release, monkeypatch):
    result = provision(fake_connection, release, monkeypatch, serving(release), [], threshold=0.95)
    assert result.unchanged and result.gate.threshold == 0.95


def test_a_result_from_another_process_is_waited_for_as_after_a_provision(fake_connection, release, monkeypatch):
    older = json.dumps(dict(RESULT, pid=41, frame=3))
    fake_connection.on(["systemctl", "show", UNIT_NAME], Reply("ActiveState=active\nMainPID=42\n"))
    fake_connection.on(["tail", "-n", "1"], Reply(json.dumps(RESULT) + "\n"))
    result = provision(fake_connection, release, monkeypatch, serving(release, result=older), [])
    assert result.unchanged and result.first_result.pid == 42


TRIAL = {
    "release": RID,
    "fallback": "r0",
    "started": 1.0,
    "deadline": 121.0,
    "results": 30,
    "max_restarts": 3,
    "starts": 1,
    "produced": 4,
}
OTHER = "0" * 64
TRT_BUILD = {"release": RID, "backend": "tensorrt", "precision": "int8", "ready_s": 1.0, "gate": GATE}


@pytest.mark.parametrize(
    ("changes", "threshold", "backend", "why"),
    [
        ({}, 0.998, "onnxruntime", "its recorded top-1 agreement (99.7%) does not pass the 0.998 threshold"),
        ({"files": {CONFIG_FILE: OTHER}}, None, "onnxruntime", f"{CONFIG_FILE} differs"),
        ({"files": {UNIT_FILE: OTHER}}, None, "onnxruntime", f"{UNIT_FILE} differs"),
        ({"release_json": OTHER}, None, "onnxruntime", "its release.json (the build settings) differs"),
        ({"venv": "/var/lib/edgekit/venvs/other/env"}, None, "onnxruntime", "the runtime differs"),
        ({"current_state": "on trial", "trial": TRIAL}, None, "onnxruntime", f"release {RID} is on trial"),
        ({"current_state": "failed trial"}, None, "onnxruntime", "it is not committed (failed trial)"),
        ({"current_state": None}, None, "onnxruntime", "it is not committed (never on trial)"),
        ({"service": {"ActiveState": "failed", "MainPID": "0"}}, None, "onnxruntime", "the camera service is failed"),
        (
            {"service": {"ActiveState": "active", "MainPID": "42", "UnitFileState": "disabled"}},
            None,
            "onnxruntime",
            "the camera service is disabled",
        ),
        ({"build": {"error": {"kind": "build", "message": "oom"}}}, None, "onnxruntime", "recorded no gate figures"),
        ({"build": None}, None, "onnxruntime", "its build recorded no gate figures"),
        # Built by an agent that recorded no engine, or before TensorRT was upgraded.
        ({"build": TRT_BUILD}, None, "tensorrt", "TensorRT, the GPU or L4T changed since its engine was built"),
        (
            {"build": {**TRT_BUILD, "engine": dict(ENGINE, tensorrt="10.2.0")}},
            None,
            "tensorrt",
            "TensorRT, the GPU or L4T changed since its engine was built",
        ),
    ],
)
def test_anything_that_differs_takes_the_stages_again(
    fake_connection, release, monkeypatch, changes, threshold, backend, why
):
    answer = serving(release, backend)
    if "files" in changes:
        changes = {"files": {**answer["files"], **changes["files"]}}
    steps: list[str] = []
    with pytest.raises(Staged):
        provision(fake_connection, release, monkeypatch, {**answer, **changes}, steps, threshold, backend)
    assert steps[-1].startswith(f"release {RID} is current, but ") and steps[-1].endswith("; provisioning it again")
    assert why in steps[-1]


@pytest.mark.parametrize(
    "answer",
    [
        # Another release serves: a new one goes through the stages, without a word about it.
        {"current": "r0"},
        # Nothing serves yet: no venv, no current release, no agent to ask.
        Reply("", "sudo: /var/lib/edgekit/venv/bin/python: command not found", 1),
        # The current release's agent is older than the question.
        Reply("", "agent.pyz lifecycle: error: argument ACTION: invalid choice: 'serving'", 2),
        # An answer torn or of another shape.
        Reply('{"current": "r1", "files": "?"}\n'),
    ],
)
def test_a_device_serving_another_release_or_none_takes_the_stages(fake_connection, release, monkeypatch, answer):
    steps: list[str] = []
    reply = answer if isinstance(answer, Reply) else {**serving(release), **answer}
    with pytest.raises(Staged):
        provision(fake_connection, release, monkeypatch, reply, steps)
    assert not any("is current" in step for step in steps)
