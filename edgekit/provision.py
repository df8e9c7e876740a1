"""``provision``: from an ONNX model and calibration images to a running camera service.

Order matters for "loses nothing": the model is checked on the host before connecting,
the device is read (never written) and every preflight check passes before the first
upload, and the service is switched to the new release only after the accuracy gate.
A release the device already serves, committed, with gate figures that still pass, is
left as it is (``keep_current``): nothing is sent, built, gated or restarted.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit.bundle import Bundle, BundleRequest, build_bundle
from edgekit.curation import SUBSET_COUNT
from edgekit.device import build, install, service, trial
from edgekit.device.answers import Baseline, BuildAnswer, EngineRecord, GateReport, ResultRecord
from edgekit.device.blobs import Blob, prepare_store, upload_blobs
from edgekit.device.facts import DeviceFacts, read_facts
from edgekit.device.layout import CURRENT_LINK, METRICS, RESULTS_FILE, SAMPLES, UNIT_NAME
from edgekit.device.serving import Serving, read_serving
from edgekit.device.trial import Lifecycle, Trial, TrialPolicy
from edgekit.errors import ActivationFailed, DeviceUnreachable, GateFailed, UsageError
from edgekit.exporters import ModelOverrides
from edgekit.gate import refusal, threshold_for
from edgekit.model import ModelInfo
from edgekit.preflight import Check, DiskNeed, PreflightInput, require, run_checks
from edgekit.profiles import load_profiles
from edgekit.resolve import DeviceIdentity, Resolution, resolve_profile
from edgekit.sensitivity import MixedPrecision, describe
from edgekit.settings import Settings, UserConfig, merge_settings
from edgekit.source import SourceSpec
from edgekit.ssh.seam import Connection
from edgekit.wheels import fetch_wheels, runtime_requirements

RESULTS_MAX_BYTES = 10 * 1024 * 1024
# What the runtime venv takes on the device (onnxruntime and its few dependencies,
# unpacked), known before the wheels are fetched so --check needs no download.
RUNTIME_ALLOWANCE_BYTES = 160 * 2**20


@dataclass(frozen=True)
class ProvisionRequest:
    model: Path
    calib_dir: Path
    holdout_dir: Path | None
    source: SourceSpec
    # The figure the task is gated on (edgekit.gate); None takes the task's default.
    gate_threshold: float | None = None
    # What the command line says of the model (--task, --input-size, --labels, --layout, --color).
    model_overrides: ModelOverrides = ModelOverrides()
    # ``--profile``; None detects it (or takes the user config's).
    profile: str | None = None
    config: UserConfig = UserConfig()
    # Command-line settings, the top layer: {"build": {"precision": "fp16"}, ...}.
    flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    # camera.json's "http" and "mqtt" sections (edgekit.outputs); None switches a sink off.
    outputs: dict[str, Any] = field(default_factory=dict)
    # ``--mixed-precision``: "auto" keeps the layers INT8 hurts most at a higher precision.
    mixed_precision: str = "off"
    # What the release must show on trial before it is committed (--trial-results, --trial-deadline).
    trial: TrialPolicy = TrialPolicy()
    # Calibration images kept at most; past it, a diverse subset (edgekit.curation).
    calibration_count: int = SUBSET_COUNT
    # ``--sample-every``: seconds between the frames the service keeps for recalibration; None keeps the agent's.
    sample_every_s: float | None = None


@dataclass
class Reporter:
    """How a provision tells the user what it is doing; the CLI plugs rich in here."""

    step: Callable[[str], None] = lambda text: None
    # Once the device is read and its profile chosen, before anything is changed on it.
    planned: Callable[[Plan], None] = lambda plan: None
    upload: Callable[[str, int], None] = lambda name, size: None
    progress: Callable[[int, int], None] | None = None
    # Each line the device's build logs, progress lines ("progress: phase 3/10") included.
    device_line: Callable[[str], None] = lambda line: None


@dataclass
class Plan:
    """What provision decided from the device's facts, before changing anything."""

    target: str
    facts: DeviceFacts
    device: DeviceIdentity
    resolution: Resolution
    settings: Settings
    bundle: Bundle
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "ok": self.ok,
            "device": self.device.describe(),
            **self.resolution.to_dict(),
            "settings": self.settings.to_dict(),
            "checks": [check.to_dict() for check in self.checks],
            "model_notes": list(self.bundle.model.notes),
            "mixed_precision": None if self.bundle.mixed_precision is None else self.bundle.mixed_precision.to_dict(),
            "facts": self.facts.to_dict(),
        }


