"""The pure parts of ``provision``: preflight on device facts, sources, site config, manifest."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from edgekit.bundle import Bundle
from edgekit.device.layout import CURRENT_LINK, RESULTS_FILE
from edgekit.errors import PreflightFailed
from edgekit.model import inspect_model
from edgekit.provision import (
    MIN_FREE_BYTES,
    RESULTS_MAX_BYTES,
    SourceSpec,
    preflight,
    release_manifest,
    site_config,
)

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "digits"

GOOD_FACTS: dict[str, Any] = {
    "python": {"version": "3.10.12", "executable": "/usr/bin/python3"},
    "platform": {"machine": "aarch64", "system": "Linux", "glibc": "2.35"},
    "jetson": {"model": "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super", "l4t": "36.4.3"},
    "cv2": {"version": "4.8.0", "gstreamer": True},
    "numpy": "1.21.5",
    "tensorrt": "10.3.0",
    "onnxruntime": None,
    "systemd": True,
    "disk": {"path": "/var/lib/edgekit", "free_bytes": 20 * 2**30, "total_bytes": 64 * 2**30},
    "memory": {"total_bytes": 8 * 2**30},
    "cameras": ["/dev/video0"],
    "hostname": "jetson",
}


def facts(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD_FACTS)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return data


def refusal(data: dict[str, Any]) -> str:
    with pytest.raises(PreflightFailed) as info:
        preflight(data)
    message = str(info.value)
    assert "\n" not in message and message.endswith(".")
    return message


@pytest.mark.parametrize("version", ["3.8.10", "3.10.12", "3.12.3", "3.11.2"])
def test_good_facts_pass(version: str) -> None:
    preflight(facts(python={"version": version}))


def test_exactly_the_minimum_disk_passes() -> None:
    preflight(facts(disk={"free_bytes": MIN_FREE_BYTES}))


@pytest.mark.parametrize("version", ["3.6.9", "3.7.17", "2.7.18"])
def test_old_python_refused(version: str) -> None:
    message = refusal(facts(python={"version": version}))
    assert version in message and "3.8" in message


@pytest.mark.parametrize("systemd", [False, None])
def test_no_systemd_refused(systemd: bool | None) -> None:
    assert "systemd" in refusal(facts(systemd=systemd))


def test_missing_systemd_fact_refused() -> None:
    data = facts()
    del data["systemd"]
    assert "systemd" in refusal(data)


def test_no_cv2_refused() -> None:
    assert "cv2" in refusal(facts(cv2=None))
    data = facts()
    del data["cv2"]
    assert "python3-opencv" in refusal(data)


def test_low_disk_refused() -> None:
    message = refusal(facts(disk={"free_bytes": 100 * 2**20, "path": "/var/lib/edgekit"}))
    assert "100 MiB" in message
    assert "/var/lib/edgekit" in message
    assert f"{MIN_FREE_BYTES // 2**20} MiB" in message
    assert "MiB" in refusal(facts(disk={"free_bytes": MIN_FREE_BYTES - 1, "path": "/"}))


def test_checks_run_in_order() -> None:
    # An old Python is named first even if everything else is wrong too.
    bad = facts(python={"version": "3.6.9"}, systemd=False, cv2=None, disk={"free_bytes": 0})
    assert "Python" in refusal(bad)
    assert "systemd" in refusal(facts(systemd=False, cv2=None, disk={"free_bytes": 0}))
    assert "cv2" in refusal(facts(cv2=None, disk={"free_bytes": 0}))


def test_source_local_file(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    video.write_bytes(b"video")
    spec = SourceSpec(str(video))
    assert spec.local_file() == video
    assert spec.loop is True
    assert spec.device_uri("/var/lib/edgekit/current") == "file:///var/lib/edgekit/current/media/clip.avi"


def test_source_local_file_with_tilde(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "clip.avi").write_bytes(b"video")
    assert SourceSpec("~/clip.avi").local_file() == tmp_path / "clip.avi"


@pytest.mark.parametrize(
    "uri", ["file:///dev/video0", "rtsp://10.0.0.9:554/stream", "v4l2:///dev/video0", "file:///opt/clip.avi"]
)
def test_source_uri(uri: str) -> None:
    spec = SourceSpec(uri, loop=False)
    assert spec.local_file() is None
    assert spec.device_uri("/anything") == uri


def test_source_neither(tmp_path: Path) -> None:
    for text in [str(tmp_path / "missing.avi"), "/dev/video0-on-the-device", str(tmp_path)]:
        spec = SourceSpec(text)
        assert spec.local_file() is None
        with pytest.raises(PreflightFailed) as info:
            spec.device_uri("/r")
        assert repr(text) in str(info.value)


def test_site_config_for_local_file() -> None:
    config = site_config(SourceSpec(str(SAMPLES / "clip.avi")))
    assert config == {
        "release_dir": CURRENT_LINK,
        "source": {"uri": f"file://{CURRENT_LINK}/media/clip.avi", "loop": True, "realtime": True},
        "results": {"path": RESULTS_FILE, "max_bytes": RESULTS_MAX_BYTES, "backups": 3},
        "topk": 3,
    }


def test_site_config_for_uri() -> None:
    config = site_config(SourceSpec("rtsp://cam/stream", loop=False))
    assert config["source"] == {"uri": "rtsp://cam/stream", "loop": False, "realtime": True}
    assert config["release_dir"] == "/var/lib/edgekit/current"


def test_site_config_refuses_bad_source() -> None:
    with pytest.raises(PreflightFailed):
        site_config(SourceSpec("nowhere"))


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
    manifest = release_manifest(bundle, "int8", "r1")
    assert manifest == {
        "release": "r1",
        "backend": "onnxruntime",
        "model": "model.int8.onnx",
        "precision": "int8",
        "task": "classify",
        "labels": [str(d) for d in range(10)],
        "preprocess": model.preprocess.to_dict(),
        "onnx_sha256": model.sha256,
        "calibration_sha256": "c" * 64,
    }
    fp32 = Bundle(**{**bundle.__dict__, "files": {"model.onnx": model.path}})
    assert release_manifest(fp32, "fp32", "r2")["model"] == "model.onnx"


def test_device_without_glibc_refused() -> None:
    assert "glibc" in refusal(facts(platform={"glibc": None}))
