"""Releases listed and pruned on the device, in a state folder of the test's own.

Real files: blobs, releases of hard links to them, a venv's wheels linking one, links and
records as edgekit/agent/lifecycle.py writes them, engines with their manifests and caches.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from edgekit.agent import inventory, lifecycle
from edgekit.agent.__main__ import main
from edgekit.agent.backends.tensorrt.cache import calibration_id
from edgekit.agent.errors import AgentError

# Every file of the fixture is older than the freshness guard, seen from then.
LATER = time.time() + 2 * inventory.FRESH_S


@pytest.fixture(autouse=True)
def systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "_systemctl", lambda *args: "")
    monkeypatch.setattr(lifecycle, "_systemctl_run", lambda *args: None)


def blob(state: Path, data: bytes) -> Path:
    path = state / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    return path


def release_manifest(rid: str, precision: str = "int8") -> dict[str, str]:
    manifest = {"release": rid, "model": "model.onnx", "precision": precision, "backend": "tensorrt"}
    manifest.update(task="classify", onnx_sha256="onnx-" + rid, calibration_sha256="calib-" + rid)
    return manifest


def release(state: Path, rid: str, model: bytes, precision: str = "int8") -> Path:
    """A release as provision lays it out: hard links to blobs, release.json included."""
    files = {
        "model.onnx": model,
        "calib.npy": b"calibration data",
        "agent.pyz": b"the agent",
        f"media/clip-{rid}.avi": b"clip " + rid.encode() * 100,
        "release.json": json.dumps(release_manifest(rid, precision)).encode(),
    }
    folder = state / "releases" / rid
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        os.link(blob(state, data), folder / name)
    return folder


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def engine(state: Path, name: str, model: bytes, tensorrt: str, precision: str = "int8") -> None:
    engines = state / "engines"
    engines.mkdir(exist_ok=True)
    (engines / f"{name}.engine").write_bytes(b"engine " + name.encode())
    calibration = digest(b"calibration data") if precision == "int8" else None
    manifest = {"onnx_sha256": digest(model), "calibration_sha256": calibration, "precision": precision}
    manifest.update(tensorrt=tensorrt, compute_capability="8.7", release="whoever built it")
    (engines / f"{name}.json").write_text(json.dumps(manifest))
    (engines / "timing").mkdir(exist_ok=True)
    (engines / "timing" / f"{tensorrt}-sm8.7.cache").write_bytes(b"timing")
    if calibration is not None:
        (engines / "calibration").mkdir(exist_ok=True)
        cache = calibration_id(digest(model), calibration, tensorrt)
        (engines / "calibration" / f"{cache}.cache").write_bytes(b"calibration cache")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """Eight releases: r1 previous, r4 and r5 the newest committed (r5 the committed link),
    r6 current on trial; r0 from before trials, r2 committed long ago, r3 rolled back, r7 failed."""
    device = lifecycle.Device(str(tmp_path))
    for rid in ("r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"):
        release(tmp_path, rid, b"model two" if rid in ("r2", "r3") else b"model one")
    for rid, at in (("r1", 100.0), ("r2", 200.0), ("r4", 400.0), ("r5", 500.0)):
        device.write_record(rid, state="committed", committed_at=at, by="host")
    device.write_record("r3", state="rolled back", rolled_back_at=300.0, reason="it wrote no results", by="device")
    device.write_record("r7", state="failed trial", failed_at=700.0, reason="it sent no READY", by="host")
    device.write_record("r6", state="on trial", trial_started=600.0)
    device.write_trial({"release": "r6", "fallback": "r5", "started": 600.0})
    for name, rid in (("previous", "r1"), ("committed", "r5"), ("current", "r6")):
        device.switch(name, rid)
    # A venv's wheel links its blob; an orphan blob; an upload that has not been linked yet.
    wheels = tmp_path / "venvs" / "key" / "wheels"
    wheels.mkdir(parents=True)
    os.link(blob(tmp_path, b"a wheel"), wheels / "numpy.whl")
    blob(tmp_path, b"an orphan")
    fresh = blob(tmp_path, b"just uploaded")
    os.utime(fresh, (LATER, LATER))
    engine(tmp_path, "e1", b"model one", "10.3")
    engine(tmp_path, "e2", b"model two", "8.5")
    engine(tmp_path, "e1fp16", b"model one", "10.3", precision="fp16")
    builds = tmp_path / "engines" / "builds"
    builds.mkdir()
    gate = {"samples": 64, "top1_agreement": 0.98, "output_cosine": 0.999, "max_abs_diff": 0.1}
    for rid in ("r2", "r5"):
        (builds / f"{rid}.json").write_text(json.dumps({"release": rid, "gate": gate, "invocation": "x"}))
    (builds / "r7.json").write_text(json.dumps({"error": {"kind": "build", "message": "TensorRT failed."}}))
    return tmp_path


def snapshot(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def test_prune_keeps_the_newest_committed_and_every_linked_or_trial_release(state: Path) -> None:
    # The site configs kept for rollbacks go with their releases.
    configs = state / "lifecycle" / "configs"
    configs.mkdir(parents=True)
    for release in ("r2", "r5"):
        (configs / f"{release}.json").write_text("{}")
    answer = inventory.prune(str(state), keep=2, now=LATER)
    assert sorted(os.listdir(configs)) == ["r5.json"]
    assert {entry["release"]: entry["why"] for entry in answer["kept"]} == {
        "r1": ["previous"],
        "r4": ["one of the 2 newest committed"],
        "r5": ["committed", "the trial's fallback", "one of the 2 newest committed"],
        "r6": ["current", "on trial"],
    }
    assert sorted(os.listdir(state / "releases")) == ["r1", "r4", "r5", "r6"]
    assert sorted(os.listdir(state / "lifecycle" / "releases")) == ["r1.json", "r4.json", "r5.json", "r6.json"]
    assert sorted(os.listdir(state / "engines" / "builds")) == ["r5.json"]
    removed = {(entry["kind"], Path(entry["path"]).name) for entry in answer["removed"]}
    assert {name for kind, name in removed if kind == "release"} == {"r0", "r2", "r3", "r7"}
    # The links and the trial are untouched.
    device = lifecycle.Device(str(state))
    assert [device.link(name) for name in inventory.LINKS] == ["r6", "r1", "r5"]
    assert device.trial() is not None


def test_prune_removes_blobs_nothing_links_but_not_fresh_ones_or_a_venv_s(state: Path) -> None:
    answer = inventory.prune(str(state), keep=2, now=LATER)
    blobs = set(os.listdir(state / "blobs" / "sha256"))
    for gone in (b"an orphan", b"model two", *(b"clip " + rid.encode() * 100 for rid in ("r0", "r2", "r3", "r7"))):
        assert digest(gone) not in blobs
    for stays in (b"just uploaded", b"a wheel", b"model one", b"the agent", b"clip " + b"r4" * 100):
        assert digest(stays) in blobs
    # Every blob left is linked by a release or a venv, or is fresh.
    assert all(
        os.stat(state / "blobs" / "sha256" / name).st_nlink > 1 or name == digest(b"just uploaded") for name in blobs
    )
    # Bytes freed count each file's data once: the release folders' links free nothing themselves.
    freed = {b"an orphan", b"model two"} | {b"clip " + rid.encode() * 100 for rid in ("r0", "r2", "r3", "r7")}
    freed |= {json.dumps(release_manifest(rid)).encode() for rid in ("r0", "r2", "r3", "r7")}
    engines = len(b"engine e2") + len(b"engine e1fp16") + len(b"timing") + len(b"calibration cache")
    manifests = sum(entry["bytes"] for entry in answer["removed"] if entry["kind"] in ("engine manifest", "record"))
    builds = sum(entry["bytes"] for entry in answer["removed"] if entry["kind"] == "build answer")
    assert answer["bytes"] == sum(map(len, freed)) + engines + manifests + builds


def test_prune_removes_engines_and_caches_only_removed_releases_used(state: Path) -> None:
    inventory.prune(str(state), keep=2, now=LATER)
    engines = state / "engines"
    # e1 serves the kept releases' model, data and precision; e2 only the removed r2 and r3's
    # model; no release left serves model one at FP16.
    assert sorted(os.listdir(engines)) == ["builds", "calibration", "e1.engine", "e1.json", "timing"]
    assert os.listdir(engines / "timing") == ["10.3-sm8.7.cache"]
    kept = calibration_id(digest(b"model one"), digest(b"calibration data"), "10.3")
    assert os.listdir(engines / "calibration") == [f"{kept}.cache"]


def test_check_removes_nothing_and_lists_what_prune_removes(state: Path) -> None:
    before = snapshot(state)
    checked = inventory.prune(str(state), keep=2, check=True, now=LATER)
    assert snapshot(state) == before
    assert checked["check"] is True and checked["removed"]
    done = inventory.prune(str(state), keep=2, now=LATER)
    assert [checked[key] for key in ("kept", "removed", "bytes")] == [done[key] for key in ("kept", "removed", "bytes")]
    assert all(not os.path.exists(entry["path"]) for entry in done["removed"])


def test_prune_finishes_a_removal_power_cut_short_and_keeps_a_release_not_yet_on_trial(state: Path) -> None:
    # A prune cut short: the folder renamed, half deleted; it is no release any more.
    half = state / "releases" / f"r2{inventory.REMOVING}"
    os.rename(state / "releases" / "r2", half)
    os.unlink(half / "model.onnx")
    # ... and the same release laid out again since: its removal goes to the same name.
    release(state, "r2", b"model two")
    # A provision that laid out its release and builds its engine, before its trial.
    new = release(state, "r8", b"model one")
    os.utime(new, (LATER, LATER))
    assert "r2.removing" not in lifecycle.Device(str(state)).ids()
    answer = inventory.prune(str(state), keep=0, now=LATER)
    assert ("unfinished removal", str(half)) in [(entry["kind"], entry["path"]) for entry in answer["removed"]]
    assert {entry["release"]: entry["why"] for entry in answer["kept"]}["r8"] == ["new, not on trial yet"]
    assert sorted(os.listdir(state / "releases")) == ["r1", "r5", "r6", "r8"]


def test_prune_refuses_a_negative_keep(state: Path) -> None:
    with pytest.raises(AgentError, match="give 0 or more"):
        inventory.prune(str(state), keep=-1)


def test_list_gives_each_release_its_state_gate_and_size(state: Path) -> None:
    answer = {entry["release"]: entry for entry in inventory.releases(str(state))["releases"]}
    assert set(answer) == {f"r{index}" for index in range(8)}
    assert (answer["r6"]["links"], answer["r6"]["state"], answer["r6"]["trial_started"]) == (
        ["current"],
        "on trial",
        600.0,
    )
    assert (answer["r5"]["links"], answer["r5"]["state"], answer["r5"]["committed_at"]) == (
        ["committed"],
        "committed",
        500.0,
    )
    assert (answer["r3"]["state"], answer["r3"]["reason"], answer["r3"]["by"]) == (
        "rolled back",
        "it wrote no results",
        "device",
    )
    assert (answer["r0"]["state"], answer["r0"]["links"]) == (None, [])
    assert answer["r5"]["gate"]["top1_agreement"] == 0.98 and answer["r4"]["gate"] is None
    assert answer["r7"]["build_error"] == "TensorRT failed."
    assert (answer["r2"]["precision"], answer["r2"]["onnx_sha256"], answer["r2"]["backend"]) == (
        "int8",
        "onnx-r2",
        "tensorrt",
    )
    # Model, data and agent are shared with the other releases; the clip and release.json are its own.
    own = len(b"clip " + b"r2" * 100) + len(json.dumps(release_manifest("r2")))
    shared = len(b"model two") + len(b"calibration data") + len(b"the agent")
    assert (answer["r2"]["bytes"], answer["r2"]["shared_bytes"]) == (own + shared, shared)
    assert answer["r2"]["created"] == os.stat(state / "releases" / "r2").st_mtime


def test_the_agent_command_line_prints_one_answer(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lifecycle", "list", "--state-dir", str(state)]) == 0
    assert len(json.loads(capsys.readouterr().out)["releases"]) == 8
    assert main(["lifecycle", "prune", "--keep", "2", "--check", "--state-dir", str(state)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["check"] is True and answer["keep"] == 2
    assert sorted(os.listdir(state / "releases")) == [f"r{index}" for index in range(8)]


def test_prune_follows_no_link_in_the_service_user_s_engine_folders(state: Path, tmp_path: Path) -> None:
    """engines/ is the service user's: a folder there swapped for a link must not lead root elsewhere."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.cache").write_text("keep me")
    os.utime(elsewhere / "precious.cache", (0, 0))
    timing = state / "engines" / "timing"
    if timing.exists():
        shutil.rmtree(timing)
    timing.symlink_to(elsewhere)
    inventory.prune(str(state), keep=0, now=LATER)
    assert (elsewhere / "precious.cache").read_text() == "keep me"
