"""End to end: the TensorRT backend, on a twin provisioned like a real Orin Nano 8GB on JetPack 6.2.

The twin's TensorRT and CUDA are the agent tests' stand-ins (trt_twin.py); everything
else is what runs on a Jetson: detection and preflight over SSH, the engine built and
calibrated in the transient build unit, the gate, and the camera service under systemd.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from script_modules import load_script
from test_camera_twin import status, unit
from test_models_twin import MODELS
from test_models_twin import provision as provision_model
from test_provision_twin import SAMPLES, edgekit, on_twin, provision_args
from trt_twin import CUDART, FULL_VERSION

from edgekit.twin import TwinInfo, twin_exec
from edgekit.twin.machine import _state_dir

pytestmark = pytest.mark.e2e
UNIT = "edgekit-camera.service"
RESULTS = "/var/lib/edgekit/results/results.jsonl"
ENGINES = "/var/lib/edgekit/engines"
# Both streams go to the journal in the shipped unit, where nothing tells them apart; this
# test-only drop-in gives stdout a file of its own and leaves stderr in the journal.
STREAMS_DROPIN = "etc/systemd/system/edgekit-camera.service.d/zz-e2e-streams.conf"
STDOUT = "/run/edgekit-camera.stdout"
SERVE_S = 60.0
# The service's own model loading, with TensorRT's stock Logger (std::cout, as the real
# bindings' is) in place of the agent's stderr ILogger: what stdout would carry then.
STOCK_LOGGER_LOAD = """\
import sys

sys.path.insert(0, sys.argv[1] + "/agent.pyz")
from edgekit.agent.backends import load_backend
from edgekit.agent.backends.tensorrt import logger
from edgekit.agent.config import load_release

