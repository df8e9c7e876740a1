"""End to end: field recalibration on a twin of its own, under real systemd.

The twin is provisioned with the sample digits clip (calibrated on the sample set), then its
camera is switched to the same scene at night. Input drift stays low on the calibration scene
and rises past its threshold on the night one; `edgekit calibrate` recalibrates from a folder
(with corrupt files and duplicates in it) and from the service's own sample frames, each time
with the new release current and the old one previous; blank frames are refused by the gate
while the old release keeps serving; and bad input is refused with one sentence, changing
nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from script_modules import load_script
from test_camera_twin import wait_for
from test_provision_twin import SAMPLES, edgekit, on_twin, provision_args

from edgekit.twin import TwinInfo

pytestmark = pytest.mark.e2e
STATE = "/var/lib/edgekit"
# The ring fills within a minute at 10 frames a second (the night clip shows a digit for 2 of 30).
EVERY = ("--sample-every", "0.1")
TRIAL = ("--trial-results", "30", "--trial-deadline", "60")
MODELS = Path(__file__).resolve().parents[1] / "data" / "models"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recalibrate-home")


@pytest.fixture(scope="module")
def night(home: Path) -> dict[str, Path]:
    """The sample scene at night: a clip of 360 digits and the same frames as labelled PNGs."""
    scene = load_script("changed_scene")
    clip, images = home / "night.avi", home / "night"
    scene.write_changed_scene(clip, SAMPLES / "holdout")
    scene.write_night_images(images, SAMPLES / "holdout")
    return {"clip": clip, "images": images}


@pytest.fixture(scope="module")
def metrics_port(free_ports: Callable[[], int]) -> str:
    """The twins share the host's loopback: another twin's service may hold the default port,
    and then this one serves no metrics and status shows no drift."""
    return str(free_ports())


@pytest.fixture(scope="module")
def releases() -> dict[str, str]:
    """The release ids the tests make, by role, for the tests after them."""
    return {}


def provision(twin: TwinInfo, home: Path, source: Path, metrics_port: str) -> subprocess.CompletedProcess[str]:
    args = provision_args(twin, home / "known_hosts", "--accept-new-host-key", *EVERY, *TRIAL)
    args += ["--metrics-port", metrics_port]
    args[args.index("--source") + 1] = str(source)
    return edgekit(*args, home=home)


def calibrate(twin: TwinInfo, home: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    ssh = ("--identity", twin.identity, "--known-hosts", str(home / "known_hosts"), "--no-ssh-config")
    return edgekit("calibrate", twin.target, *ssh, *TRIAL, *extra, home=home)


def current(twin: TwinInfo) -> str:
    return on_twin(twin, "readlink", f"{STATE}/current").rsplit("/", 1)[-1]


def previous(twin: TwinInfo) -> str:
    return on_twin(twin, "readlink", f"{STATE}/previous").rsplit("/", 1)[-1]


def status(twin: TwinInfo, home: Path) -> dict[str, Any]:
    ssh = ("--identity", twin.identity, "--known-hosts", str(home / "known_hosts"), "--no-ssh-config")
    done = edgekit("status", twin.target, *ssh, "--json", home=home)
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def drift_past(twin: TwinInfo, home: Path, release: str, above: bool) -> float:
    """The drift score once the service serving ``release`` has one (its window restarts with the
    process, so no frame of an earlier release is in it) and it is on the asked side.

    The service scores once its window holds 100 frames, one in 10 of the camera's: about 35 s
    at the clip's 30 fps, longer when the other twins of the session share the two cores."""
    seen: list[Any] = []

    def check() -> float | None:
        metrics = status(twin, home).get("metrics") or {}
        drift = metrics.get("drift") or {}
        score = drift.get("score")
        info = metrics.get("info") or {}
        seen[:] = [info.get("release"), drift, metrics.get("fps")]
        if info.get("release") != release or score is None:
            return None
        return float(score) if (score > drift["threshold"]) == above else None

    try:
        found: float = wait_for(f"the drift {'above' if above else 'below'} its threshold", check, 240)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: release, drift, fps = {seen}") from None
    return found


