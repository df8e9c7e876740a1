"""``calibrate``: the serving release's model recalibrated on frames of the real scene, proven
against the serving release on the same held-out frames, and switched in through a trial.

Frames come from a folder, a video (sampled evenly) or the device's own sample ring. They are
curated (edgekit.curation: unreadable files and near-duplicates dropped, a diverse subset kept,
a floor of usable frames) and split into calibration and held-out frames by time block, so
neighbouring near-copies never land on both sides. From there it is provisioning's own stages
(edgekit.provision): the same tensors from the agent's preprocessing, FP32 references on the
host, content-addressed uploads of what changed, a build with a calibration cache of its own
(the cache is keyed by the calibration data's digest, so TensorRT never reuses the old one),
the gate, and a trial. Only the release changes: the model is the one serving (or ``--model``
with the same input), described as its release.json describes it, and the device's site
config, the build settings and the video a file source plays are kept as they are.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit.curation import (
    FLOOR,
    SUBSET_COUNT,
    CurationReport,
    curate_folder,
    list_images,
    sample_video,
    split_by_time_block,
)
from edgekit.device import install, service
from edgekit.device.answers import Baseline, GateReport, ResultRecord
from edgekit.device.blobs import Blob
from edgekit.device.layout import CONFIG_FILE, SAMPLES, release_dir
from edgekit.device.trial import TrialPolicy
from edgekit.errors import DeviceError, GateFailed, ModelError, UsageError
from edgekit.exporters import ModelOverrides
from edgekit.gate import threshold_for
from edgekit.model import ModelInfo, inspect_model, sha256_file
from edgekit.preflight import Check, require
from edgekit.provision import (
    Plan,
    ProvisionRequest,
    Reporter,
    activate,
    build_and_measure,
    install_runtime,
    plan_provision,
    plan_release,
    upload,
)
from edgekit.settings import BuildOverrides
from edgekit.source import SourceSpec
from edgekit.ssh.seam import Connection

# Held out of the frames for the gate when no labelled hold-out folder is given.
HOLDOUT_FRACTION = 0.2
MODELS_CACHE = Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit")) / "models"
_MODEL_KEYS = ("task", "labels", "preprocess", "detect")


@dataclass(frozen=True)
class FrameSource:
    """Where the scene's frames come from: exactly one of a folder, a video or the device."""

    images: Path | None = None
    video: Path | None = None
    from_device: bool = False

    def __post_init__(self) -> None:
        given = [self.images is not None, self.video is not None, self.from_device]
        if sum(given) != 1:
            raise UsageError("Give the frames one way: --images DIR, --video FILE or --from-device.")

    def describe(self) -> str:
        if self.images is not None:
            return f"the folder {self.images}"
        if self.video is not None:
            return f"the video {self.video}"
        return "the device's sample ring"


@dataclass(frozen=True)
class CalibrateRequest:
    frames: FrameSource
    # The model to calibrate; None takes the serving release's own model.onnx from the device.
    model: Path | None = None
    # Labelled frames of the scene (labels.csv) to gate on, so accuracy is measured too; None
    # holds out a part of ``frames`` by time block.
    holdout_dir: Path | None = None
    # Calibration frames kept at most (a diverse subset past it).
    count: int = SUBSET_COUNT
    gate_threshold: float | None = None
    trial: TrialPolicy = TrialPolicy()


@dataclass(frozen=True)
class DataSummary:
    """What was calibrated and gated on."""

    source: str
    curation: CurationReport
    calibration_frames: int
    holdout_frames: int
    # "time blocks" or the labelled folder's path.
    holdout: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "curation": self.curation.to_dict()}


@dataclass(frozen=True)
class Comparison:
    """The serving release and the recalibrated one, gated on the same held-out frames."""

    measure: str
    threshold: float
    current_release: str
    current: GateReport | None
    # Why the serving release could not be gated on them (then ``current`` is None).
    current_error: str | None
    new: GateReport
    refused: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "current": None if self.current is None else self.current.to_dict(),
            "new": self.new.to_dict(),
        }


