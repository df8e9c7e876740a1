"""The TensorRT backend as the agent runs it on a device, against each release's stand-in.

A release laid out exactly as provision lays it out (the host's own bundle, release.json
from the host's settings for a real device profile) is built with ``agent build``'s code
path, then opened again from the engine cache. TensorRT and CUDA are the stand-ins of
trt_standin.py and fake_cuda.py; everything else is the agent's real code.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from fake_cuda import FakeCuda
from trt_standin import calls, make_tensorrt, read_engine

import edgekit.agent.build
from edgekit.agent.backends import load_backend
from edgekit.agent.backends.tensorrt import calibrator
from edgekit.agent.backends.tensorrt import engine as trt_engine
from edgekit.agent.backends.tensorrt.cache import EngineCache, calibration_id
from edgekit.agent.backends.tensorrt.engine import open_engine
from edgekit.agent.backends.tensorrt.progress import make_progress_monitor, parse_progress, progress_line
from edgekit.agent.build import run_build
from edgekit.agent.config import load_release
from edgekit.agent.errors import AgentError
from edgekit.profiles import load_profile
from edgekit.provision import release_files, release_manifest
from edgekit.settings import merge_settings
from edgekit.source import SourceSpec

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "digits"
# A real profile of each TensorRT line, with the release it ships.
DEVICES = [
    ("xavier-nx-jp51", "8.5"),
    ("orin-nano-8gb-jp60", "8.6"),
    ("orin-nano-8gb-jp62", "10.3"),
    ("thor-jp70", "10.13"),
    ("thor-jp72-trt11", "11.1"),
]


@pytest.fixture(scope="module")
def bundle(digits_bundle):
    return digits_bundle


def lay_out_release(bundle, directory: Path, profile: str, precision: str | None = None) -> Path:
    """The release folder provision would make for this profile."""
    settings = merge_settings(load_profile(profile), {"build": {"precision": precision}})
    directory.mkdir()
    for name, path in release_files(bundle, settings, SourceSpec("rtsp://camera/stream")).items():
        shutil.copy(path, directory / name)
    (directory / "release.json").write_text(json.dumps(release_manifest(bundle, settings, "r1")))
    return directory


class Device:
    """One Jetson's TensorRT and GPU, installed where the agent imports them from."""

    def __init__(self, monkeypatch, version: str, compute_capability=(8, 7)) -> None:
        self.cuda = FakeCuda(compute_capability)
        self.trt = make_tensorrt(version, self.cuda)
        monkeypatch.setitem(sys.modules, "tensorrt", self.trt)
        monkeypatch.setattr(trt_engine, "open_cuda", lambda seam: self.cuda)

    def builds(self) -> int:
        return len(calls(self.trt, "Builder.build_serialized_network"))