@dataclass
class ProvisionResult:
    target: str
    device_model: str | None
    profile: str
    l4t: str | None
    python: str
    backend: str
    precision: str
    task: str
    release: str
    changed: bool
    gate: GateReport
    fps: float | None
    first_result: ResultRecord
    uploaded: list[str] = field(default_factory=list)
    # --mixed-precision auto: the layers kept at a higher precision and the gate figure at each step.
    mixed_precision: MixedPrecision | None = None
    # The release was already current and committed with passing gate figures: nothing was
    # uploaded, built, gated or restarted, and ``gate`` holds the figures its build recorded.
    unchanged: bool = False

    def to_dict(self) -> dict[str, Any]:
        mixed = None if self.mixed_precision is None else self.mixed_precision.to_dict()
        return {**asdict(self), "first_result": self.first_result.to_dict(), "mixed_precision": mixed}


def plan_provision(
    conn: Connection, request: ProvisionRequest, reporter: Reporter, model: ModelInfo | None = None
) -> Plan:
    """Facts, profile, settings, the host-side bundle and every preflight check; changes nothing.
    ``model`` is the request's model as already inspected, so it is not inspected twice."""
    reporter.step("reading device facts")
    facts = read_facts(conn)
    device = DeviceIdentity.from_facts(facts)
    resolution = resolve_profile(device, load_profiles(), request.profile or request.config.profile)
    settings = merge_settings(resolution.profile, request.config.layer(), request.flags)
    reporter.step(f"device is {resolution.profile.name} ({resolution.how}); preparing the model")
    bundle = build_bundle(
        BundleRequest(
            model=request.model,
            calib_dir=request.calib_dir,
            holdout_dir=request.holdout_dir,
            precision=settings.build.precision,
            overrides=request.model_overrides,
            mixed_precision=request.mixed_precision,
            gate_threshold=request.gate_threshold,
            inspected=model,
            calibration_count=request.calibration_count,
        ),
        log=reporter.step,
    )
    release_bytes = sum(path.stat().st_size for path in release_files(bundle, settings, request.source).values())
    disk = DiskNeed(release_bytes, RUNTIME_ALLOWANCE_BYTES, bundle.model.path.stat().st_size)
    checks = run_checks(PreflightInput(facts, resolution.profile, settings, request.source, disk))
    return Plan(str(conn.target), facts, device, resolution, settings, bundle, checks)


def served_model(settings: Settings) -> str:
    """The ONNX the device runs: TensorRT's calibrator quantizes the FP32 model itself; the
    Q/DQ model carries the host's INT8 scales for TensorRT 11 and for onnxruntime."""
    build = settings.build
    if build.precision != "int8" or (build.backend == "tensorrt" and build.int8 == "calibrator"):
        return "model.onnx"
    return "model.int8.onnx"


def release_files(bundle: Bundle, settings: Settings, source: SourceSpec) -> dict[str, Path]:
    """Every file of a release by its name in the release, the shipped video included."""
    files = dict(bundle.files)
    if served_model(settings) != "model.int8.onnx":
        files.pop("model.int8.onnx", None)
    local_media = source.local_file()
    if local_media is not None:
        files[f"media/{local_media.name}"] = local_media
    return files


def site_config(
    source: SourceSpec,
    settings: Settings,
    outputs: dict[str, Any] | None = None,
    sample_every_s: float | None = None,
) -> dict[str, Any]:
    samples = SAMPLES if sample_every_s is None else SAMPLES._replace(every_s=sample_every_s)
    return {
        "release_dir": CURRENT_LINK,
        "source": {"uri": source.device_uri(CURRENT_LINK), "loop": source.loop, "realtime": True},
        "camera": asdict(settings.camera),
        "results": {"path": RESULTS_FILE, "max_bytes": RESULTS_MAX_BYTES, "backups": 3},
        "topk": 3,
        "metrics": METRICS._asdict(),
        "samples": samples._asdict(),
        **(outputs or {}),
    }