@dataclass(frozen=True)
class CalibrationResult:
    target: str
    # The release serving when calibrate started, and the recalibrated one.
    previous: str
    release: str
    task: str
    data: DataSummary
    # None with --check (nothing built).
    comparison: Comparison | None = None
    activated: bool = False
    first_result: ResultRecord | None = None
    checks: list[Check] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "previous": self.previous,
            "release": self.release,
            "task": self.task,
            "data": self.data.to_dict(),
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
            "activated": self.activated,
            "first_result": None if self.first_result is None else self.first_result.to_dict(),
            "checks": [check.to_dict() for check in self.checks],
        }


class CalibrationRefused(GateFailed):
    """The gate refused the recalibrated release; ``result`` holds both releases' figures."""

    def __init__(self, message: str, result: CalibrationResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Serving:
    """The release serving on the device, as calibrate reads it."""

    release: str
    record: dict[str, Any]
    # The installed site config, byte for byte.
    site: bytes
    # Its files calibrate keeps (the video a file source plays), by name, with their digests.
    media: dict[str, str]
    model_digest: str


def read_serving(conn: Connection) -> Serving:
    """The serving release's record, site config and media digests; refuses a device with none."""
    rid = install.current_release(conn)
    if rid is None:
        raise UsageError(
            f"{conn.target} serves no release yet, so there is nothing to recalibrate; provision it first."
        )
    folder = release_dir(rid)
    script = (
        'cat "$1/release.json" && echo "--site--" && cat "$2" && echo "--digests--" '
        # -exec, not $(find ...): a video named with a space ("my clip.avi") is one file.
        '&& cd "$1" && sha256sum model.onnx && if [ -d media ]; then find media -type f -exec sha256sum {} +; fi'
    )
    shown = conn.run(["sh", "-c", script, "sh", folder, CONFIG_FILE], sudo=True, check=False)
    record_text, _, rest = shown.stdout.partition("--site--\n")
    site_text, _, digests_text = rest.partition("--digests--\n")
    try:
        record = json.loads(record_text)
        json.loads(site_text)
    except ValueError:
        raise DeviceError(
            f"Release {rid} on {conn.target} has no readable release.json or site config; provision it again."
        ) from None
    digests = {name: digest for digest, name in (line.split(None, 1) for line in digests_text.splitlines() if line)}
    if "model.onnx" not in digests:
        raise DeviceError(f"Release {rid} on {conn.target} has no model.onnx; provision it again.")
    media = {name: digest for name, digest in digests.items() if name.startswith("media/")}
    return Serving(rid, record, site_text.encode(), media, digests["model.onnx"])


def calibrate(
    conn: Connection, request: CalibrateRequest, reporter: Reporter, check: bool = False
) -> CalibrationResult:
    """Frames curated and split, the release planned and, unless ``check``, built, compared
    with the serving release on the same held-out frames, gated and switched in on trial.

    A refusal raises CalibrationRefused (a GateFailed) carrying both releases' figures; the
    refused release is kept as "failed gate" and the serving one is untouched.
    """
    serving = read_serving(conn)
    reporter.step(f"release {serving.release} serves; recalibrating its model")
    with tempfile.TemporaryDirectory(prefix="edgekit-calibrate-") as scratch:
        work = Path(scratch)
        model_path = _model_file(conn, serving, request.model, work)
        overrides = ModelOverrides(release=_model_record(serving.record))
        model = _inspected(model_path, overrides, serving, conn, request.model is not None)
        frames = _frames(conn, request.frames, work / "frames", request.count, reporter)
        data = _split(frames, request, work, reporter)
        provision_request = ProvisionRequest(
            model=model_path,
            calib_dir=work / "calibration",
            holdout_dir=request.holdout_dir or work / "holdout",
            source=_source(serving),
            gate_threshold=request.gate_threshold,
            model_overrides=overrides,
            profile=serving.record.get("profile"),
            flags={"build": _build_flags(serving.record)},
            mixed_precision="auto" if serving.record.get("mixed_precision") else "off",
            trial=request.trial,
            calibration_count=request.count,
        )
        plan = plan_provision(conn, provision_request, reporter, model)
        reporter.planned(plan)
        carried = {
            name: Blob(Path(release_dir(serving.release)) / name, digest) for name, digest in serving.media.items()
        }
        site_file = work / "camera.json"
        site_file.write_bytes(serving.site)
        release = plan_release(plan, provision_request, carried, Blob.of(site_file))
        result = CalibrationResult(
            target=plan.target,
            previous=serving.release,
            release=release.release,
            task=model.task,
            data=data,
            checks=plan.checks,
        )
        if check:
            return result
        if release.release == serving.release:
            raise UsageError(
                f"Release {serving.release} on {conn.target} was calibrated on these very frames already; "
                "give frames of the scene as it looks now."
            )
        require(plan.checks)
        upload(conn, release, reporter)
        installed = install_runtime(conn, release, reporter)
        threshold = threshold_for(model.task, request.gate_threshold)
        gated = build_and_measure(conn, plan, release, installed, threshold, reporter, baseline=serving.release)
        result = _with_comparison(result, gated.gate, gated.baseline, gated.refused, threshold, serving.release, plan)
        if gated.refused:
            raise CalibrationRefused(_refusal(conn, result), result)
        activate(conn, release, reporter, restart=True, policy=request.trial)
        reporter.step("reading the newest result")
        first = service.first_result(conn)
    return dataclasses.replace(result, activated=True, first_result=first)


def _with_comparison(
    result: CalibrationResult,
    gate: GateReport,
    baseline: Baseline | None,
    refused: str | None,
    threshold: float,
    current: str,
    plan: Plan,
) -> CalibrationResult:
    measure, _ = gate.measured(plan.bundle.model.task)
    comparison = Comparison(
        measure=measure,
        threshold=threshold,
        current_release=current,
        current=None if baseline is None else baseline.gate,
        current_error="it was not gated" if baseline is None else baseline.error,
        new=gate,
        refused=refused,
    )
    return dataclasses.replace(result, comparison=comparison)


def _refusal(conn: Connection, result: CalibrationResult) -> str:
    comparison = result.comparison
    assert comparison is not None
    new_figure = comparison.new.measured(result.task)[1]
    old = comparison.current
    old_figure = None if old is None else old.measured(result.task)[1]
    against = (
        f"the serving release {result.previous} scores {_figure(old_figure)} on the same frames"
        if old is not None
        else f"the serving release {result.previous} could not be gated on them ({comparison.current_error})"
    )
    return (
        f"The gate refused the recalibrated release {result.release} on {conn.target}: {comparison.measure} "
        f"{_figure(new_figure)} on {comparison.new.samples} held-out frames, threshold {comparison.threshold:.0%}, "
        f"while {against}; {result.previous} keeps serving and {result.release} is kept as failed gate, so "
        "calibrate again with frames that show the scene as the camera sees it."
    )


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _model_record(record: dict[str, Any]) -> dict[str, Any]:
    described = {key: record[key] for key in _MODEL_KEYS if record.get(key) is not None}
    preprocess = record.get("preprocess") or {}
    if "width" in preprocess and "height" in preprocess:
        described["input_size"] = [int(preprocess["width"]), int(preprocess["height"])]
    return described


def _model_file(conn: Connection, serving: Serving, given: Path | None, work: Path) -> Path:
    """The ONNX to calibrate: ``given``, or the serving release's, fetched once into the host's cache."""
    if given is not None:
        return given
    cached = MODELS_CACHE / serving.model_digest / "model.onnx"
    if cached.is_file() and sha256_file(cached) == serving.model_digest:
        return cached
    fetched = work / "model.onnx"
    conn.get(f"{release_dir(serving.release)}/model.onnx", fetched)
    if sha256_file(fetched) != serving.model_digest:
        raise DeviceError(f"The model of release {serving.release} arrived corrupted from {conn.target}; re-run.")
    cached.parent.mkdir(parents=True, exist_ok=True)
    fetched.replace(cached)
    return cached


def _inspected(path: Path, overrides: ModelOverrides, serving: Serving, conn: Connection, given: bool) -> ModelInfo:
    expected = serving.record.get("preprocess") or {}
    try:
        model = inspect_model(path, overrides)
    except ModelError as exc:
        if not given:
            raise
        raise UsageError(
            f"{path} does not take the input release {serving.release} serves on {conn.target} "
            f"({_input(expected)}: {exc}); pass that release's model with --model, or provision the new model "
            "with `edgekit provision`."
        ) from exc
    if expected and model.preprocess.to_dict() != expected:
        raise UsageError(
            f"{path} takes {_input(model.preprocess.to_dict())} but release {serving.release} on {conn.target} "
            f"serves {_input(expected)}; pass that release's model with --model, or provision the new model with "
            "`edgekit provision`."
        )
    return model


def _input(spec: dict[str, Any]) -> str:
    return f"{spec.get('input_name')} {spec.get('dtype')} {spec.get('layout')} {spec.get('width')}x{spec.get('height')}"


def _source(serving: Serving) -> SourceSpec:
    site = json.loads(serving.site)
    source = site.get("source") or {}
    return SourceSpec(str(source.get("uri")), loop=bool(source.get("loop", True)))


def _build_flags(record: dict[str, Any]) -> dict[str, Any]:
    """The serving release's build settings that a provision can set (the backend follows the profile)."""
    build = record.get("build") or {}
    return {key: build[key] for key in asdict(BuildOverrides()) if key in build}


def _frames(conn: Connection, given: FrameSource, folder: Path, count: int, reporter: Reporter) -> Path:
    """A folder of the scene's frames, in time order for a video and the device's samples."""
    if given.images is not None:
        return given.images
    # Enough frames that the calibration set fills up after the hold-out and de-duplication.
    wanted = math.ceil(count / (1 - HOLDOUT_FRACTION))
    if given.video is not None:
        if not given.video.is_file():
            raise UsageError(f"The video {given.video} does not exist; pass a video file of the scene.")
        reporter.step(f"sampling {wanted} frames evenly from {given.video}")
        sample_video(given.video, folder, wanted)
        return folder
    reporter.step(f"fetching the sample frames from {conn.target}")
    fetch_samples(conn, folder)
    return folder


def fetch_samples(conn: Connection, folder: Path) -> list[Path]:
    """The device's sample ring (the frames the service kept), in time order; the ring renews
    itself while it is read, so a frame gone in between is skipped."""
    listed = conn.run(["sh", "-c", 'cd "$1" 2>/dev/null && ls -1', "sh", SAMPLES.dir], check=False)
    names = sorted(name for name in listed.stdout.split() if name.endswith(".jpg"))
    if not names:
        raise UsageError(
            f"{conn.target} has no sample frames yet in {SAMPLES.dir} (the camera service keeps one every "
            f"{SAMPLES.every_s:g} s while it runs, or as `provision --sample-every` set); let it run longer, or "
            "pass --images DIR or --video FILE."
        )
    folder.mkdir(parents=True, exist_ok=True)
    fetched = []
    for name in names:
        try:
            conn.get(f"{SAMPLES.dir}/{name}", folder / name)
        except DeviceError:
            # paramiko makes the local file before it finds the remote one gone.
            (folder / name).unlink(missing_ok=True)
            continue
        fetched.append(folder / name)
    return fetched


def _split(frames: Path, request: CalibrateRequest, work: Path, reporter: Reporter) -> DataSummary:
    """Curated frames linked into calibration/ and holdout/ (unless a labelled hold-out is given)."""
    wanted = request.count if request.holdout_dir else math.ceil(request.count / (1 - HOLDOUT_FRACTION))
    curated = curate_folder(frames, count=wanted, minimum=FLOOR, name=request.frames.describe())
    report = curated.report
    reporter.step(report.summary())
    kept = list(curated.paths)
    if request.holdout_dir is not None:
        calibration, holdout = kept, list[Path]()
        how = str(request.holdout_dir)
    else:
        calibration, holdout = split_by_time_block(kept, HOLDOUT_FRACTION)
        how = "time blocks"
    _link_all(calibration, work / "calibration")
    _link_all(holdout, work / "holdout")
    return DataSummary(
        source=request.frames.describe(),
        curation=report,
        calibration_frames=len(calibration),
        holdout_frames=len(holdout) if request.holdout_dir is None else len(list_images(request.holdout_dir)),
        holdout=how,
    )


def _link_all(paths: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        (folder / path.name).symlink_to(path.resolve())