def engines(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.engine"))


@pytest.mark.parametrize(("profile", "version"), DEVICES)
def test_build_gates_then_the_service_load_hits_the_cache(profile, version, bundle, tmp_path, monkeypatch):
    release = lay_out_release(bundle, tmp_path / "release", profile)
    device = Device(monkeypatch, version)
    lines: list[str] = []
    monkeypatch.setattr("edgekit.agent.build.log", lines.append)
    answer = run_build(str(release), str(release / "gate.npz"), str(tmp_path / "engines"))
    assert (answer["backend"], answer["precision"]) == ("tensorrt", "int8")
    assert answer["gate"]["samples"] == 360
    assert answer["gate"]["top1_agreement"] >= 0.99
    assert device.builds() == 1
    [built] = engines(tmp_path / "engines")
    manifest = json.loads(built.with_suffix(".json").read_text())
    assert manifest["tensorrt"].startswith(version + ".") and manifest["compute_capability"] == "8.7"
    assert manifest["precision"] == "int8" and manifest["release"] == "r1"

    # Calibrator releases build from the FP32 model and calibrate on calib.npy; TensorRT 11
    # builds the host's Q/DQ model, the only INT8 it has.
    recorded = read_engine(built.read_bytes())
    if version == "11.1":
        assert manifest["model"] == "model.int8.onnx" and recorded["calibration"] is None
    else:
        assert manifest["model"] == "model.onnx"
        assert recorded["calibration"]["source"] == "batches"
        assert any(line.startswith("progress: calibration 1/") for line in lines)

    # The service opens the same engine without building.
    backend = open_engine(device.trt, device.cuda, load_release(str(release)), str(tmp_path / "engines"), None, print)
    backend.close()
    assert device.builds() == 1


def test_a_new_gpu_or_l4t_builds_anew_and_calibration_is_not_repeated(bundle, tmp_path, monkeypatch):
    release = load_release(str(lay_out_release(bundle, tmp_path / "release", "orin-nano-8gb-jp62")))
    cache = str(tmp_path / "engines")
    device = Device(monkeypatch, "10.3")
    open_engine(device.trt, device.cuda, release, cache, "36.4.3", print).close()
    open_engine(device.trt, device.cuda, release, cache, "36.4.3", print).close()
    assert device.builds() == 1
    open_engine(device.trt, device.cuda, release, cache, "36.4.4", print).close()
    assert device.builds() == 2
    other_gpu = Device(monkeypatch, "10.3", compute_capability=(7, 2))
    open_engine(other_gpu.trt, other_gpu.cuda, release, cache, "36.4.4", print).close()
    assert other_gpu.builds() == 1
    assert len(engines(tmp_path / "engines")) == 3
    # Only the first build calibrated: the others read the calibration cache of the same model and data.
    sources = [read_engine(path.read_bytes())["calibration"]["source"] for path in engines(tmp_path / "engines")]
    assert sorted(sources) == ["batches", "cache", "cache"]


def test_a_torn_cached_engine_is_rebuilt_not_loaded(bundle, tmp_path, monkeypatch):
    release = load_release(str(lay_out_release(bundle, tmp_path / "release", "thor-jp70")))
    device = Device(monkeypatch, "10.13")
    open_engine(device.trt, device.cuda, release, str(tmp_path / "engines"), None, print).close()
    [built] = engines(tmp_path / "engines")
    built.write_bytes(built.read_bytes()[:100])
    backend = open_engine(device.trt, device.cuda, release, str(tmp_path / "engines"), None, print)
    backend.close()
    assert device.builds() == 2
    assert EngineCache(str(tmp_path / "engines")).load(json.loads(built.with_suffix(".json").read_text())["key"])


def test_fp16_on_tensorrt_11_is_refused_with_the_fix(bundle, tmp_path, monkeypatch):
    release = lay_out_release(bundle, tmp_path / "release", "thor-jp72-trt11", precision="fp16")
    Device(monkeypatch, "11.1")
    with pytest.raises(AgentError) as caught:
        run_build(str(release), str(release / "gate.npz"), str(tmp_path / "engines"))
    assert caught.value.kind == "precision"
    assert "no FP16 builder flag" in caught.value.message
    assert engines(tmp_path / "engines") == []


@pytest.mark.parametrize(("version", "monitored"), [("8.6", False), ("10.3", True), ("11.1", True)])
def test_build_phases_are_logged_where_the_release_reports_them(version, monitored, bundle, tmp_path, monkeypatch):
    profile = {"8.6": "orin-nano-8gb-jp60", "10.3": "orin-nano-8gb-jp62", "11.1": "thor-jp72-trt11"}[version]
    release = load_release(str(lay_out_release(bundle, tmp_path / "release", profile)))
    device = Device(monkeypatch, version)
    open_engine(device.trt, device.cuda, release, str(tmp_path / "engines"), None, print).close()
    assigned = calls(device.trt, "IBuilderConfig.progress_monitor=")
    assert bool(assigned) == monitored
    if monitored:
        # What TensorRT calls during a build, made here by hand: the stand-in does not simulate it.
        lines: list[str] = []
        monitor = make_progress_monitor(device.trt, lines.append)
        monitor.phase_start("Building engine", None, 3)
        monitor.phase_start("Tactic selection", "Building engine", 40)
        assert monitor.step_complete("Building engine", 0) is True
        assert monitor.step_complete("Tactic selection", 5) is True
        monitor.phase_finish("Building engine")
        assert lines == ["progress: Building engine 0/3", "progress: Building engine 1/3"]


def test_progress_lines_read_back_as_the_agent_wrote_them():
    line = progress_line("Building engine", 3, 10)
    assert parse_progress(line) == ("Building engine", 3, 10)
    assert parse_progress("[TRT] [W] progress: is not a progress line 3/10") is None
    assert parse_progress("model ready in 1.2 s; running the gate samples") is None


def test_a_mixed_precision_release_builds_its_kept_layers_at_fp16_in_an_engine_of_its_own(
    bundle, tmp_path, monkeypatch
):
    import dataclasses

    from edgekit.sensitivity import MixedPrecision, Step

    chosen = MixedPrecision("auto", "top-1 agreement", 0.99, 1, ("node_of_conv2",), ("node_of_conv2",), (Step(0, 0.9),))
    mixed = dataclasses.replace(bundle, mixed_precision=chosen)
    release = load_release(str(lay_out_release(mixed, tmp_path / "mixed", "orin-nano-8gb-jp62")))
    assert release.half_layers == ("node_of_conv2",)
    device = Device(monkeypatch, "10.3")
    cache = str(tmp_path / "engines")
    open_engine(device.trt, device.cuda, release, cache, None, print).close()
    plain = load_release(str(lay_out_release(bundle, tmp_path / "plain", "orin-nano-8gb-jp62")))
    open_engine(device.trt, device.cuda, plain, cache, None, print).close()
    # Same model.onnx and calibration data, another engine: the kept layers are part of its key.
    assert device.builds() == 2
    built = {path.name: read_engine(path.read_bytes()) for path in engines(tmp_path / "engines")}
    assert sorted(engine["precision_constraints"].get("node_of_conv2", "") for engine in built.values()) == [
        "",
        "HALF",
    ]


def test_the_serving_release_is_gated_from_its_cached_engine_after_the_new_one_is_closed(bundle, tmp_path, monkeypatch):
    serving = lay_out_release(bundle, tmp_path / "serving", "orin-nano-8gb-jp62")
    manifest = json.loads((serving / "release.json").read_text())
    (serving / "release.json").write_text(json.dumps(dict(manifest, release="r-old")))
    new = lay_out_release(bundle, tmp_path / "new", "orin-nano-8gb-jp62")
    # The same model calibrated on other data (the same images, in another order): another
    # calibration sha256, so another engine key and another calibration cache name.
    np.save(new / "calib.npy", np.load(new / "calib.npy")[::-1].copy())
    device = Device(monkeypatch, "10.3")
    cache = tmp_path / "engines"
    lines: list[str] = []
    monkeypatch.setattr(edgekit.agent.build, "log", lines.append)
    run_build(str(serving), str(serving / "gate.npz"), str(cache))  # as when it was deployed
    [serving_engine] = engines(cache)
    serving_manifest = json.loads(serving_engine.with_suffix(".json").read_text())
    assert device.builds() == 1

    read: list[str] = []
    read_or_none = calibrator.read_or_none
    monkeypatch.setattr(calibrator, "read_or_none", lambda path: read.append(path) or read_or_none(path))
    opened: list[str] = []

    def one_at_a_time(release, engines_dir, log):
        # One model in GPU memory: the new release's buffers are freed before the old loads.
        assert not opened and not device.cuda.memory, f"{release.release} loaded while {opened} is open"
        backend = load_backend(release, engines_dir, log)
        opened.append(release.release)
        close = backend.close

        def closed():
            opened.remove(release.release)
            close()

        monkeypatch.setattr(backend, "close", closed)
        return backend

    monkeypatch.setattr(edgekit.agent.build, "load_backend", one_at_a_time)
    lines.clear()

    answer = run_build(str(new), str(new / "gate.npz"), str(cache), baseline_dir=str(serving))

    assert answer["release"] == "r1" and answer["gate"]["samples"] == 360
    baseline = answer["baseline"]
    assert set(baseline) == {"release", "gate"} and baseline["release"] == "r-old"
    assert baseline["gate"]["samples"] == answer["gate"]["samples"]
    assert baseline["gate"]["top1_agreement"] >= 0.99
    # The new release was built (calibrating on its own data); the serving one came from the cache.
    assert device.builds() == 2
    assert f"engine cache hit {serving_manifest['key'][:12]}" in lines
    built = {json.loads(path.with_suffix(".json").read_text())["release"]: path for path in engines(cache)}
    assert sorted(built) == ["r-old", "r1"] and built["r-old"] == serving_engine
    new_manifest = json.loads(built["r1"].with_suffix(".json").read_text())
    assert new_manifest["calibration_sha256"] != serving_manifest["calibration_sha256"]
    assert read_engine(built["r1"].read_bytes())["calibration"]["source"] == "batches"
    names = {
        release: calibration_id(m["onnx_sha256"], m["calibration_sha256"], m["tensorrt"]) + ".cache"
        for release, m in (("r-old", serving_manifest), ("r1", new_manifest))
    }
    assert names["r-old"] != names["r1"]
    assert sorted(path.name for path in (cache / "calibration").iterdir()) == sorted(names.values())
    # The new build looked for its own calibration cache only, never the serving release's.
    assert read == [str(cache / "calibration" / names["r1"])]
    assert not opened and not device.cuda.memory
