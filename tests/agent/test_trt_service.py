"""The camera service through the TensorRT backend, in its own process and its real threads.

The engine is built when the service starts (nothing cached), in the main thread, and
inference then runs in the pipeline's ``infer`` thread: the one place where a CUDA context
made current only in the loading thread fails (pycuda.autoinit did exactly that), and
where TensorRT's own logger would write among the result records on stdout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from fake_cudart import build_fake_cudart
from test_agent_service import expected_labels

from edgekit.profiles import load_profile
from edgekit.provision import release_files, release_manifest
from edgekit.settings import merge_settings
from edgekit.source import SourceSpec

AGENT_TESTS = Path(__file__).resolve().parent
REPO_ROOT = AGENT_TESTS.parents[1]
SAMPLES = REPO_ROOT / "samples" / "digits"
FRAMES = 40


@pytest.fixture(scope="module")
def bundle(digits_bundle):
    return digits_bundle


@pytest.fixture(scope="module")
def fake_cudart(tmp_path_factory) -> Path:
    return build_fake_cudart(tmp_path_factory.getbasetemp() / "fake-cudart")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """The first frames of the sample clip, so a run takes seconds."""
    capture = cv2.VideoCapture(str(SAMPLES / "clip.avi"))
    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    writer = None
    for _ in range(FRAMES):
        ok, frame = capture.read()
        assert ok
        if writer is None:
            height, width = frame.shape[:2]
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (width, height))
        writer.write(frame)
    assert writer is not None
    writer.release()
    return path


def orin_release(bundle, directory: Path, cuda: str) -> Path:
    """The release provision makes for an Orin Nano on JetPack 6.2, CUDA through ``cuda``."""
    settings = merge_settings(load_profile("orin-nano-8gb-jp62"), {"build": {"cuda": cuda}})
    directory.mkdir()
    for name, path in release_files(bundle, settings, SourceSpec("rtsp://camera/stream")).items():
        shutil.copy(path, directory / name)
    (directory / "release.json").write_text(json.dumps(release_manifest(bundle, settings, "r-orin")))
    return directory


def serve(seam: str, release: Path, clip: Path, tmp_path: Path, fake_cudart: Path) -> subprocess.CompletedProcess:
    config = tmp_path / "camera.json"
    config.write_text(
        json.dumps(
            {
                "release_dir": str(release),
                "source": {"uri": clip.as_uri(), "loop": False, "realtime": False},
                "results": {"path": str(tmp_path / "results.jsonl"), "max_bytes": 1 << 20, "backups": 1},
                "topk": 1,
                "metrics": None,
                "samples": None,
            }
        )
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(AGENT_TESTS), str(REPO_ROOT)]))
    env.pop("CUDA_MODULE_LOADING", None)
    return subprocess.run(
        [sys.executable, str(AGENT_TESTS / "trt_device.py"), seam, str(fake_cudart), "--"]
        + ["serve", "--config", str(config), "--engines-dir", str(tmp_path / "engines")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.mark.parametrize("seam", ["cudart", "pycuda"])
def test_the_service_infers_through_tensorrt_in_its_pipeline_thread(seam, bundle, clip, fake_cudart, tmp_path):
    release = orin_release(bundle, tmp_path / "release", seam)
    done = serve(seam, release, clip, tmp_path, fake_cudart)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"ended after {FRAMES} frames" in done.stderr
    # Built here, calibrated on every image, then every frame inferred in the infer thread.
    # 300 images: batches of 6, the largest up to 8 that leaves none out.
    assert "calibrating on 300 of 300 images in batches of 6" in done.stderr
    assert "invalid device context" not in done.stderr

    # stdout is the result records and nothing else; TensorRT's warnings went to stderr.
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [record["frame"] for record in records] == list(range(FRAMES))
    assert "TensorRT warning: CUDA lazy loading is not enabled" in done.stderr
    assert [record["top"][0]["label"] for record in records] == expected_labels(clip, release, release / "model.onnx")
    assert len([path for path in (tmp_path / "engines").glob("*.engine")]) == 1