logger.make_logger = lambda trt, min_severity="WARNING": trt.Logger()
load_backend(load_release(sys.argv[1]), sys.argv[2], lambda line: print(line, file=sys.stderr)).close()
"""


@pytest.fixture(scope="module")
def provisioned(
    trt_twin: TwinInfo, tmp_path_factory: pytest.TempPathFactory, free_ports: Callable[[], int]
) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("trt-home")
    dropin = _state_dir(trt_twin.name) / "root" / STREAMS_DROPIN
    dropin.parent.mkdir(parents=True)
    dropin.write_text(f"[Service]\nStandardOutput=append:{STDOUT}\nStandardError=journal\n")
    # Twins share this machine's network, so the service gets a port of its own.
    args = provision_args(
        trt_twin, home / "known_hosts", "--accept-new-host-key", "--json", "--metrics-port", str(free_ports())
    )
    done = edgekit(*args, home=home)
    assert done.returncode == 0, done.stderr
    return {"home": home, "result": json.loads(done.stdout), "stderr": done.stderr}


def not_results(lines: Iterable[str]) -> list[str]:
    """The lines that are not a JSON result record each."""
    bad = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or "frame" not in record:
            bad.append(line)
    return bad


def newest_record(twin: TwinInfo) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(on_twin(twin, "tail", "-n", "1", RESULTS))
    return record


def test_the_orin_is_detected_and_tensorrt_builds_calibrates_and_passes_the_gate(
    trt_twin: TwinInfo, provisioned: dict[str, Any]
) -> None:
    result = provisioned["result"]
    assert (result["profile"], result["backend"], result["precision"]) == ("orin-nano-8gb-jp62", "tensorrt", "int8")
    assert result["gate"]["samples"] == 360 and result["gate"]["top1_agreement"] >= 0.99

    # The build unit's own journal: TensorRT parsed the model and calibrated on every image.
    build = on_twin(trt_twin, "journalctl", "-u", f"edgekit-build-{result['release']}.service", "-o", "cat")
    images = len(list((SAMPLES / "calib").iterdir()))
    assert f"TensorRT {FULL_VERSION}: parsed" in build
    assert re.search(rf"^calibrating on {images} of {images} images in batches of \d+$", build, re.MULTILINE)
    batches = re.findall(r"^progress: calibration (\d+)/(\d+)$", build, re.MULTILINE)
    assert batches and batches[-1][0] == batches[-1][1]
    assert f"device: calibrating on {images} of {images} images" in provisioned["stderr"]
    answer = json.loads(on_twin(trt_twin, "cat", f"{ENGINES}/builds/{result['release']}.json"))
    assert answer["backend"] == "tensorrt" and answer["gate"]["top1_agreement"] == result["gate"]["top1_agreement"]

    # The engine in the cache was built by TensorRT 10.3 for compute 8.7, from the calibration.
    engines = _state_dir(trt_twin.name) / "root" / ENGINES.lstrip("/")
    [manifest_path] = engines.glob("*.json")
    manifest = json.loads(manifest_path.read_text())
    assert (manifest["tensorrt"], manifest["compute_capability"]) == (FULL_VERSION, "8.7")
    assert (manifest["precision"], manifest["options"]["int8"]) == ("int8", "calibrator")
    magic, _, body = manifest_path.with_suffix(".engine").read_bytes().partition(b"\n")
    assert magic == b"TRT-standin-engine"
    built = json.loads(body)
    assert built["trt"] == FULL_VERSION and "INT8" in built["flags"]
    assert (built["calibration"]["source"], built["calibration"]["images"]) == ("batches", images)


def test_the_service_serves_through_tensorrt_for_a_minute_without_a_restart(
    trt_twin: TwinInfo, provisioned: dict[str, Any]
) -> None:
    before = unit(trt_twin)
    assert (before["ActiveState"], before["NRestarts"]) == ("active", "0")
    pid = before["MainPID"]
    shown = status(trt_twin, provisioned["home"])["metrics"]
    assert shown["info"]["backend"] == "tensorrt" and shown["info"]["pid"] == pid
    # The engine runs on the one CUDA runtime library the seam and TensorRT share.
    maps = on_twin(trt_twin, "cat", f"/proc/{pid}/maps")
    assert {line.split()[-1] for line in maps.splitlines() if "libcudart" in line} == {CUDART}
    assert "onnxruntime" in maps

    started = time.monotonic()
    last = newest_record(trt_twin)
    while time.monotonic() - started < SERVE_S:
        time.sleep(10)
        state, record = unit(trt_twin), newest_record(trt_twin)
        assert (state["MainPID"], state["NRestarts"], state["ActiveState"]) == (pid, "0", "active")
        assert str(record["pid"]) == pid and record["frame"] > last["frame"] + 200, (last, record)
        last = record

    after = status(trt_twin, provisioned["home"])["metrics"]
    assert after["info"]["pid"] == pid and after["frames"] > shown["frames"] + SERVE_S * 20
    assert after["latency_ms"]["infer"]["p50"] > 0
    lines = on_twin(trt_twin, "tail", "-n", "300", RESULTS).splitlines()
    records = [json.loads(line) for line in lines]
    truth = dict(
        (int(row.split(",")[0]), row.split(",")[1])
        for row in (SAMPLES / "clip_labels.csv").read_text().splitlines()[1:]
    )
    right = sum(r["top"][0]["label"] == truth[r["frame"] % len(truth)] for r in records)
    assert right / len(records) >= 0.95


def test_stdout_carries_only_result_records(trt_twin: TwinInfo, provisioned: dict[str, Any]) -> None:
    pid = int(unit(trt_twin)["MainPID"])
    stdout = on_twin(trt_twin, "cat", STDOUT).splitlines()
    assert not_results(stdout) == []
    assert sum(json.loads(line)["pid"] == pid for line in stdout) > 100
    # TensorRT did have something to say, and it went to stderr (the journal).
    journal = on_twin(trt_twin, "journalctl", "-u", UNIT, "-o", "cat", "--no-pager")
    assert "TensorRT warning: CUDA lazy loading is not enabled" in journal

    # The check fails where it should: the same load with TensorRT's own Logger writes to stdout.
    leaked = "/run/edgekit-e2e-stock-logger.stdout"
    done = twin_exec(
        trt_twin.name,
        [
            "systemd-run",
            "--wait",
            "--quiet",
            "--property=User=edgekit",
            "--property=Group=edgekit",
            "--property=Environment=HOME=/var/cache/edgekit",
            f"--property=StandardOutput=file:{leaked}",
            "--property=StandardError=journal",
            "--",
            "/var/lib/edgekit/venv/bin/python",
            "-c",
            STOCK_LOGGER_LOAD,
            "/var/lib/edgekit/current",
            ENGINES,
        ],
    )
    assert done.returncode == 0, done.stderr
    bad = not_results(on_twin(trt_twin, "cat", leaked).splitlines())
    assert bad and bad[0].startswith("[TRT] [W] CUDA lazy loading is not enabled"), bad


def test_calibrate_recalibrates_through_tensorrt_with_a_cache_of_its_own(
    trt_twin: TwinInfo, provisioned: dict[str, Any], tmp_path: Path
) -> None:
    """`edgekit calibrate` on the TensorRT path: the new engine is calibrated on the new frames
    in batches (never from the serving release's calibration cache), the serving release is
    gated from its cached engine on the same held-out frames, and the service then serves the
    new engine through TensorRT."""
    serving = provisioned["result"]["release"]
    home = provisioned["home"]
    night = tmp_path / "night"
    load_script("changed_scene").write_night_images(night, SAMPLES / "holdout")
    ssh = ("--identity", trt_twin.identity, "--known-hosts", str(home / "known_hosts"), "--no-ssh-config")
    done = edgekit("calibrate", trt_twin.target, *ssh, "--images", str(night), "--json", home=home)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    release, frames = result["release"], result["data"]["calibration_frames"]
    assert result["previous"] == serving and result["activated"]
    comparison = result["comparison"]
    assert comparison["current_release"] == serving and comparison["current_error"] is None
    assert comparison["current"]["samples"] == comparison["new"]["samples"] == result["data"]["holdout_frames"]

    build = on_twin(trt_twin, "journalctl", "-u", f"edgekit-build-{release}.service", "-o", "cat")
    assert re.search(rf"^calibrating on {frames} of {frames} images in batches of \d+$", build, re.MULTILINE)
    assert f"gating the serving release {serving} on the same samples" in build
    engines = _state_dir(trt_twin.name) / "root" / ENGINES.lstrip("/")
    keys = {json.loads(path.read_text())["release"]: path.stem for path in engines.glob("*.json")}
    manifests = {rid: json.loads((engines / f"{key}.json").read_text()) for rid, key in keys.items()}
    assert manifests[serving]["calibration_sha256"] != manifests[release]["calibration_sha256"]
    # The serving release's engine came from the cache; only the new one was built and calibrated.
    assert f"engine cache hit {keys[serving][:12]}" in build
    built = json.loads((engines / f"{keys[release]}.engine").read_bytes().partition(b"\n")[2])
    assert (built["calibration"]["source"], built["calibration"]["images"]) == ("batches", frames)
    assert len(list((engines / "calibration").glob("*.cache"))) == 2

    shown = status(trt_twin, home)["metrics"]["info"]
    assert (shown["release"], shown["backend"]) == (release, "tensorrt")


def test_a_calibrated_detector_keeps_its_head_at_fp32_on_tensorrt(trt_twin: TwinInfo, tmp_path) -> None:
    """The Ultralytics export through TensorRT's calibrator path: the head's decode layers
    are held at FP32 in the build unit, and the gate holds the detector to matched boxes."""
    provisioned = provision_model(trt_twin, tmp_path, MODELS / "ultralytics-yolov8-tiny-detect.onnx")
    result = provisioned["result"]
    assert (result["backend"], result["precision"], result["gate"]["measure"]) == (
        "tensorrt",
        "int8",
        "matched-box F1",
    )
    # The stand-in runs FP32 numerics, so F1 shows only that the gate ran on boxes, not INT8's figure.
    assert result["gate"]["reference_boxes"] > 0 and result["gate"]["box_f1"] is not None
    build = on_twin(trt_twin, "journalctl", "-u", f"edgekit-build-{result['release']}.service", "-o", "cat")
    assert re.search(r"^keeping the detection head's \d+ decode layers at FP32, out of INT8$", build, re.MULTILINE)
    engines = _state_dir(trt_twin.name) / "root" / ENGINES.lstrip("/")
    built = [json.loads(path.read_bytes().partition(b"\n")[2]) for path in engines.glob("*.engine")]
    [detector] = [engine for engine in built if engine["precision_constraints"]]
    assert "OBEY_PRECISION_CONSTRAINTS" in detector["flags"] and "INT8" in detector["flags"]
    assert detector["precision_constraints"]["/model.22/Concat_26"] == "FLOAT"
    assert newest_record(trt_twin)["detections"] is not None
