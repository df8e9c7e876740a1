"""The pure parts of ``provision``: the site config and the release manifest it writes."""

from __future__ import annotations

from pathlib import Path

from edgekit.bundle import Bundle
from edgekit.device.layout import CURRENT_LINK, RESULTS_FILE
from edgekit.model import inspect_model
from edgekit.profiles import load_profile
from edgekit.provision import RESULTS_MAX_BYTES, release_manifest, site_config
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
    }


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
        },
        "model": "model.int8.onnx",
        "precision": "int8",
        "task": "classify",
        "labels": [str(d) for d in range(10)],
        "preprocess": model.preprocess.to_dict(),
        "onnx_sha256": model.sha256,
        "calibration_sha256": "c" * 64,
    }
    fp32 = Bundle(**{**bundle.__dict__, "files": {"model.onnx": model.path}})
    orin = release_manifest(fp32, ORIN, "r2")
    assert (orin["model"], orin["precision"], orin["backend"]) == ("model.onnx", "fp16", "tensorrt")
    assert orin["build"]["int8"] == "calibrator" and orin["build"]["workspace_mib"] == 1024
