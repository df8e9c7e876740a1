"""``edgekit calibrate``'s own steps (edgekit.recalibration) on a fake device and real files:
where the frames come from, what is read of the serving release, the device's sample ring,
the model it recalibrates and the calibration / hold-out split. The stages it shares with
provision are tested with provision (test_provision_stages.py); the whole command on a twin in
tests/e2e/test_recalibrate_twin.py."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from script_modules import load_script

from edgekit.curation import FLOOR
from edgekit.device.layout import CONFIG_FILE, CURRENT_LINK, RELEASES_DIR, SAMPLES
from edgekit.errors import DeviceError, DeviceUnreachable, ModelError, UsageError
from edgekit.exporters import ModelOverrides
from edgekit.model import inspect_model
from edgekit.provision import Reporter
from edgekit.recalibration import (
    HOLDOUT_FRACTION,
    CalibrateRequest,
    FrameSource,
    Serving,
    _inspected,
    _model_record,
    _split,
    fetch_samples,
    read_serving,
)
from edgekit.testing import FakeConnection, Get, Reply, Run

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "samples" / "digits"
MODELS = REPO / "tests" / "data" / "models"
RID = "r-serving"
MODEL_DIGEST = "ab" * 32
CLIP_DIGEST = "cd" * 32
THREE_WAYS = ("--images DIR", "--video FILE", "--from-device")


# --- FrameSource -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        {},
        {"images": Path("frames"), "video": Path("scene.avi")},
        {"images": Path("frames"), "from_device": True},
        {"video": Path("scene.avi"), "from_device": True},
        {"images": Path("frames"), "video": Path("scene.avi"), "from_device": True},
    ],
    ids=["none", "images+video", "images+device", "video+device", "all three"],
)
def test_frames_are_given_exactly_one_way(given: dict[str, Any]) -> None:
    with pytest.raises(UsageError) as caught:
        FrameSource(**given)
    assert all(flag in str(caught.value) for flag in THREE_WAYS), str(caught.value)


def test_each_way_alone_is_taken_and_described_as_the_user_named_it() -> None:
    assert FrameSource(images=Path("/data/frames")).describe() == "the folder /data/frames"
    assert FrameSource(video=Path("scene.avi")).describe() == "the video scene.avi"
    assert FrameSource(from_device=True).describe() == "the device's sample ring"


# --- read_serving ------------------------------------------------------------------------


def serving_on(fake: FakeConnection, stdout: str, rid: str = RID) -> None:
    fake.on(["readlink", CURRENT_LINK], Reply(stdout=f"{RELEASES_DIR}/{rid}\n"))
    fake.on(["sh", "-c"], Reply(stdout=stdout))


RECORD = {
    "release": RID,
    "profile": "twin",
    "task": "classify",
    "labels": ["0", "1"],
    "preprocess": {"input_name": "image", "width": 8, "height": 8},
    "build": {"precision": "int8"},
}
SITE = '{\n  "source": {"uri": "file:///var/lib/edgekit/current/media/clip.avi", "loop": true}\n}\n'


def test_a_device_that_serves_nothing_is_refused_before_anything_else_is_read(fake_connection: FakeConnection) -> None:
    fake_connection.on(["readlink", CURRENT_LINK], Reply(exit_code=1))
    with pytest.raises(UsageError, match="serves no release yet") as caught:
        read_serving(fake_connection)
    assert "provision it first" in str(caught.value)
    assert fake_connection.commands() == [f"readlink {CURRENT_LINK}"]


def test_the_serving_release_is_read_in_one_command(fake_connection: FakeConnection) -> None:
    shown = (
        json.dumps(RECORD)
        + "\n--site--\n"
        + SITE
        + "--digests--\n"
        + f"{MODEL_DIGEST}  model.onnx\n"
        + f"{CLIP_DIGEST}  media/clip.avi\n"
        + f"{'ef' * 32}  media/extra/notes.txt\n"
    )
    serving_on(fake_connection, shown)
    found = read_serving(fake_connection)
    assert found == Serving(
        release=RID,
        record=RECORD,
        site=SITE.encode(),
        media={"media/clip.avi": CLIP_DIGEST, "media/extra/notes.txt": "ef" * 32},
        model_digest=MODEL_DIGEST,
    )
    run = fake_connection.runs[-1]
    # Root's: the site config and the release are root's files.
    assert run.sudo and not run.check
    assert run.argv[:2] == ("sh", "-c") and run.argv[-3:] == ("sh", f"{RELEASES_DIR}/{RID}", CONFIG_FILE)
    assert len(fake_connection.runs) == 2


def test_the_command_reads_a_real_release_folder(fake_connection: FakeConnection, tmp_path: Path) -> None:
    """The device's side of read_serving, run by a real shell on a folder laid out as a release."""
    release, config = tmp_path / "release", tmp_path / "camera.json"
    (release / "media").mkdir(parents=True)
    (release / "release.json").write_text(json.dumps(RECORD))
    (release / "model.onnx").write_bytes(b"onnx")
    (release / "media" / "clip.avi").write_bytes(b"clip")
    (release / "media" / "night scene.avi").write_bytes(b"night")
    config.write_text(SITE)

    def on_the_device(run: Run) -> Reply:
        assert run.argv[-2:] == (f"{RELEASES_DIR}/{RID}", CONFIG_FILE)
        argv = [*run.argv[:-2], str(release), str(config)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        return Reply(done.stdout, done.stderr, done.returncode)

    fake_connection.on(["readlink", CURRENT_LINK], Reply(stdout=f"{RELEASES_DIR}/{RID}\n"))
    fake_connection.on(["sh", "-c"], on_the_device)
    found = read_serving(fake_connection)
    assert found.record == RECORD and found.site == SITE.encode()
    assert found.model_digest == hashlib.sha256(b"onnx").hexdigest()
    assert found.media == {
        "media/clip.avi": hashlib.sha256(b"clip").hexdigest(),
        # Provision ships a video under its own name, spaces and all.
        "media/night scene.avi": hashlib.sha256(b"night").hexdigest(),
    }
    # A release without media (a camera, not a video) has no media folder at all.
    shutil.rmtree(release / "media")
    assert read_serving(fake_connection).media == {}


def test_a_site_config_without_a_final_newline_is_kept_byte_for_byte(fake_connection: FakeConnection) -> None:
    site = SITE.rstrip("\n")
    serving_on(
        fake_connection, json.dumps(RECORD) + "--site--\n" + site + "--digests--\n" + f"{MODEL_DIGEST}  model.onnx\n"
    )
    found = read_serving(fake_connection)
    assert found.site == site.encode() and found.record == RECORD
    assert found.media == {} and found.model_digest == MODEL_DIGEST


@pytest.mark.parametrize(
    "stdout",
    [
        "",
        "cat: /var/lib/edgekit/releases/r-serving/release.json: Permission denied\n",
        '{"release": "r-serving", "task"\n--site--\n' + SITE + "--digests--\n" + f"{MODEL_DIGEST}  model.onnx\n",
        json.dumps(RECORD) + "\n--site--\n",
        json.dumps(RECORD) + "\n--site--\nnot json\n--digests--\n" + f"{MODEL_DIGEST}  model.onnx\n",
    ],
    ids=["nothing", "unreadable", "cut-off release.json", "no site config", "broken site config"],
)
def test_an_unreadable_release_or_site_config_is_a_device_error(fake_connection: FakeConnection, stdout: str) -> None:
    serving_on(fake_connection, stdout)
    with pytest.raises(DeviceError, match=f"Release {RID} on nvidia@jetson has no readable release.json"):
        read_serving(fake_connection)


def test_a_release_without_its_model_is_a_device_error(fake_connection: FakeConnection) -> None:
    serving_on(fake_connection, json.dumps(RECORD) + "\n--site--\n" + SITE + "--digests--\n")
    with pytest.raises(DeviceError, match="has no model.onnx; provision it again"):
        read_serving(fake_connection)


# --- fetch_samples -----------------------------------------------------------------------


class VanishingConnection(FakeConnection):
    """Like paramiko's SFTP get: the local file is opened before the remote one is found gone."""

    def get(self, remote: str, local: Path) -> None:
        if remote not in self.files:
            local.write_bytes(b"")
        super().get(remote, local)


def ring_listing(fake: FakeConnection, names: list[str]) -> None:
    fake.on(["sh", "-c"], Reply(stdout="".join(f"{name}\n" for name in names)))


def test_an_empty_ring_is_refused_naming_the_other_ways(fake_connection: FakeConnection, tmp_path: Path) -> None:
    # A frame being written (the agent's atomic temp file) and other files are not frames.
    ring_listing(fake_connection, ["0001700000000000-000001.jpg.tmp-42", "notes.txt"])
    with pytest.raises(UsageError) as caught:
        fetch_samples(fake_connection, tmp_path / "frames")
    text = str(caught.value)
    assert "has no sample frames yet" in text and SAMPLES.dir in text
    assert "--images DIR" in text and "--video FILE" in text
    assert fake_connection.gets == []


def test_a_ring_that_answers_nothing_is_refused(fake_connection: FakeConnection, tmp_path: Path) -> None:
    # `cd` fails on a device whose service never ran: no folder, no listing.
    fake_connection.on(["sh", "-c"], Reply(exit_code=1))
    with pytest.raises(UsageError, match="has no sample frames yet"):
        fetch_samples(fake_connection, tmp_path / "frames")


def test_the_ring_is_fetched_in_time_order_and_a_vanished_frame_is_skipped(tmp_path: Path) -> None:
    fake = VanishingConnection()
    names = [f"{1_700_000_000_000 + 100 * i:015d}-{i:06d}.jpg" for i in range(5)]
    # ls order is the locale's; the names are epoch milliseconds, so name order is time order.
    ring_listing(fake, [names[3], names[0], "x.jpg.tmp-7", names[4], names[1], names[2]])
    for index, name in enumerate(names):
        if index != 2:  # the ring dropped this one between the listing and its fetch
            fake.files[f"{SAMPLES.dir}/{name}"] = f"jpeg {index}".encode()
    folder = tmp_path / "frames"
    fetched = fetch_samples(fake, folder)
    assert [get.remote for get in fake.gets] == [f"{SAMPLES.dir}/{name}" for name in names]
    assert fetched == [folder / name for i, name in enumerate(names) if i != 2]
    assert sorted(path.name for path in folder.iterdir()) == [name for i, name in enumerate(names) if i != 2]
    assert not (folder / names[2]).exists(), "the vanished frame must leave no empty file for curation to read"
    assert [path.read_bytes() for path in fetched] == [f"jpeg {i}".encode() for i in (0, 1, 3, 4)]
    listed = fake.runs[0]
    # The ring is the service's StateDirectory, readable by all: no sudo, and its path passed as $1.
    assert not listed.sudo and listed.argv[-2:] == ("sh", SAMPLES.dir)


def test_a_dropped_link_while_fetching_is_not_taken_for_a_vanished_frame(tmp_path: Path) -> None:
    class Dropping(FakeConnection):
        def get(self, remote: str, local: Path) -> None:
            self.gets.append(Get(remote, local))
            raise DeviceUnreachable("The link to nvidia@jetson dropped (EOF); re-run the same command.")

    fake = Dropping()
    ring_listing(fake, ["0001700000000000-000001.jpg", "0001700000000100-000002.jpg"])
    with pytest.raises(DeviceUnreachable):
        fetch_samples(fake, tmp_path / "frames")
    assert len(fake.gets) == 1


# --- the model ---------------------------------------------------------------------------


def test_the_model_is_described_as_the_release_describes_it() -> None:
    detect = {"kind": "yolov8", "conf": 0.25}
    record = {
        **RECORD,
        "preprocess": {"input_name": "images", "width": 640, "height": 480, "layout": "NCHW"},
        "task": "detect",
        "detect": detect,
        "onnx_sha256": MODEL_DIGEST,
        "mixed_precision": None,
    }
    assert _model_record(record) == {
        "task": "detect",
        "labels": ["0", "1"],
        "preprocess": record["preprocess"],
        "detect": detect,
        "input_size": [640, 480],
    }


def test_a_record_without_a_detect_head_or_a_size_states_neither() -> None:
    record = {"task": "raw", "labels": [], "preprocess": {"input_name": "x"}, "detect": None}
    assert _model_record(record) == {"task": "raw", "labels": [], "preprocess": {"input_name": "x"}}
    assert _model_record({"preprocess": None}) == {}


@pytest.fixture(scope="module")
def digits_serving() -> Serving:
    model = inspect_model(DIGITS / "model.onnx")
    record = {
        "release": RID,
        "task": model.task,
        "labels": list(model.labels),
        "detect": None,
        "preprocess": model.preprocess.to_dict(),
    }
    return Serving(RID, record, SITE.encode(), {}, model.sha256)


def test_the_serving_release_s_own_model_is_taken_as_it_serves_it(digits_serving: Serving) -> None:
    overrides = ModelOverrides(release=_model_record(digits_serving.record))
    model = _inspected(DIGITS / "model.onnx", overrides, digits_serving, FakeConnection(), given=True)
    assert model.preprocess.to_dict() == digits_serving.record["preprocess"]
    assert (model.task, list(model.labels)) == ("classify", digits_serving.record["labels"])


@pytest.mark.parametrize(
    "other", ["torchvision-mobilenet_v3_small-dynamic.onnx", "tf2onnx-keras-nhwc-uint8.onnx", "paddle-cls-dynamic.onnx"]
)
def test_a_model_with_another_input_is_refused_naming_the_release_and_model(
    digits_serving: Serving, other: str
) -> None:
    overrides = ModelOverrides(release=_model_record(digits_serving.record))
    with pytest.raises(UsageError) as caught:
        _inspected(MODELS / other, overrides, digits_serving, FakeConnection(), given=True)
    text = str(caught.value)
    assert f"release {RID} serves on nvidia@jetson" in text
    assert "image float32 NCHW 8x8" in text, "the input the release serves is named"
    assert "pass that release's model with --model" in text and "`edgekit provision`" in text
    assert str(MODELS / other) in text


def test_the_serving_release_s_own_model_that_cannot_be_read_is_a_model_error(digits_serving: Serving) -> None:
    # Not the user's --model: nothing to tell them to pass instead, so the model's own fault shows.
    overrides = ModelOverrides(release=_model_record(digits_serving.record))
    with pytest.raises(ModelError):
        _inspected(MODELS / "paddle-cls-dynamic.onnx", overrides, digits_serving, FakeConnection(), given=False)


# --- the split ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 360 held-out digits at night, labelled: 308 of them distinct to curation."""
    folder = tmp_path_factory.mktemp("scene") / "night"
    assert load_script("changed_scene").write_night_images(folder, DIGITS / "holdout") == 360
    return folder


def linked(folder: Path) -> dict[str, Path]:
    assert all(path.is_symlink() for path in folder.iterdir())
    return {path.name: path.resolve() for path in folder.iterdir()}


def test_frames_are_split_by_time_block_with_no_frame_on_both_sides(night: Path, tmp_path: Path) -> None:
    steps: list[str] = []
    request = CalibrateRequest(frames=FrameSource(images=night))
    data = _split(night, request, tmp_path, Reporter(step=steps.append))
    calibration, holdout = linked(tmp_path / "calibration"), linked(tmp_path / "holdout")
    assert calibration and holdout and not set(calibration) & set(holdout)
    assert all(target.parent == night.resolve() for target in [*calibration.values(), *holdout.values()])
    kept = sorted(data.curation.kept)
    assert data.curation.usable == len(kept) >= FLOOR
    assert set(calibration) | set(holdout) <= set(kept)
    # Held out in two blocks, each with a guard frame either side used by neither.
    assert len(kept) - len(calibration) - len(holdout) <= 4
    assert abs(len(holdout) / len(kept) - HOLDOUT_FRACTION) < 0.03
    for index, name in enumerate(kept):
        if name in holdout:
            neighbours = kept[max(0, index - 1) : index + 2]
            assert not set(neighbours) & set(calibration), f"{name} has a neighbour in the calibration set"
    assert (data.calibration_frames, data.holdout_frames) == (len(calibration), len(holdout))
    assert (data.source, data.holdout) == (f"the folder {night}", "time blocks")
    assert data.curation.source == f"the folder {night}"
    assert steps == [data.curation.summary()]


def test_a_labelled_holdout_keeps_every_frame_for_calibration(night: Path, tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    shutil.copytree(night, frames)
    (frames / "labels.csv").unlink()
    request = CalibrateRequest(frames=FrameSource(images=frames), holdout_dir=night, count=150)
    data = _split(frames, request, tmp_path / "work", Reporter())
    calibration = linked(tmp_path / "work" / "calibration")
    assert len(calibration) == data.calibration_frames == 150 == len(data.curation.kept)
    assert list((tmp_path / "work" / "holdout").iterdir()) == []
    # The labelled folder's images, not its labels.csv.
    assert (data.holdout_frames, data.holdout) == (360, str(night))


def test_a_smaller_count_keeps_a_subset_that_fills_it_after_the_holdout(night: Path, tmp_path: Path) -> None:
    request = CalibrateRequest(frames=FrameSource(images=night), count=120)
    data = _split(night, request, tmp_path, Reporter())
    assert len(data.curation.kept) == 150  # 120 / (1 - 0.2)
    assert data.calibration_frames + data.holdout_frames >= 146


@pytest.mark.parametrize(
    "source",
    [FrameSource(video=Path("night.avi")), FrameSource(from_device=True), FrameSource(images=Path("site/frames"))],
    ids=["video", "device", "folder"],
)
def test_too_few_frames_are_refused_naming_the_source_and_how_many_more(
    night: Path, tmp_path: Path, source: FrameSource
) -> None:
    # A video's or the device's frames lie in a temporary folder: the refusal names where they came from.
    frames = tmp_path / "edgekit-calibrate-xyz" / "frames"
    frames.mkdir(parents=True)
    for path in sorted(night.glob("*.png"))[:60]:
        shutil.copy(path, frames / path.name)
    with pytest.raises(ModelError) as caught:
        _split(frames, CalibrateRequest(frames=source), tmp_path / "work", Reporter())
    text = str(caught.value)
    named = source.describe()
    # The sentence starts with the source, capitalised ("The device's sample ring holds ...").
    found = re.fullmatch(
        rf"(?i:{re.escape(named[0])}){re.escape(named[1:])} holds (\d+) usable calibration images.*; "
        rf"at least {FLOOR} are needed, "
        r"so add (\d+) more from the camera's real scene.*",
        text,
    )
    assert found, text
    usable, more = int(found[1]), int(found[2])
    assert 0 < usable <= 60 and usable + more == FLOOR
    assert str(tmp_path) not in text
    assert not (tmp_path / "work" / "calibration").exists()