def release_manifest(bundle: Bundle, settings: Settings, rid: str) -> dict[str, Any]:
    return {
        "release": rid,
        "profile": settings.profile,
        "backend": settings.build.backend,
        "build": asdict(settings.build),
        "model": served_model(settings),
        "precision": settings.build.precision,
        "task": bundle.model.task,
        "detect": None if bundle.model.detect is None else bundle.model.detect._asdict(),
        "labels": list(bundle.model.labels),
        "preprocess": bundle.model.preprocess.to_dict(),
        "onnx_sha256": bundle.model.sha256,
        "calibration_sha256": bundle.calibration_sha256,
        # Left out of INT8 in the Q/DQ model: the detection head's decode.
        "fp32_nodes": list(bundle.fp32_nodes),
        # --mixed-precision auto: left out of INT8 in the Q/DQ model, FP16 on TensorRT's calibrator path.
        "mixed_precision": None if bundle.mixed_precision is None else bundle.mixed_precision.to_dict(),
    }


@dataclass(frozen=True)
class ReleasePlan:
    """Everything a provision decided before touching the device: the release and its files,
    the runtime's wheels and the system files (camera.json, the unit, the GPU drop-in)."""

    release: str
    python: str
    manifest: dict[str, Any]
    # By name in the release folder, release.json included.
    files: dict[str, Blob]
    wheels: list[Blob]
    camera_json: Blob
    unit: Blob
    gpu_dropin: Blob | None

    def blobs(self) -> list[Blob]:
        return [
            *self.files.values(),
            *self.wheels,
            self.camera_json,
            self.unit,
            *([self.gpu_dropin] if self.gpu_dropin else []),
        ]


def plan_release(
    plan: Plan, request: ProvisionRequest, carried: Mapping[str, Blob] | None = None, site: Blob | None = None
) -> ReleasePlan:
    """The release for ``plan``: made on the host (the runtime's wheels are fetched here),
    identical for identical inputs, and nothing on the device is read or written.

    ``carried`` are files of the serving release it keeps, by name (blobs already on the
    device: a recalibrated release ships the video the site config names), and ``site`` the
    site config to install instead of one made from the request (a recalibration keeps it)."""
    bundle, settings, platform = plan.bundle, plan.settings, plan.facts.platform
    python_version = plan.facts.python.version
    wheels = [Blob.of(path) for path in fetch_wheels(python_version, platform.machine, platform.glibc)]
    files = {name: Blob.of(path) for name, path in release_files(bundle, settings, request.source).items()}
    files.update(carried or {})
    # The release id must not depend on release.json, which names it: hash the rest first.
    rid = install.release_id(files)
    manifest = release_manifest(bundle, settings, rid)
    files["release.json"] = _json_blob(bundle.directory / f"release-{rid}.json", manifest)
    return ReleasePlan(
        release=rid,
        python=python_version,
        manifest=manifest,
        files=files,
        wheels=wheels,
        camera_json=site
        or _json_blob(
            bundle.directory / "camera.json",
            site_config(request.source, settings, request.outputs, request.sample_every_s),
        ),
        unit=Blob.of(install.UNIT_SOURCE),
        gpu_dropin=Blob.of(install.GPU_DROPIN_SOURCE) if settings.build.backend == "tensorrt" else None,
    )


def upload(conn: Connection, release: ReleasePlan, reporter: Reporter) -> list[Blob]:
    """Every blob the release needs into the device's store; returns those that were sent."""
    reporter.step("uploading")
    prepare_store(conn)
    return upload_blobs(
        conn,
        release.blobs(),
        on_file=lambda blob: reporter.upload(blob.local.name, blob.local.stat().st_size),
        progress=reporter.progress,
        note=reporter.step,
    )


@dataclass(frozen=True)
class Installed:
    runtime_changed: bool
    # The release folder was made now (so a failed gate may remove it).
    release_new: bool


def install_runtime(conn: Connection, release: ReleasePlan, reporter: Reporter) -> Installed:
    """The offline venv, the release folder and the service user, from the uploaded blobs."""
    reporter.step("installing the runtime (offline)")
    changed = install.ensure_venv(conn, release.python, release.wheels, runtime_requirements(release.python))
    release_new = install.ensure_release(conn, release.release, release.files)
    install.ensure_service_user(conn)
    return Installed(changed, release_new)


def build_and_gate(
    conn: Connection, plan: Plan, release: ReleasePlan, installed: Installed, threshold: float, reporter: Reporter
) -> GateReport:
    """Build (or reattach to the build of) the release on the device and hold it to the gate.

    A release whose build fails and that is not serving is removed; one whose link dropped
    is kept, because its build goes on and a re-run attaches to it. One the gate refuses is
    kept for inspection as "failed gate" (`edgekit releases`), never switched in.
    """
    gated = build_and_measure(conn, plan, release, installed, threshold, reporter)
    if gated.refused:
        raise GateFailed(gated.refused)
    return gated.gate


