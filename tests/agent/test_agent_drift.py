"""Input drift: frame statistics, the bounded score, the reference the release carries, the
metric, the sample ring's variety, and a real service that sees a darkened scene."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import onnxruntime
import pytest
from script_modules import load_script
from test_agent_service import REPO_ROOT

from edgekit.agent import drift
from edgekit.agent.config import SamplesConfig
from edgekit.agent.metrics import Metrics, parse_prometheus
from edgekit.agent.preprocess import PreprocessSpec, preprocess
from edgekit.agent.samples import SampleRing
from edgekit.cli.status import RECALIBRATE, _table
from edgekit.device.status import DeviceStatus
from edgekit.model import inspect_model

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "digits"


def images(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(path), cv2.IMREAD_COLOR) for path in sorted(folder.glob("*.png"))]


def clip_frames(path: Path = SAMPLES / "clip.avi") -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


# The scene at night as scripts/lib/changed_scene.py writes it, so the drift these tests see is
# the drift a recalibration run on that scene sees.
changed = load_script("changed_scene").night


class Model:
    """A release's model as the service runs it: its preprocessing, then onnxruntime."""

    def __init__(self, path: Path, spec: PreprocessSpec) -> None:
        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.spec = spec

    def __call__(self, image: np.ndarray) -> list[np.ndarray]:
        outputs: list[np.ndarray] = self.session.run(None, {self.spec.input_name: preprocess(image, self.spec)})
        return outputs

    def scores(self, frames: list[np.ndarray]) -> list[float]:
        found = [drift.top_score(self(frame)[0], "classify", None) for frame in frames]
        return [score for score in found if score is not None]


@pytest.fixture(scope="module")
def digits() -> Model:
    return Model(SAMPLES / "model.onnx", inspect_model(SAMPLES / "model.onnx").preprocess)


@pytest.fixture(scope="module")
def digits_reference(digits: Model) -> drift.Summary:
    return drift.reference_summary(images(SAMPLES / "calib"), digits.scores(images(SAMPLES / "holdout")))


def window_over(frames: list[np.ndarray], ref: drift.Summary, model: Model) -> drift.DriftWindow:
    window = drift.DriftWindow(ref, "classify", every=1)
    for frame in frames:
        window.offer(frame, model(frame))
    return window


