"""``provision``: from an ONNX model and calibration images to a running camera service.

Order matters for "loses nothing": the model is checked on the host before connecting,
the device is read (never written) and every preflight check passes before the first
upload, and the service is switched to the new release only after the accuracy gate.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit.bundle import Bundle, BundleRequest, build_bundle
from edgekit.device import build, install, service
from edgekit.device.blobs import Blob, prepare_store, upload_blobs
from edgekit.device.facts import read_facts
from edgekit.device.layout import CURRENT_LINK, METRICS, RESULTS_FILE, SAMPLES, UNIT_NAME
from edgekit.errors import DeviceUnreachable, GateFailed
from edgekit.preflight import Check, DiskNeed, PreflightInput, require, run_checks
from edgekit.profiles import load_profiles
from edgekit.resolve import DeviceIdentity, Resolution, resolve_profile
from edgekit.settings import Settings, UserConfig, merge_settings
from edgekit.source import SourceSpec
from edgekit.ssh.connection import Connection
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
    gate_threshold: float = 0.99
    # ``--profile``; None detects it (or takes the user config's).
    profile: str | None = None
    config: UserConfig = UserConfig()
    # Command-line settings, the top layer: {"build": {"precision": "fp16"}, ...}.
    flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    # camera.json's "http" and "mqtt" sections (edgekit.outputs); None switches a sink off.
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reporter:
    """How a provision tells the user what it is doing; the CLI plugs rich in here."""

    step: Callable[[str], None] = lambda text: None
    upload: Callable[[str, int], None] = lambda name, size: None
    progress: Callable[[int, int], None] | None = None
    # Each line the device's build logs, progress lines ("progress: phase 3/10") included.
    device_line: Callable[[str], None] = lambda line: None


@dataclass
class Plan:
    """What provision decided from the device's facts, before changing anything."""

    target: str
    facts: dict[str, Any]
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
            "facts": self.facts,
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
    release: str
    changed: bool
    gate: dict[str, Any]
    fps: float | None
    first_result: dict[str, Any]
    uploaded: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def plan_provision(conn: Connection, request: ProvisionRequest, reporter: Reporter) -> Plan:
    """Facts, profile, settings, the host-side bundle and every preflight check; changes nothing."""
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


def site_config(source: SourceSpec, settings: Settings, outputs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "release_dir": CURRENT_LINK,
        "source": {"uri": source.device_uri(CURRENT_LINK), "loop": source.loop, "realtime": True},
        "camera": asdict(settings.camera),
        "results": {"path": RESULTS_FILE, "max_bytes": RESULTS_MAX_BYTES, "backups": 3},
        "topk": 3,
        "metrics": METRICS._asdict(),
        "samples": SAMPLES._asdict(),
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
        "detect": bundle.model.detect,
        "labels": list(bundle.model.labels),
        "preprocess": bundle.model.preprocess.to_dict(),
        "onnx_sha256": bundle.model.sha256,
        "calibration_sha256": bundle.calibration_sha256,
    }


