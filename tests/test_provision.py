"""The pure parts of ``provision``: the site config and the release manifest it writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.agent.config import SamplesConfig, load_site_config
from edgekit.bundle import Bundle
from edgekit.device.answers import GateReport
from edgekit.device.layout import CURRENT_LINK, RESULTS_FILE
from edgekit.model import inspect_model
from edgekit.profiles import load_profile
from edgekit.provision import (
    RESULTS_MAX_BYTES,
    release_files,
    release_manifest,
    served_model,
    site_config,
)
from edgekit.settings import merge_settings
from edgekit.source import SourceSpec

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "digits"
TWIN = merge_settings(load_profile("twin"))
ORIN = merge_settings(load_profile("orin-nano-8gb-jp62"), {"build": {"precision": "fp16"}})


def test_site_config_for_local_file() -> None:
    config = site_config(SourceSpec(str(SAMPLES / "clip.avi")), TWIN)
    assert config == {
        "release_dir": CURRENT_LINK,
        "source": {"uri": f"file://{CURRENT_LINK}/media/clip.avi", "loop": True, "realtime": True},
        "camera": {
            "csi_pipeline": TWIN.camera.csi_pipeline,
            "rtsp_decode": "software",
            "rtsp_decoder": "avdec_h264",
            "width": 1280,
            "height": 720,
            "fps": 30,
        },
        "results": {"path": RESULTS_FILE, "max_bytes": RESULTS_MAX_BYTES, "backups": 3},
        "topk": 3,
        "metrics": {"port": 9464},
        "samples": {"dir": "/var/lib/edgekit/samples", "every_s": 10.0, "keep": 200},
    }


def test_site_config_carries_the_sample_cadence_the_agent_reads(tmp_path: Path) -> None:
    every = site_config(SourceSpec("rtsp://cam/stream"), TWIN, sample_every_s=0.5)["samples"]
    assert every == {"dir": "/var/lib/edgekit/samples", "every_s": 0.5, "keep": 200}
    path = tmp_path / "camera.json"
    path.write_text(json.dumps(site_config(SourceSpec("rtsp://cam/stream"), TWIN, {}, 2.5)))
    assert load_site_config(str(path)).samples == SamplesConfig(every_s=2.5)
    # None writes the agent's own default, so a provision without --sample-every changes nothing.
    default = site_config(SourceSpec("rtsp://cam/stream"), TWIN, sample_every_s=None)["samples"]
    assert default == site_config(SourceSpec("rtsp://cam/stream"), TWIN)["samples"]
    assert default["every_s"] == SamplesConfig().every_s == 10.0


def test_site_config_for_uri() -> None:
    config = site_config(SourceSpec("rtsp://cam/stream", loop=False), ORIN)
    assert config["source"] == {"uri": "rtsp://cam/stream", "loop": False, "realtime": True}
    assert config["release_dir"] == "/var/lib/edgekit/current"
    assert config["camera"]["rtsp_decoder"] == "nvv4l2decoder enable-max-performance=1"


def test_release_manifest(tmp_path: Path) -> None:
    model = inspect_model(SAMPLES / "model.onnx")
    bundle = Bundle(
        model=model,
        directory=tmp_path,
        files={"model.onnx": model.path, "model.int8.onnx": tmp_path / "model.int8.onnx"},
        calibration_sha256="c" * 64,
        holdout_samples=360,
        fp32_accuracy=0.98,
        host_top1_agreement=1.0,
    )
    manifest = release_manifest(bundle, TWIN, "r1")
    assert manifest == {
        "release": "r1",
        "profile": "twin",
        "backend": "onnxruntime",
        "build": {
            "backend": "onnxruntime",
            "precision": "int8",
            "int8": "qdq",
            "workspace_mib": 0,
            "dla_core": None,
            "stop_service_during_build": False,
            "cuda": "cudart",
        },
        "model": "model.int8.onnx",
        "precision": "int8",
        "task": "classify",
        "detect": None,
        "labels": [str(d) for d in range(10)],
        "preprocess": model.preprocess.to_dict(),
        "onnx_sha256": model.sha256,
        "calibration_sha256": "c" * 64,
        "fp32_nodes": [],
        "mixed_precision": None,
    }
    fp32 = Bundle(**{**bundle.__dict__, "files": {"model.onnx": model.path}})
    orin = release_manifest(fp32, ORIN, "r2")
    assert (orin["model"], orin["precision"], orin["backend"]) == ("model.onnx", "fp16", "tensorrt")
    assert orin["build"]["int8"] == "calibrator" and orin["build"]["workspace_mib"] == 1024


@pytest.mark.parametrize(
    ("profile", "precision", "served"),
    [
        ("twin", "int8", "model.int8.onnx"),  # onnxruntime runs the host's Q/DQ model
        ("orin-nano-8gb-jp62", "int8", "model.onnx"),  # TensorRT calibrates the FP32 model itself
        ("thor-jp72-trt11", "int8", "model.int8.onnx"),  # TensorRT 11: Q/DQ is the only INT8
        ("orin-nano-8gb-jp62", "fp16", "model.onnx"),
        ("twin", "fp32", "model.onnx"),
    ],
)
def test_the_served_model_and_only_it_is_shipped(tmp_path: Path, profile: str, precision: str, served: str) -> None:
    settings = merge_settings(load_profile(profile), {"build": {"precision": precision}})
    model = inspect_model(SAMPLES / "model.onnx")
    files = {name: tmp_path / name for name in ("model.onnx", "model.int8.onnx", "calib.npy", "gate.npz", "agent.pyz")}
    bundle = Bundle(model, tmp_path, files, "c" * 64, 360, 0.98, 1.0)
    assert served_model(settings) == served
    shipped = release_files(bundle, settings, SourceSpec("rtsp://cam/stream"))
    assert served in shipped
    assert ("model.int8.onnx" in shipped) == (served == "model.int8.onnx")
    assert release_manifest(bundle, settings, "r")["model"] == served


def test_the_gate_measures_each_task_by_what_its_users_see() -> None:
    gate = GateReport(360, 0.5, 0.999, 0.1, None, None, 1.0, box_f1=0.0)
    assert gate.measured("classify") == ("top-1 agreement", 0.5)
    # A cosine of 0.999 says nothing about the boxes: a detector is held to matched boxes.
    assert gate.measured("detect") == ("matched-box F1", 0.0)
    assert gate.measured("raw") == ("output cosine similarity", 0.999)
    assert gate.held_to("detect", 0.9).to_dict()["measure"] == "matched-box F1"