@dataclass(frozen=True)
class Gated:
    """A built release's gate figures, held to the task's measure and threshold."""

    gate: GateReport
    # The release that was serving, gated on the same samples (build_and_measure's ``baseline``).
    baseline: Baseline | None
    # Why the gate refused the release, which is then kept as "failed gate"; None when it passed.
    refused: str | None


def build_and_measure(
    conn: Connection,
    plan: Plan,
    release: ReleasePlan,
    installed: Installed,
    threshold: float,
    reporter: Reporter,
    baseline: str | None = None,
) -> Gated:
    """``build_and_gate`` without raising on a refusal; with ``baseline`` (a release id), that
    release is gated on the same samples by the same build unit, for old-against-new figures,
    and a release below the threshold passes if it does at least as well as the baseline."""
    rid = release.release
    try:
        answer = _build_and_gate(conn, rid, plan.settings, reporter, baseline)
    except DeviceUnreachable:
        raise
    except BaseException:
        if installed.release_new and install.current_release(conn) != rid:
            install.remove_release(conn, rid)
        raise
    # The measure is named in the summary and --json: a detector is not gated on top-1 agreement.
    task = plan.bundle.model.task
    gate = answer.gate.held_to(task, threshold)
    old = answer.baseline
    if old is not None and old.gate is not None:
        old = dataclasses.replace(old, gate=old.gate.held_to(task, threshold))
    detect = plan.bundle.model.detect
    refused = refusal(gate, task, plan.settings.build.precision, conf=None if detect is None else detect.conf)
    if refused and old is not None and old.gate is not None and _no_worse(gate, old.gate, task):
        # Refusing a release that does at least as well as the serving one on the same frames
        # would keep the worse one serving; the report shows both figures.
        refused = None
    if refused and install.current_release(conn) != rid:
        trial.refuse(conn, rid, refused)
    return Gated(gate, old, refused)


def _no_worse(gate: GateReport, serving: GateReport, task: str) -> bool:
    ours, theirs = gate.measured(task)[1], serving.measured(task)[1]
    return ours is not None and theirs is not None and ours >= theirs


def activate(
    conn: Connection,
    release: ReleasePlan,
    reporter: Reporter,
    restart: bool = False,
    policy: TrialPolicy | None = None,
) -> bool:
    """The system files, then the release switched in on trial and the service restarted (also
    when ``restart``, for a new runtime). It is committed once it proves healthy (READY, then
    ``policy.results`` results before its deadline); otherwise the device goes back to the
    last committed release and ActivationFailed says why. True if the service was (re)started."""
    rid = release.release
    policy = policy or TrialPolicy()
    reporter.step("installing the service")
    changed = install.install_system(conn, release.unit, release.camera_json, release.gpu_dropin)
    state = trial.lifecycle(conn, rid, "status")
    settled = state.current_state in (None, "committed")
    if not (restart or changed or state.current != rid or not settled or not service.is_active(conn)):
        return False
    try_release(conn, rid, policy, reporter, state)
    return True


def try_release(
    conn: Connection,
    rid: str,
    policy: TrialPolicy,
    reporter: Reporter,
    state: Lifecycle,
    going_back: bool = False,
) -> Lifecycle:
    """``rid`` switched in on trial (one already on trial keeps its trial and deadline: a re-run
    after a dropped link), the service restarted, and the device's verdict: committed, or
    rolled back and ActivationFailed with why."""
    if state.trial is None or state.trial.release != rid:
        state = trial.begin(conn, rid, policy, restore_config=going_back)
    reporter.step(f"starting the service on trial: READY, then {policy.results} results in {policy.deadline_s:.0f} s")
    try:
        service.restart(conn)
    except ActivationFailed as exc:
        state = trial.rollback(conn, rid, f"it sent no READY ({service.journal_tail(conn, 3, own=True)})")
        raise ActivationFailed(_rolled_back(conn, rid, state)) from exc
    state = trial.verdict(conn, rid, on_progress=lambda now: reporter.step(_progress(now)))
    if state.current != rid or state.current_state != "committed":
        raise ActivationFailed(_rolled_back(conn, rid, state))
    return state


@dataclass(frozen=True)
class RollbackResult:
    target: str
    # The release that served before.
    left: str
    lifecycle: Lifecycle

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "release": self.lifecycle.current, "left": self.left, **asdict(self.lifecycle)}


