"""Provisioning's stages on a fake device: what build_and_gate removes, when activate
restarts the service and how it switches back, and what plan_release decides alone."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jetson_facts
import pytest

import edgekit.provision as stages
from edgekit.agent import lifecycle
from edgekit.agent.__main__ import main as agent_main
from edgekit.agent.config import DetectConfig
from edgekit.device.answers import BuildAnswer, GateReport
from edgekit.device.blobs import Blob
from edgekit.device.facts import DeviceFacts
from edgekit.device.layout import CURRENT_LINK, RELEASES_DIR, UNIT_NAME
from edgekit.device.trial import TrialPolicy
from edgekit.device.wire import parse
from edgekit.errors import ActivationFailed, DeviceError, DeviceUnreachable, GateFailed, UsageError
from edgekit.provision import Installed, ReleasePlan, Reporter, activate, build_and_gate, roll_back
from edgekit.testing import FakeConnection, Reply, Run

NEW, OLD = "r-new", "r-old"


def blob(tmp_path: Path, name: str) -> Blob:
    path = tmp_path / name
    path.write_text(name)
    return Blob.of(path)


@pytest.fixture
def release(tmp_path: Path) -> ReleasePlan:
    return ReleasePlan(
        release=NEW,
        python="3.10.12",
        manifest={"release": NEW},
        files={"model.onnx": blob(tmp_path, "model.onnx")},
        wheels=[],
        camera_json=blob(tmp_path, "camera.json"),
        unit=blob(tmp_path, "unit"),
        gpu_dropin=None,
    )


def plan(task: str = "classify") -> Any:
    settings = SimpleNamespace(build=SimpleNamespace(precision="int8"), profile="twin")
    detect = DetectConfig("yolov8") if task == "detect" else None
    return SimpleNamespace(settings=settings, bundle=SimpleNamespace(model=SimpleNamespace(task=task, detect=detect)))


def serving(device: FakeConnection, rid: str | None) -> None:
    device.on(["readlink", CURRENT_LINK], Reply(f"{RELEASES_DIR}/{rid}\n" if rid else ""))


def removed(device: FakeConnection) -> list[str]:
    return [run.argv[-1] for run in device.runs if run.argv[:2] == ("rm", "-rf")]


REFUSE = re.compile(r"agent\.pyz lifecycle refuse ")
NOTHING = {
    "current": OLD,
    "previous": None,
    "committed": OLD,
    "current_state": "committed",
    "trial": None,
    "last_rollback": None,
}


def refused_as_failed_gate(device: FakeConnection) -> list[tuple[str, str]]:
    """(release, reason) of each release the host recorded as refused by the gate."""
    runs = [run.argv for run in device.runs if REFUSE.search(run.line)]
    return [(argv[argv.index("--release") + 1], argv[argv.index("--reason") + 1]) for argv in runs]


# -- build_and_gate --------------------------------------------------------------------------


def gate_then(monkeypatch: pytest.MonkeyPatch, outcome: Any) -> None:
    def build(conn: Any, rid: str, settings: Any, reporter: Reporter, baseline: str | None) -> BuildAnswer:
        if isinstance(outcome, BaseException):
            raise outcome
        gate = parse(
            GateReport, {"max_abs_diff": 0.1, "infer_ms_mean": 1.0, "output_cosine": 0.99, **outcome}, "a gate"
        )
        return BuildAnswer(rid, "onnxruntime", "int8", 0.1, gate, invocation=None)

    monkeypatch.setattr(stages, "_build_and_gate", build)


def test_a_release_that_gates_is_kept_with_its_measure(fake_connection, release, monkeypatch):
    gate_then(monkeypatch, {"samples": 360, "top1_agreement": 0.997})
    serving(fake_connection, OLD)
    gate = build_and_gate(fake_connection, plan(), release, Installed(False, True), 0.99, Reporter())
    assert (gate.samples, gate.top1_agreement, gate.threshold, gate.measure) == (360, 0.997, 0.99, "top-1 agreement")
    assert removed(fake_connection) == []


def test_a_failed_build_removes_the_new_release(fake_connection, release, monkeypatch):
    gate_then(monkeypatch, DeviceError("The build failed; see its journal."))
    serving(fake_connection, OLD)
    fake_connection.on(["rm", "-rf"])
    with pytest.raises(DeviceError, match="build failed"):
        build_and_gate(fake_connection, plan(), release, Installed(False, True), 0.99, Reporter())
    assert removed(fake_connection) == [f"{RELEASES_DIR}/{NEW}"]


def test_a_dropped_link_keeps_the_release_for_the_rerun_to_attach(fake_connection, release, monkeypatch):
    gate_then(monkeypatch, DeviceUnreachable("The link dropped; re-run to reattach."))
    with pytest.raises(DeviceUnreachable):
        build_and_gate(fake_connection, plan(), release, Installed(False, True), 0.99, Reporter())
    assert fake_connection.runs == []


def test_a_release_that_already_existed_is_not_removed_when_its_build_fails(fake_connection, release, monkeypatch):
    gate_then(monkeypatch, DeviceError("The build failed."))
    with pytest.raises(DeviceError):
        build_and_gate(fake_connection, plan(), release, Installed(False, False), 0.99, Reporter())
    assert removed(fake_connection) == []


def test_a_detector_that_lost_its_boxes_is_refused_by_matched_boxes_and_kept_as_failed_gate(
    fake_connection, release, monkeypatch
):
    # The defect this measure exists for: the output follows FP32 closely, and no box is left.
    lost = {"box_f1": 0.0, "box_precision": 1.0, "box_recall": 0.0, "boxes": 0, "reference_boxes": 34}
    gate_then(monkeypatch, {"samples": 64, "top1_agreement": 0.08, "output_cosine": 0.996, **lost})
    serving(fake_connection, OLD)
    fake_connection.on(REFUSE, Reply(json.dumps(NOTHING)))
    with pytest.raises(GateFailed) as refused:
        build_and_gate(fake_connection, plan("detect"), release, Installed(False, False), 0.9, Reporter())
    assert str(refused.value).startswith(
        "The int8 model's matched-box F1 with FP32 is 0.0% on 64 held-out samples (precision 100.0%, recall 0.0%: "
        "0 boxes where FP32 finds 34), below the 90% gate; lost boxes come from calibration images that do not "
        "show the objects or from head layers that need a higher precision"
    )
    # Kept for inspection, with the refusal as its reason; never switched in.
    assert removed(fake_connection) == [] and refused_as_failed_gate(fake_connection) == [(NEW, str(refused.value))]


def test_a_detector_whose_fp32_finds_nothing_cannot_pass(fake_connection, release, monkeypatch):
    nothing = {"box_f1": None, "box_precision": 1.0, "box_recall": None, "boxes": 0, "reference_boxes": 0}
    gate_then(monkeypatch, {"samples": 64, "top1_agreement": 1.0, "output_cosine": 1.0, **nothing})
    serving(fake_connection, OLD)
    fake_connection.on(REFUSE, Reply(json.dumps(NOTHING)))
    with pytest.raises(GateFailed, match=r"^FP32 finds no box in the 64 held-out samples \(at confidence 0\.25\)"):
        build_and_gate(fake_connection, plan("detect"), release, Installed(False, False), 0.9, Reporter())


def test_a_raw_head_is_refused_with_its_cosine_and_snr(fake_connection, release, monkeypatch):
    gate_then(monkeypatch, {"samples": 64, "top1_agreement": 1.0, "output_cosine": 0.95, "snr_db": 9.5})
    serving(fake_connection, OLD)
    fake_connection.on(REFUSE, Reply(json.dumps(NOTHING)))
    with pytest.raises(
        GateFailed, match=r"cosine similarity with FP32 is 0\.9500 on 64 held-out samples \(SNR 9\.5 dB\)"
    ):
        build_and_gate(fake_connection, plan("raw"), release, Installed(False, False), 0.99, Reporter())


def test_the_serving_release_is_never_removed_nor_marked(fake_connection, release, monkeypatch):
    gate_then(monkeypatch, {"samples": 360, "top1_agreement": 0.5})
    serving(fake_connection, NEW)
    with pytest.raises(GateFailed):
        build_and_gate(fake_connection, plan(), release, Installed(False, True), 0.99, Reporter())
    assert removed(fake_connection) == [] and refused_as_failed_gate(fake_connection) == []


# -- activate ------------------------------------------------------------------------------------

SYSTEM = re.compile(r"^sh -c .* /etc/systemd/system/", re.S)
STATE = ["systemctl", "show", UNIT_NAME]


class Device:
    """A fake device whose ``agent.pyz lifecycle`` answers are the real agent's, run on a state
    folder of the test's own, with its systemd answering from ``active`` and its camera service
    writing ``writes`` results for the release it starts."""

    def __init__(self, fake: FakeConnection, state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fake, self.state = fake, state
        self.active, self.writes, self.ready = True, 40, True
        for rid in (OLD, NEW):
            (state / "releases" / rid).mkdir(parents=True)
            (state / "releases" / rid / "release.json").write_text("{}")
        (state / "results").mkdir()
        # The device's site config, in the state folder rather than this machine's /etc.
        self.site_config = state / "camera.json"
        monkeypatch.setattr(lifecycle, "SITE_CONFIG", str(self.site_config))
        monkeypatch.setattr(lifecycle, "_systemctl", self.systemctl)
        monkeypatch.setattr(lifecycle, "_systemctl_run", lambda *args: None)
        fake.on(re.compile(r"agent\.pyz lifecycle "), self.agent)
        fake.on(STATE, lambda run: Reply(self.systemctl("show")))
        fake.on(["systemctl", "restart"], self.restart)
        fake.on(["journalctl"], Reply("Traceback ...\nValueError: the model cannot be loaded\n"))
        fake.on(["readlink", CURRENT_LINK], lambda run: Reply(f"{RELEASES_DIR}/{self.link('current')}\n"))

    def systemctl(self, *args: str) -> str:
        if args and args[0] == "restart":
            self.serve()
        return (
            f"ActiveState={'active' if self.active else 'failed'}\nSubState=running\nExecMainCode=1\nExecMainStatus=1\n"
        )

    def agent(self, run: Run) -> Reply:
        argv = list(run.argv[run.argv.index("lifecycle") :])
        if "--state-dir" not in argv:
            argv += ["--state-dir", str(self.state)]
        argv[argv.index("--state-dir") + 1] = str(self.state)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = agent_main(argv)
        return Reply(out.getvalue(), exit_code=code)

    def restart(self, run: Run) -> Reply:
        self.serve()
        return Reply(exit_code=0 if self.active else 1)

    def serve(self) -> None:
        """The service started on ``current``: it writes its results, or the new release fails."""
        rid = os.path.basename(os.readlink(self.state / "current"))
        self.active = self.ready or rid != NEW
        with open(self.state / "results" / "results.jsonl", "a") as out:
            for frame in range(self.writes if rid == NEW else 40):
                out.write(json.dumps({"ts": time.time(), "frame": frame, "release": rid}) + "\n")

    def link(self, name: str) -> str:
        return os.path.basename(os.readlink(self.state / name))

    def committed(self, rid: str) -> None:
        """``rid`` serving and committed, as an earlier provision left it."""
        (self.state / "current").symlink_to(self.state / "releases" / rid)
        records = self.state / "lifecycle" / "releases"
        records.mkdir(parents=True)
        (records / f"{rid}.json").write_text(json.dumps({"state": "committed"}))
        (self.state / "committed").symlink_to(self.state / "releases" / rid)


@pytest.fixture
def on_device(fake_connection: FakeConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Device:
    fake_connection.on(SYSTEM, Reply("same\n"))
    return Device(fake_connection, tmp_path / "state", monkeypatch)


def restarts(fake: FakeConnection) -> int:
    return sum(run.argv[:2] == ("systemctl", "restart") for run in fake.runs)


QUICK = TrialPolicy(results=30, deadline_s=60.0, max_restarts=3)


def test_a_committed_release_serving_with_nothing_changed_is_left_alone(on_device, release):
    on_device.committed(NEW)
    assert activate(on_device.fake, release, Reporter(), policy=QUICK) is False
    assert restarts(on_device.fake) == 0


@pytest.mark.parametrize(
    ("changed", "serving_rid", "restart"), [(True, NEW, False), (False, OLD, False), (False, NEW, True)]
)
def test_a_change_is_tried_then_committed(on_device, release, changed, serving_rid, restart):
    on_device.fake.on(SYSTEM, Reply("changed\n" if changed else "same\n"))
    on_device.committed(serving_rid)
    steps: list[str] = []
    assert activate(on_device.fake, release, Reporter(step=steps.append), restart=restart, policy=QUICK) is True
    assert (on_device.link("current"), on_device.link("committed")) == (NEW, NEW)
    assert restarts(on_device.fake) == 1
    assert any(step.startswith("starting the service on trial: READY, then 30 results") for step in steps)


def test_a_release_that_sends_no_ready_is_rolled_back_with_the_reason(on_device, release):
    on_device.committed(OLD)
    on_device.ready = False
    with pytest.raises(ActivationFailed) as refused:
        activate(on_device.fake, release, Reporter(), policy=QUICK)
    message = str(refused.value)
    assert message == (
        f"Release {NEW} was rolled back on nvidia@jetson because it sent no READY (Traceback ... / ValueError: the "
        f"model cannot be loaded); release {OLD} is serving again (see `edgekit logs nvidia@jetson`)."
    )
    # The service's own lines (its error), not systemd's about the failed start.
    journals = [run.argv for run in on_device.fake.runs if run.argv[0] == "journalctl"]
    assert any(argv[argv.index("--identifier") + 1] == "edgekit-camera" for argv in journals if "--identifier" in argv)
    assert (on_device.link("current"), on_device.link("previous"), on_device.link("committed")) == (OLD, NEW, OLD)


def test_a_release_that_writes_too_few_results_is_rolled_back_at_its_deadline(on_device, release):
    on_device.committed(OLD)
    on_device.writes = 3
    with pytest.raises(
        ActivationFailed,
        match=f"it wrote only 3 of the 30 results it needed before its deadline; release {OLD} is serving again",
    ):
        activate(on_device.fake, release, Reporter(), policy=TrialPolicy(results=30, deadline_s=0.0))
    assert on_device.link("current") == OLD


def test_a_first_release_that_fails_has_nothing_to_go_back_to(on_device, release):
    on_device.ready = False
    with pytest.raises(ActivationFailed, match="there is no committed release to go back to, so it stays current"):
        activate(on_device.fake, release, Reporter(), policy=QUICK)
    assert on_device.link("current") == NEW


def test_a_rollback_goes_back_to_the_previous_release_through_a_trial(on_device, release):
    on_device.committed(OLD)
    on_device.site_config.write_text('{"source": "new.avi"}')
    activate(on_device.fake, release, Reporter(), policy=QUICK)
    # What the old release went on trial with comes back with it: its camera source.
    configs = on_device.state / "lifecycle" / "configs"
    (configs / f"{OLD}.json").write_text('{"source": "old.avi"}')
    done = roll_back(on_device.fake, None, QUICK, Reporter())
    assert on_device.site_config.read_text() == '{"source": "old.avi"}'
    assert (configs / f"{NEW}.json").read_text() == '{"source": "new.avi"}'
    assert (done.target, done.left, done.lifecycle.current, done.lifecycle.committed) == (OLD, NEW, OLD, OLD)
    assert on_device.link("previous") == NEW and restarts(on_device.fake) == 2
    # And forth again, by name.
    assert roll_back(on_device.fake, NEW, QUICK, Reporter()).lifecycle.current == NEW


def test_a_rollback_target_must_have_proved_healthy(on_device, release):
    on_device.committed(OLD)
    on_device.writes = 3
    with pytest.raises(ActivationFailed):
        activate(on_device.fake, release, Reporter(), policy=TrialPolicy(results=30, deadline_s=0.0))
    # NEW was rolled back: it is `previous` now, and no target.
    with pytest.raises(UsageError, match=f"Release {NEW} on nvidia@jetson never proved healthy on trial"):
        roll_back(on_device.fake, None, QUICK, Reporter())
    with pytest.raises(UsageError, match=f"Release {OLD} is already current"):
        roll_back(on_device.fake, OLD, QUICK, Reporter())


# -- plan_release ------------------------------------------------------------------------------


def test_plan_release_decides_everything_without_the_device(tmp_path, monkeypatch):
    from edgekit.profiles import load_profile
    from edgekit.settings import merge_settings
    from edgekit.source import SourceSpec

    wheel = tmp_path / "onnxruntime-1.19.2-cp310-cp310-manylinux_2_27_aarch64.whl"
    wheel.write_bytes(b"wheel")
    monkeypatch.setattr(stages, "fetch_wheels", lambda python, machine, glibc: [wheel])
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx")
    bundle = SimpleNamespace(
        directory=tmp_path,
        files={"model.onnx": model},
        model=SimpleNamespace(task="classify", detect=None, labels=("a", "b"), sha256="m" * 64, preprocess=None),
        calibration_sha256="c" * 64,
    )
    monkeypatch.setattr(stages, "release_manifest", lambda bundle, settings, rid: {"release": rid})
    facts = DeviceFacts.parse(jetson_facts.facts("jp62-orin-nano"))
    request = SimpleNamespace(source=SourceSpec("rtsp://cam/stream"), outputs={}, sample_every_s=0.5)

    def planned(profile: str) -> ReleasePlan:
        settings = merge_settings(load_profile(profile))
        return stages.plan_release(SimpleNamespace(bundle=bundle, settings=settings, facts=facts), request)

    orin, again, twin = planned("orin-nano-8gb-jp62"), planned("orin-nano-8gb-jp62"), planned("twin")
    # The same inputs, the same release; release.json names it.
    assert orin.release == again.release and orin.files == again.files
    assert json.loads(orin.files["release.json"].local.read_text()) == {"release": orin.release}
    assert [b.local for b in orin.wheels] == [wheel] and orin.python == "3.10.12"
    assert json.loads(orin.camera_json.local.read_text())["samples"]["every_s"] == 0.5
    # The GPU drop-in goes only to TensorRT devices; every blob is uploaded once.
    assert orin.gpu_dropin is not None and twin.gpu_dropin is None
    assert len(orin.blobs()) == len(orin.files) + len(orin.wheels) + 3 and len(twin.blobs()) == len(twin.files) + 3