def provision(conn: Connection, plan: Plan, request: ProvisionRequest, reporter: Reporter) -> ProvisionResult:
    require(plan.checks)
    bundle, settings, facts = plan.bundle, plan.settings, plan.facts
    precision = settings.build.precision
    python_version = facts["python"]["version"]
    reporter.step("fetching the device's runtime wheels")
    wheels = [
        Blob.of(path) for path in fetch_wheels(python_version, facts["platform"]["machine"], facts["platform"]["glibc"])
    ]

    files = {name: Blob.of(path) for name, path in release_files(bundle, settings, request.source).items()}
    # The release id must not depend on release.json, which names it: hash the rest first.
    rid = install.release_id(files)
    manifest = release_manifest(bundle, settings, rid)
    system = {
        "release.json": _json_blob(bundle.directory / f"release-{rid}.json", manifest),
        "camera.json": _json_blob(
            bundle.directory / "camera.json", site_config(request.source, settings, request.outputs)
        ),
        "unit": Blob.of(install.UNIT_SOURCE),
    }
    gpu_dropin = Blob.of(install.GPU_DROPIN_SOURCE) if settings.build.backend == "tensorrt" else None
    files["release.json"] = system["release.json"]

    reporter.step("uploading")
    prepare_store(conn)
    sent = upload_blobs(
        conn,
        [*files.values(), *wheels, system["camera.json"], system["unit"], *([gpu_dropin] if gpu_dropin else [])],
        on_file=lambda blob: reporter.upload(blob.local.name, blob.local.stat().st_size),
        progress=reporter.progress,
    )
    reporter.step("installing the runtime (offline)")
    changed = install.ensure_venv(conn, python_version, wheels, runtime_requirements(python_version))
    release_new = install.ensure_release(conn, rid, files)

    install.ensure_service_user(conn)
    try:
        gate = _build_and_gate(conn, rid, settings, reporter)
    except DeviceUnreachable:
        # The build goes on on the device; re-running attaches to it, so keep the release.
        raise
    except BaseException:
        if release_new and install.current_release(conn) != rid:
            install.remove_release(conn, rid)
        raise
    gate["threshold"] = request.gate_threshold
    measure, agreement = gate_measure(bundle.model.task, gate)
    if agreement < request.gate_threshold:
        if install.current_release(conn) != rid:
            install.remove_release(conn, rid)
        raise GateFailed(
            f"The {precision} model's {measure} with FP32 is {agreement:.1%} on {gate['samples']} "
            f"held-out samples, below the {request.gate_threshold:.0%} gate; calibrate with more images from the "
            "real scene, or lower --gate-threshold knowingly."
        )

    reporter.step("installing the service")
    changed = install.install_system(conn, system["unit"], system["camera.json"], gpu_dropin) or changed
    previous = install.current_release(conn)
    changed = changed or release_new or previous != rid
    if changed or not service.is_active(conn):
        install.switch_release(conn, rid)
        reporter.step("starting the service")
        try:
            service.restart(conn)
        except BaseException:
            if previous is not None and previous != rid:
                reporter.step(f"rolling back to {previous}")
                install.switch_release(conn, previous)
                service.restart(conn)
            raise
        changed = True
    reporter.step("waiting for the first results")
    first = service.first_result(conn)
    return ProvisionResult(
        target=plan.target,
        device_model=plan.device.model,
        profile=settings.profile,
        l4t=plan.device.l4t,
        python=python_version,
        backend=settings.build.backend,
        precision=precision,
        release=rid,
        changed=changed,
        gate=gate,
        fps=first.get("fps"),
        first_result=first,
        uploaded=[blob.local.name for blob in sent],
    )


def gate_measure(task: str, gate: dict[str, Any]) -> tuple[str, float]:
    """What the gate threshold applies to: the top-1 class for a classifier; the whole output's
    cosine similarity for detection and raw heads, where no single class decides."""
    if task == "classify":
        return "top-1 agreement", float(gate["top1_agreement"])
    return "output cosine similarity", float(gate["output_cosine"])


def _build_and_gate(conn: Connection, rid: str, settings: Settings, reporter: Reporter) -> dict[str, Any]:
    """Run (or reattach to) the build unit and return the gate figures it measured."""
    pause = settings.build.stop_service_during_build and service.is_active(conn)
    watch, started = build.start_build(conn, rid, restart_after=UNIT_NAME if pause else None)
    if started:
        reporter.step(f"building the {settings.build.precision} model on the device ({watch.unit})")
        if pause:
            reporter.step("the camera service pauses during the build, to leave the memory to it")
    else:
        reporter.step(f"reattached to the build already running ({watch.unit})")
    answer = build.follow_build(watch, reporter.device_line, on_drop=reporter.step)
    reporter.step(f"model ready on the device in {answer['ready_s']:.1f} s; gate run")
    gate: dict[str, Any] = answer["gate"]
    return gate


def _json_blob(path: Path, data: dict[str, Any]) -> Blob:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return Blob.of(path)