def test_statistics_of_a_frame() -> None:
    grey = np.full((480, 640, 3), 100, dtype=np.uint8)
    stats = drift.frame_stats(grey)
    assert stats.luma_mean == 100.0 and stats.luma_var == 0.0
    assert stats.luma_hist.sum() == pytest.approx(1.0) and stats.luma_hist[100 >> 4] == 1.0
    # Grey has no colour: all of it in the middle chroma bin.
    middle = (drift.COLOUR_LEVELS // 2) * drift.COLOUR_LEVELS + drift.COLOUR_LEVELS // 2
    assert stats.colour_hist[middle] == 1.0
    assert stats.thumbnail.shape == (drift.THUMBNAIL[1], drift.THUMBNAIL[0], 3)
    red = np.zeros((36, 64, 3), dtype=np.uint8)
    red[:, :, 2] = 255
    assert drift.frame_stats(red).colour_hist[middle] == 0.0
    # A single-channel frame is measured as its grey BGR.
    np.testing.assert_array_equal(drift.frame_stats(grey[:, :, 0]).luma_hist, stats.luma_hist)


def test_top_scores_by_task() -> None:
    logits = np.array([[0.0, 0.0, np.log(2.0)]])
    assert drift.top_score(logits, "classify", None) == pytest.approx(0.5)
    # Probabilities already: kept as they are.
    assert drift.top_score(np.array([[0.1, 0.7, 0.2]]), "classify", None) == pytest.approx(0.7)
    assert drift.top_score(np.zeros((1, 4)), "raw", None) is None


def test_the_score_is_bounded() -> None:
    black, white = np.zeros((36, 64), np.float64), np.ones((36, 64), np.float64)
    assert drift.js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    assert drift.js_distance(np.array([0.3, 0.7]), np.array([0.3, 0.7])) == 0.0
    assert drift.level_distance(0.0, 1.0, 255.0, 1.0) <= 1.0
    dark = drift.summarize([drift.frame_stats((black * 0).astype(np.uint8))] * 3, [0.1])
    bright = drift.summarize([drift.frame_stats((white * 255).astype(np.uint8))] * 3, [0.99])
    assert 0.99 <= drift.drift_score(dark, bright) <= 1.0
    rng = np.random.default_rng(3)
    for _ in range(20):
        one = [drift.frame_stats(rng.integers(0, 256, (36, 64, 3), dtype=np.uint8)) for _ in range(2)]
        other = [drift.frame_stats(rng.integers(0, 60, (36, 64, 3), dtype=np.uint8)) for _ in range(2)]
        score = drift.drift_score(drift.summarize(one, list(rng.random(5))), drift.summarize(other, [1.0]))
        assert 0.0 <= score <= 1.0


def test_a_darker_lower_contrast_scene_drifts_and_the_calibration_scene_does_not(
    digits: Model, digits_reference: drift.Summary
) -> None:
    frames = clip_frames()
    assert len(frames) == 300
    same = window_over(frames, digits_reference, digits).drift()
    night = window_over([changed(frame) for frame in frames], digits_reference, digits).drift()
    assert same.score is not None and night.score is not None
    assert same.score < drift.THRESHOLD < night.score
    assert same.samples == night.samples == 300
    assert set(night.components) == set(drift.COMPONENTS)


def test_no_score_before_the_window_has_enough_frames(digits: Model, digits_reference: drift.Summary) -> None:
    window = drift.DriftWindow(digits_reference, "classify")
    frames = (clip_frames() * 4)[: drift.EVERY * (drift.MIN_FRAMES - 1)]
    reports = [window.offer(frame, digits(frame)) for frame in frames]
    # One frame in EVERY joins the window.
    assert sum(report is not None for report in reports) == drift.MIN_FRAMES - 1
    last = window.drift()
    assert last.score is None and last.samples == drift.MIN_FRAMES - 1 and last.window == drift.WINDOW


def test_the_reference_file_round_trips(tmp_path: Path, digits_reference: drift.Summary) -> None:
    assert drift.load_reference(str(tmp_path)) is None
    (tmp_path / drift.DRIFT_FILE).write_text(json.dumps(digits_reference.to_dict()))
    loaded = drift.load_reference(str(tmp_path))
    assert loaded is not None
    assert loaded.to_dict() == digits_reference.to_dict()
    assert drift.drift_score(loaded, digits_reference) == 0.0
    # Another agent's format or garbage: no reference, so no drift, never a failed start.
    for text in ("{not json", json.dumps({**digits_reference.to_dict(), "format": 99}), "[]"):
        (tmp_path / drift.DRIFT_FILE).write_text(text)
        assert drift.load_reference(str(tmp_path)) is None


def test_the_host_reference_is_the_agent_statistics_of_the_same_frames(digits_bundle, digits: Model) -> None:
    """The release's drift.json, made by the host's bundle, equals what the service's window
    computes when the calibration images are its frames and the held-out frames its outputs."""
    shipped = drift.load_reference(str(digits_bundle.files["drift.json"].parent))
    assert shipped is not None and shipped.frames == 300
    window = drift.DriftWindow(shipped, "classify", every=1, window=1000)
    for frame in images(SAMPLES / "calib"):
        window.offer(frame, [])
    device = window.summary()
    scores = drift.summarize(
        [drift.frame_stats(f) for f in images(SAMPLES / "holdout")], digits.scores(images(SAMPLES / "holdout"))
    )
    assert device._replace(score_hist=scores.score_hist, scores=scores.scores).to_dict() == shipped.to_dict()
    assert drift.drift_score(device._replace(score_hist=shipped.score_hist), shipped) == 0.0


def test_the_metric_is_in_the_prometheus_text_and_the_snapshot() -> None:
    metrics = Metrics()
    assert metrics.snapshot()["drift"] is None and "input_drift" not in metrics.render()
    metrics.set_drift(None, 4, 300, 0.3, {})
    assert "edgekit_input_drift NaN\n" in metrics.render()
    assert parse_prometheus(metrics.render()) == metrics.snapshot()
    metrics.set_drift(0.42, 120, 300, 0.3, {"luma": 0.42, "level": 0.2})
    text = metrics.render()
    assert "# TYPE edgekit_input_drift gauge\nedgekit_input_drift 0.42\n" in text
    assert 'edgekit_input_drift_component{component="luma"} 0.42\n' in text
    snapshot = metrics.snapshot()
    assert snapshot["drift"] == {
        "score": 0.42,
        "threshold": 0.3,
        "samples": 120,
        "window": 300,
        "components": {"luma": 0.42, "level": 0.2},
    }
    assert parse_prometheus(text) == snapshot


def status_with(drift_snapshot: dict | None, capsys: pytest.CaptureFixture[str]) -> str:
    metrics = Metrics()
    if drift_snapshot is not None:
        metrics.set_drift(**drift_snapshot)
    parsed = parse_prometheus(metrics.render())
    _table(DeviceStatus("jetson@h:22", "active", "running", 1, 0, "", 9464, parsed, None))
    # The value column wraps on a narrow console: read it back without the borders.
    return " ".join(capsys.readouterr().out.replace("│", " ").split())


def test_status_says_to_recalibrate_past_the_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    past = status_with(dict(score=0.61, samples=300, window=300, threshold=0.3, components={}), capsys)
    assert "input drift 0.61 (threshold 0.30): " + RECALIBRATE in past
    below = status_with(dict(score=0.12, samples=300, window=300, threshold=0.3, components={}), capsys)
    assert "input drift 0.12 (threshold 0.30)" in below and RECALIBRATE.split(";")[0] not in below
    assert "window filling: 7 frames" in status_with(
        dict(score=None, samples=7, window=300, threshold=0.3, components={}), capsys
    )
    assert "input drift not measured" in status_with(None, capsys)


def test_the_sample_ring_keeps_the_frames_that_differ(tmp_path: Path) -> None:
    clock = [1_700_000_000.0]
    ring = SampleRing(SamplesConfig(dir=str(tmp_path), every_s=0.0, keep=10), print, lambda: clock[0])
    same = np.full((48, 64, 3), 90, dtype=np.uint8)
    different = []
    for value in (10, 60, 140, 200, 250):
        frame = np.zeros((48, 64, 3), dtype=np.uint8)
        frame[:, : value // 8] = value
        different.append(frame)
    paths = []
    for index in range(55):
        # The different frames come first, then the scene stands still for a long time.
        paths.append(ring.offer(different[index] if index < 5 else same))
        clock[0] += 1.0
    kept = sorted(os.listdir(tmp_path))
    assert len(kept) == 10
    assert {os.path.basename(p) for p in paths[:5]} <= set(kept)
    # Of the identical frames, the newest stay: the ring still follows the present.
    assert os.path.basename(paths[-1]) in kept and os.path.basename(paths[5]) not in kept


def test_below_its_size_the_ring_keeps_everything(tmp_path: Path) -> None:
    clock = [1_700_000_000.0]
    ring = SampleRing(SamplesConfig(dir=str(tmp_path), every_s=0.0, keep=10), print, lambda: clock[0])
    for _ in range(10):
        ring.offer(np.zeros((48, 64, 3), dtype=np.uint8))
        clock[0] += 1.0
    assert len(os.listdir(tmp_path)) == 10


def write_video(path: Path, frames: list[np.ndarray]) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def served_drift(make_site_config, release_dir: Path, video: Path, port: int) -> dict:
    """The drift a real service reports once its window holds MIN_FRAMES frames."""
    config = make_site_config(video, loop=True, realtime=False, metrics={"port": port})
    # Results on stdout are not read here: they would fill the pipe and stall the service.
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit.agent", "serve", "--config", str(config)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        found = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                    found = parse_prometheus(answer.read().decode())["drift"]
            except (urllib.error.URLError, ConnectionError):
                found = None
            if found is not None and found["score"] is not None:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert found is not None and found["score"] is not None, stderr
    return found


def test_the_service_reports_drift_on_a_darkened_scene_only(
    make_site_config, release_dir: Path, tmp_path: Path, free_ports
) -> None:
    # The sample digits model serves, so its top scores are those of a trained classifier.
    release = json.loads((release_dir / "release.json").read_text())
    spec = inspect_model(SAMPLES / "model.onnx").preprocess
    shutil.copy(SAMPLES / "model.onnx", release_dir / release["model"])
    (release_dir / "release.json").write_text(json.dumps({**release, "preprocess": spec.to_dict()}))
    model = Model(release_dir / release["model"], spec)
    ref = drift.reference_summary(images(SAMPLES / "calib"), model.scores(images(SAMPLES / "holdout")))
    (release_dir / drift.DRIFT_FILE).write_text(json.dumps(ref.to_dict()))
    frames = clip_frames()
    calm = served_drift(make_site_config, release_dir, SAMPLES / "clip.avi", free_ports())
    night_video = write_video(tmp_path / "night.avi", [changed(frame) for frame in frames])
    night = served_drift(make_site_config, release_dir, night_video, free_ports())
    assert calm["score"] < drift.THRESHOLD < night["score"], (calm, night)
    assert calm["threshold"] == night["threshold"] == drift.THRESHOLD
    assert night["samples"] >= drift.MIN_FRAMES and night["window"] == drift.WINDOW