def roll_back(conn: Connection, to: str | None, policy: TrialPolicy, reporter: Reporter) -> RollbackResult:
    """Back to ``previous``, or to the committed release ``to``, through the same trial as a new one."""
    current = install.current_release(conn)
    if current is None:
        raise UsageError(f"{conn.target} serves no release yet, so there is nothing to roll back; provision it first.")
    state = trial.lifecycle(conn, current, "status")
    target = to or state.previous
    listing = f"`edgekit releases {conn.target}` lists them"
    if target is None:
        raise UsageError(
            f"{conn.target} has no previous release to go back to; name a committed one with --to ({listing})."
        )
    if target == current:
        raise UsageError(f"Release {target} is already current on {conn.target}; name another with --to ({listing}).")
    if target not in state.committed_releases:
        raise UsageError(
            f"Release {target} on {conn.target} never proved healthy on trial (or is not there), so it is no "
            f"rollback target; name a committed release with --to ({listing})."
        )
    reporter.step(f"rolling back from {current} to {target}")
    # Its own site config goes back with it: its camera source may be a video only it ships.
    return RollbackResult(target, current, try_release(conn, target, policy, reporter, state, going_back=True))


def _progress(now: Trial) -> str:
    return f"on trial: {now.produced} of {now.results} results, {max(0.0, now.deadline - time.time()):.0f} s left"


def _rolled_back(conn: Connection, rid: str, state: Lifecycle) -> str:
    """The sentence for a release that failed its trial, once the device has gone back."""
    rolled = state.last_rollback
    if rolled is None or rolled.release != rid or state.current == rid:
        reason = "its trial failed" if rolled is None or rolled.release != rid else rolled.reason
        return (
            f"Release {rid} failed its trial on {conn.target} ({reason}) and there is no committed release to go "
            f"back to, so it stays current; see `edgekit logs {conn.target}`, fix it and provision again."
        )
    serving = "is serving again" if service.wait_ready(conn) else "was started again but is not ready yet"
    return (
        f"Release {rid} was rolled back on {conn.target} because {rolled.reason}; release {rolled.to} {serving} "
        f"(see `edgekit logs {conn.target}`)."
    )


def keep_current(
    conn: Connection, plan: Plan, release: ReleasePlan, threshold: float, reporter: Reporter
) -> ProvisionResult | None:
    """The result for ``release`` when the device already serves it as it is, committed, with
    recorded gate figures that pass ``threshold``: one read of the device, and nothing uploaded,
    built, gated or restarted. None when it must go through the stages."""
    reporter.step("reading what the device serves")
    serving = read_serving(conn, list(_system_files(release)))
    if serving is None:
        return None
    rid = release.release
    gate = committed_gate(plan, release, serving, threshold)
    if isinstance(gate, str):
        if serving.lifecycle.current == rid:
            reporter.step(f"release {rid} is current, but {gate}; provisioning it again")
        return None
    first = serving.newest_result() or service.first_result(conn)
    return _result(plan, release, gate, first, changed=False, unchanged=True)


def committed_gate(plan: Plan, release: ReleasePlan, serving: Serving, threshold: float) -> GateReport | str:
    """The gate figures ``release``'s build recorded on the device, held to ``threshold``, when
    the device serves exactly that release (the same files, release.json, runtime, unit and site
    config), committed and running, and they pass; otherwise why it goes through the stages."""
    rid = release.release
    why = _not_committed(serving.lifecycle, rid) or _differs(release, serving) or _not_running(serving.service)
    if why:
        return why
    build = serving.build
    if build is None or build.release != rid:
        return "its build recorded no gate figures"
    if plan.settings.build.backend == "tensorrt" and not _engine_holds(build.engine, plan.facts):
        return "TensorRT, the GPU or L4T changed since its engine was built"
    task = plan.bundle.model.task
    gate = build.gate.held_to(task, threshold)
    detect = plan.bundle.model.detect
    if refusal(gate, task, plan.settings.build.precision, conf=None if detect is None else detect.conf):
        measure, figure = gate.measured(task)
        return f"its recorded {measure} ({describe(measure, figure)}) does not pass the {threshold:g} threshold"
    return gate


def _not_committed(state: Lifecycle, rid: str) -> str | None:
    if state.current != rid:
        return f"the device serves release {state.current}"
    if state.trial is not None:
        return f"release {state.trial.release} is on trial"
    if state.current_state != "committed":
        return f"it is not committed ({state.current_state or 'never on trial'})"
    return None