def sample_count(twin: TwinInfo) -> int:
    return int(on_twin(twin, "sh", "-c", f"ls {STATE}/samples | wc -l"))


def answer(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in done.stderr, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def sentence(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    return " ".join(done.stderr.split())


def test_drift_stays_low_on_the_calibration_scene_and_rises_at_night(
    recalibrate_twin: TwinInfo, home: Path, night: dict[str, Path], releases: dict[str, str], metrics_port: str
) -> None:
    done = provision(recalibrate_twin, home, SAMPLES / "clip.avi", metrics_port)
    assert done.returncode == 0, done.stderr
    releases["day"] = current(recalibrate_twin)
    assert drift_past(recalibrate_twin, home, releases["day"], above=False) < 0.3
    done = provision(recalibrate_twin, home, night["clip"], metrics_port)
    assert done.returncode == 0, done.stderr
    releases["night"] = current(recalibrate_twin)
    assert releases["night"] != releases["day"]
    assert drift_past(recalibrate_twin, home, releases["night"], above=True) > 0.3
    shown = edgekit(
        "status",
        recalibrate_twin.target,
        "--identity",
        recalibrate_twin.identity,
        "--known-hosts",
        str(home / "known_hosts"),
        "--no-ssh-config",
        home=home,
    )
    assert "run `edgekit calibrate HOST --from-device`" in " ".join(shown.stdout.replace("│", " ").split())


def test_bad_input_is_refused_with_one_sentence_and_changes_nothing(
    recalibrate_twin: TwinInfo, home: Path, night: dict[str, Path], releases: dict[str, str]
) -> None:
    serving = current(recalibrate_twin)
    empty = home / "empty"
    empty.mkdir()
    few = home / "few"
    few.mkdir()
    for name in sorted(p.name for p in night["images"].glob("*.png"))[:40]:
        shutil.copy(night["images"] / name, few / name)
    not_a_video = home / "not-a-video.avi"
    not_a_video.write_text("not a video\n")
    cases = [
        (("--images", str(empty)), 3, "holds no usable images"),
        (("--images", str(home / "missing")), 3, "does not exist"),
        (("--video", str(not_a_video)), 3, "has no frames OpenCV can read"),
        (
            ("--images", str(few)),
            3,
            r"holds 40 usable calibration images; at least 100 are needed, so add 60 more",
        ),
        (
            ("--images", str(few), "--video", str(night["clip"])),
            2,
            r"one way: --images DIR, --video FILE or",
        ),
        (
            ("--images", str(night["images"]), "--model", str(MODELS / "torchvision-mobilenet_v3_small-dynamic.onnx")),
            2,
            r"pass that release's model with --model",
        ),
    ]
    for args, code, expected in cases:
        done = calibrate(recalibrate_twin, home, *args, "--check")
        assert done.returncode == code, (args, done.stderr)
        text = sentence(done)
        assert re.search(expected, text), (args, text)
    assert current(recalibrate_twin) == serving


def test_recalibrate_from_a_folder_skips_corrupt_files_and_removes_duplicates(
    recalibrate_twin: TwinInfo, home: Path, night: dict[str, Path], releases: dict[str, str]
) -> None:
    frames = home / "folder"
    shutil.copytree(night["images"], frames)
    (frames / "labels.csv").unlink()
    originals = sorted(frames.glob("*.png"))
    for path in originals[:5]:
        # The same frame again, re-encoded: a near-duplicate, not a byte copy.
        cv2.imwrite(str(frames / f"{path.stem}-again.jpg"), cv2.imread(str(path)), [cv2.IMWRITE_JPEG_QUALITY, 90])
    good = cv2.imencode(".jpg", cv2.imread(str(originals[0])))[1].tobytes()
    (frames / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (frames / "empty.png").write_bytes(b"")
    (frames / "notes.jpg").write_text("not an image\n")
    done = calibrate(recalibrate_twin, home, "--images", str(frames), "--json")
    assert done.returncode == 0, done.stderr
    result = answer(done)
    curation = result["data"]["curation"]
    assert sorted(s["name"] for s in curation["skipped"]) == ["empty.png", "notes.jpg", "truncated.jpg"]
    pairs = [{d["name"], d["of"]} for d in curation["duplicates"]]
    assert all({path.name, f"{path.stem}-again.jpg"} in pairs for path in originals[:5])
    assert curation["usable"] == curation["images"] - len(curation["skipped"]) - len(curation["duplicates"])
    assert result["data"]["holdout"] == "time blocks"
    comparison = result["comparison"]
    assert comparison["current_release"] == releases["night"]
    assert comparison["current"]["samples"] == comparison["new"]["samples"] == result["data"]["holdout_frames"]
    assert comparison["refused"] is None and result["activated"]
    assert current(recalibrate_twin) == result["release"] != releases["night"]
    assert previous(recalibrate_twin) == releases["night"]
    releases["folder"] = result["release"]


def test_recalibrate_from_the_device_samples_and_drift_falls(
    recalibrate_twin: TwinInfo, home: Path, releases: dict[str, str]
) -> None:
    wait_for("150 sample frames of the night scene", lambda: sample_count(recalibrate_twin) >= 150, 90)
    # The held-out frames are few (about 40): one disagreement is 2.5 %, under the default 99 %.
    done = calibrate(recalibrate_twin, home, "--from-device", "--gate-threshold", "0.9", "--json")
    assert done.returncode == 0, done.stderr
    result = answer(done)
    assert result["data"]["source"] == "the device's sample ring"
    assert result["data"]["curation"]["usable"] >= 100
    assert result["previous"] == releases["folder"] and result["activated"]
    assert current(recalibrate_twin) == result["release"] not in releases.values()
    assert previous(recalibrate_twin) == releases["folder"]
    releases["device"] = result["release"]
    # Calibrated on the night scene, the release sees no drift in it.
    assert drift_past(recalibrate_twin, home, result["release"], above=False) < 0.3


def test_blank_frames_are_refused_by_the_gate_and_the_old_release_keeps_serving(
    recalibrate_twin: TwinInfo, home: Path, night: dict[str, Path], releases: dict[str, str]
) -> None:
    blank = home / "blank"
    blank.mkdir()
    rng = np.random.default_rng(0)
    for index in range(120):
        # Black with sensor noise: distinct frames to curation, nothing to calibrate a digit on.
        frame = rng.integers(0, 12, (128, 128, 1), dtype=np.uint8).repeat(3, axis=2)
        cv2.imwrite(str(blank / f"blank-{index:04d}.png"), frame)
    serving = current(recalibrate_twin)
    done = calibrate(recalibrate_twin, home, "--images", str(blank), "--holdout", str(night["images"]))
    assert done.returncode == 6, done.stderr
    text = sentence(done)
    assert f"while the serving release {serving} scores" in text and "kept as failed gate" in text
    shown = " ".join(done.stdout.split())
    assert "refused" in shown and "accuracy" in shown
    assert current(recalibrate_twin) == serving
    listed = edgekit(
        "releases",
        recalibrate_twin.target,
        "--identity",
        recalibrate_twin.identity,
        "--known-hosts",
        str(home / "known_hosts"),
        "--no-ssh-config",
        "--json",
        home=home,
    )
    states = {r["release"]: r["state"] for r in json.loads(listed.stdout)["releases"]}
    assert "failed gate" in states.values()
    assert on_twin(recalibrate_twin, "systemctl", "is-active", "edgekit-camera.service") == "active"
