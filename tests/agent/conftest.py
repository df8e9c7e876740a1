"""Real artefacts for the agent tests: a tiny ONNX classifier, a release, videos, sockets."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgekit.bundle
from edgekit.bundle import Bundle, BundleRequest, build_bundle

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "digits"

LABELS = [f"c{i}" for i in range(10)]
PREPROCESS = {
    "input_name": "image",
    "height": 8,
    "width": 8,
    "channels": 1,
    "layout": "NCHW",
    "color": "gray",
    "resize": "stretch",
    "scale": 1.0 / 255.0,
    "mean": [0.5],
    "std": [0.25],
}


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """image [1,1,8,8] -> Flatten -> Gemm -> logits [1,10], with fixed random weights."""
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(64, 10)).astype(np.float32)
    bias = rng.normal(size=(10,)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["image"], ["flat"], axis=1),
            helper.make_node("Gemm", ["flat", "weights", "bias"], ["logits"]),
        ],
        "tiny_classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        initializer=[
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(bias, "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    # An IR version every onnxruntime the agent may meet on a Jetson can read.
    model.ir_version = 7
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture
def release_dir(tmp_path: Path, model_path: Path) -> Path:
    directory = tmp_path / "release"
    directory.mkdir()
    shutil.copy(model_path, directory / "model.int8.onnx")
    write_json(
        directory / "release.json",
        {
            "release": "r-test",
            "backend": "onnxruntime",
            "model": "model.int8.onnx",
            "precision": "int8",
            "build": {"backend": "onnxruntime", "int8": "qdq", "workspace_mib": 0, "dla_core": None},
            "task": "classify",
            "labels": LABELS,
            "preprocess": PREPROCESS,
        },
    )
    return directory


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """Writes a real MJPG .avi of random frames, like a recorded camera."""

    def make(frames: int = 10, fps: float = 20.0, name: str = "clip.avi") -> Path:
        path = tmp_path / name
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
        assert writer.isOpened()
        rng = np.random.default_rng(frames)
        for _ in range(frames):
            writer.write(rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8))
        writer.release()
        return path

    return make


@pytest.fixture
def make_site_config(tmp_path: Path, release_dir: Path) -> Callable[..., Path]:
    def make(video: Path, loop: bool = False, realtime: bool = True, **overrides: Any) -> Path:
        config = {
            "release_dir": str(release_dir),
            "source": {"uri": video.as_uri(), "loop": loop, "realtime": realtime},
            "results": {
                "path": str(tmp_path / "out" / "results.jsonl"),
                "max_bytes": 1 << 20,
                "backups": 2,
            },
            "topk": 3,
            # Never the device defaults (port 9464, /var/lib/edgekit/samples) on a test machine.
            "metrics": None,
            "samples": {"dir": str(tmp_path / "samples"), "every_s": 1.0, "keep": 5},
        }
        config.update(overrides)
        return write_json(tmp_path / "camera.json", config)

    return make


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket standing in for systemd's $NOTIFY_SOCKET."""
    # tmp_path can exceed the 108-byte limit of a unix socket path.
    directory = tempfile.mkdtemp(prefix="ek-notify-", dir="/tmp")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    try:
        yield sock, path
    finally:
        sock.close()
        shutil.rmtree(directory)


def _digits_bundle(tmp_path_factory: pytest.TempPathFactory, holdout: Path | None) -> Bundle:
    """The host's own bundle of the sample digits model, cached in a folder of the test run's."""
    original = edgekit.bundle.CACHE_DIR
    edgekit.bundle.CACHE_DIR = tmp_path_factory.mktemp("bundles")
    try:
        return build_bundle(
            BundleRequest(model=SAMPLES / "model.onnx", calib_dir=SAMPLES / "calib", holdout_dir=holdout)
        )
    finally:
        edgekit.bundle.CACHE_DIR = original


@pytest.fixture(scope="session")
def digits_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """With the sample's labelled hold-out set: 300 calibration images, 360 gate samples."""
    return _digits_bundle(tmp_path_factory, SAMPLES / "holdout")


@pytest.fixture(scope="session")
def digits_split_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """Hold-out split off the calibration images: 240 to calibrate on, 60 for the gate."""
    return _digits_bundle(tmp_path_factory, None)
