"""``lifecycle serving``: what a re-provision reads of the device in one answer, and the engine
record a build leaves for it (a TensorRT release's gate figures hold only for its engine key)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from test_trt_engine import Device, lay_out_release

from edgekit.agent import lifecycle, serving
from edgekit.agent.__main__ import main
from edgekit.agent.build import run_build
from edgekit.device.answers import BuildAnswer
from edgekit.device.serving import read_serving
from edgekit.testing import Reply, Run

GATE = {
    "samples": 360,
    "top1_agreement": 0.997,
    "output_cosine": 0.9999,
    "max_abs_diff": 0.7,
    "accuracy": None,
    "reference_accuracy": None,
    "infer_ms_mean": 0.02,
}
BUILT = {"release": "r1", "backend": "onnxruntime", "precision": "int8", "ready_s": 0.1, "gate": GATE}
RESULT = {"ts": 1.0, "frame": 2, "release": "r1", "pid": 42, "fps": 30.0, "top": []}
LATENCY = {"grab": 33.0, "pre": 0.2, "infer": 0.2, "post": 0.1, "total": 33.5}


def committed_release(state: Path, rid: str) -> None:
    """``rid`` laid out, built, switched in and committed, as a provision leaves it."""
    (state / "releases" / rid).mkdir(parents=True)
    (state / "releases" / rid / "release.json").write_text(json.dumps({"release": rid, "task": "classify"}))
    (state / "lifecycle" / "releases").mkdir(parents=True)
    (state / "lifecycle" / "releases" / f"{rid}.json").write_text(json.dumps({"state": "committed"}))
    for link in ("current", "committed"):
        (state / link).symlink_to(state / "releases" / rid)
    (state / "engines" / "builds").mkdir(parents=True)
    (state / "engines" / "builds" / f"{rid}.json").write_text(json.dumps(dict(BUILT, invocation="i1", engine=None)))
    (state / "venv").symlink_to(state / "venvs" / "k" / "env")


def ask(*argv: str) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["lifecycle", "serving", *argv]) == 0
    return json.loads(out.getvalue())


def test_serving_answers_the_state_the_files_and_the_service(tmp_path, monkeypatch):
    state = tmp_path / "state"
    committed_release(state, "r1")
    (state / "results").mkdir()
    # The service is mid-way through its next line: only the whole one before it counts.
    (state / "results" / "results.jsonl").write_text('{"frame": 1}\n{"frame": 2}\n{"fra')
    config = tmp_path / "camera.json"
    config.write_text("{}")
    monkeypatch.setattr(serving, "_show", lambda unit, *names: {"ActiveState": "active", "unit": unit})

    answer = ask("--state-dir", str(state), str(config), str(tmp_path / "absent.conf"))

    assert (answer["current"], answer["committed"], answer["current_state"]) == ("r1", "r1", "committed")
    assert answer["trial"] is None and answer["build"] == dict(BUILT, invocation="i1", engine=None)
    assert answer["release_json"] == serving.sha256(str(state / "releases" / "r1" / "release.json"))
    assert answer["files"] == {str(config): serving.sha256(str(config)), str(tmp_path / "absent.conf"): None}
    assert answer["venv"] == str(state / "venvs" / "k" / "env")
    assert answer["service"] == {"ActiveState": "active", "unit": lifecycle.UNIT}
    assert answer["result"] == '{"frame": 2}'


def test_the_host_reads_the_answer_as_the_agent_gives_it(tmp_path, monkeypatch, fake_connection):
    state = tmp_path / "state"
    committed_release(state, "r1")
    (state / "results").mkdir()
    (state / "results" / "results.jsonl").write_text(json.dumps(dict(RESULT, latency_ms=LATENCY)) + "\n")
    service = {"ActiveState": "active", "MainPID": "42", "UnitFileState": "enabled"}
    monkeypatch.setattr(serving, "_show", lambda unit, *names: service)

    def agent(run: Run) -> Reply:
        argv = list(run.argv[run.argv.index("lifecycle") :])
        argv[argv.index("--state-dir") + 1] = str(state)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(argv)
        return Reply(out.getvalue(), exit_code=code)

    fake_connection.on(re.compile(r"agent\.pyz lifecycle serving "), agent)
    found = read_serving(fake_connection, [str(tmp_path / "camera.json")])
    assert found is not None and found.lifecycle.current == "r1" and found.lifecycle.current_state == "committed"
    assert found.build is not None and found.build.gate.top1_agreement == 0.997 and found.build.engine is None
    assert (found.files, found.service) == ({str(tmp_path / "camera.json"): None}, service)
    newest = found.newest_result()
    assert newest is not None and newest.frame == 2

    # A build that failed leaves its error, and no figures.
    (state / "engines" / "builds" / "r1.json").write_text(json.dumps({"error": {"kind": "build", "message": "oom"}}))
    failed = read_serving(fake_connection, [])
    assert failed is not None and failed.build is None


def test_serving_on_a_device_that_serves_nothing_yet(tmp_path, monkeypatch):
    monkeypatch.setattr(serving, "_show", lambda unit, *names: {})
    answer = ask("--state-dir", str(tmp_path))
    assert answer["current"] is None
    assert (answer["build"], answer["release_json"], answer["venv"], answer["result"]) == (None, None, None, None)


def test_a_tensorrt_build_records_the_engine_its_gate_ran(digits_bundle, tmp_path, monkeypatch):
    release = lay_out_release(digits_bundle, tmp_path / "release", "orin-nano-8gb-jp62")
    device = Device(monkeypatch, "10.3")
    answer = run_build(str(release), str(release / "gate.npz"), str(tmp_path / "engines"))
    [manifest] = (tmp_path / "engines").glob("*.json")
    cached = json.loads(manifest.read_text())
    assert answer["engine"] == {key: value for key, value in cached.items() if key not in ("sha256", "bytes")}
    engine = BuildAnswer.parse({**answer, "invocation": None}).engine
    assert engine is not None and engine.key == cached["key"]
    assert (engine.tensorrt, engine.compute_capability) == (device.trt.__version__, "8.7")


def test_an_onnxruntime_build_has_no_engine(tmp_path, release_dir):
    samples = tmp_path / "gate.npz"
    inputs = np.zeros((2, 1, 8, 8), np.float32)
    np.savez(samples, inputs=inputs, reference=np.zeros((2, 10), np.float32))
    assert run_build(str(release_dir), str(samples), str(tmp_path / "engines"))["engine"] is None


def test_a_fifo_in_place_of_the_results_file_is_refused_without_blocking(tmp_path):
    # The results file is the service user's to replace: a FIFO there must not hang root's read.
    fifo = tmp_path / "results.jsonl"
    os.mkfifo(fifo)
    assert serving.last_line(str(fifo)) is None