def _system_files(release: ReleasePlan) -> dict[str, str | None]:
    return install.system_files(release.unit, release.camera_json, release.gpu_dropin)


def _differs(release: ReleasePlan, serving: Serving) -> str | None:
    """What of the device's copy of ``release`` is not what a provision would install, if anything."""
    if serving.release_json != release.files["release.json"].digest:
        return "its release.json (the build settings) differs"
    if serving.venv != install.venv_env(release.python, release.wheels):
        return "the runtime differs"
    for path, digest in _system_files(release).items():
        if serving.files.get(path) != digest:
            return f"{path} differs"
    return None


def _not_running(state: Mapping[str, str]) -> str | None:
    active, enabled = state.get("ActiveState"), state.get("UnitFileState")
    if active != "active":
        return f"the camera service is {active or 'not loaded'}"
    if enabled != "enabled":
        return f"the camera service is {enabled or 'not enabled'}"
    return None


def _engine_holds(engine: EngineRecord | None, facts: DeviceFacts) -> bool:
    """Whether the engine the gate ran is the one the service would load today: after a
    JetPack upgrade its key changes and the service builds another, which no gate has seen."""
    if engine is None:
        return False
    # The engine reads L4T from /etc/nv_tegra_release alone (agent backends/tensorrt/engine.py).
    l4t = facts.jetson.l4t if facts.jetson.l4t_source == "nv_tegra_release" else None
    built = (engine.tensorrt, engine.compute_capability, engine.l4t)
    return built == (facts.tensorrt.python, facts.cuda_runtime.compute_capability, l4t)


def provision(conn: Connection, plan: Plan, request: ProvisionRequest, reporter: Reporter) -> ProvisionResult:
    """The stages in order, once every preflight check has passed; none of them for a release
    the device already serves as it is (``keep_current``)."""
    require(plan.checks)
    reporter.step("fetching the device's runtime wheels")
    release = plan_release(plan, request)
    threshold = threshold_for(plan.bundle.model.task, request.gate_threshold)
    kept = keep_current(conn, plan, release, threshold, reporter)
    if kept is not None:
        return kept
    sent = upload(conn, release, reporter)
    installed = install_runtime(conn, release, reporter)
    gate = build_and_gate(conn, plan, release, installed, threshold, reporter)
    # A new runtime or a new release restarts the service even if its system files are the same.
    restarted = activate(
        conn, release, reporter, restart=installed.runtime_changed or installed.release_new, policy=request.trial
    )
    reporter.step("reading the newest result")
    first = service.first_result(conn)
    return _result(plan, release, gate, first, changed=restarted, sent=sent)


def _result(
    plan: Plan,
    release: ReleasePlan,
    gate: GateReport,
    first: ResultRecord,
    changed: bool,
    sent: list[Blob] | None = None,
    unchanged: bool = False,
) -> ProvisionResult:
    return ProvisionResult(
        target=plan.target,
        device_model=plan.device.model,
        profile=plan.settings.profile,
        l4t=plan.device.l4t,
        python=release.python,
        backend=plan.settings.build.backend,
        precision=plan.settings.build.precision,
        task=plan.bundle.model.task,
        release=release.release,
        changed=changed,
        gate=gate,
        fps=first.fps,
        first_result=first,
        uploaded=[blob.local.name for blob in sent or []],
        mixed_precision=plan.bundle.mixed_precision,
        unchanged=unchanged,
    )


def _build_and_gate(
    conn: Connection, rid: str, settings: Settings, reporter: Reporter, baseline: str | None = None
) -> BuildAnswer:
    """Run (or reattach to) the build unit and return its answer: the gate figures it measured."""
    pause = settings.build.stop_service_during_build and service.is_active(conn)
    watch, started = build.start_build(conn, rid, restart_after=UNIT_NAME if pause else None, baseline=baseline)
    if started:
        reporter.step(f"building the {settings.build.precision} model on the device ({watch.unit})")
        if pause:
            reporter.step("the camera service pauses during the build, to leave the memory to it")
    else:
        reporter.step(f"reattached to the build already running ({watch.unit})")
    answer = build.follow_build(watch, reporter.device_line, on_drop=reporter.step)
    reporter.step(f"model ready on the device in {answer.ready_s:.1f} s; gate run")
    return answer


def _json_blob(path: Path, data: dict[str, Any]) -> Blob:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return Blob.of(path)
