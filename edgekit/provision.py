"""``provision``: from an ONNX model and calibration images to a running camera service.

Order matters for "loses nothing": everything that can be checked on the host is checked
before connecting, everything about the device before anything is installed, and the
service is switched to the new release only after the accuracy gate passed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.bundle import Bundle
from edgekit.device import install, service
from edgekit.device.agent import call_agent, stage_agent
from edgekit.device.blobs import Blob, prepare_store, upload_blobs
from edgekit.device.layout import CURRENT_LINK, RESULTS_FILE, VENV_LINK, release_dir
from edgekit.errors import GateFailed, PreflightFailed
from edgekit.model import sha256_file
from edgekit.profiles import match_profile
from edgekit.ssh.connection import Connection
from edgekit.wheels import fetch_wheels, runtime_requirements

MIN_PYTHON = (3, 8)
# Room for two releases and the runtime venv, with a margin for the engine build.
MIN_FREE_BYTES = 512 * 1024 * 1024
RESULTS_MAX_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class SourceSpec:
    """A camera source: a local video/folder (shipped with the release) or a device URI."""

    text: str
    loop: bool = True

    def local_file(self) -> Path | None:
        path = Path(self.text).expanduser()
        return path if "://" not in self.text and path.is_file() else None

    def device_uri(self, release_path: str) -> str:
        local = self.local_file()
        if local is not None:
            return f"file://{release_path}/media/{local.name}"
        if "://" not in self.text:
            raise PreflightFailed(
                f"The source {self.text!r} is neither a local file nor a URI such as file:///dev/path."
            )
        return self.text


@dataclass
class Reporter:
    """How a provision tells the user what it is doing; the CLI plugs rich in here."""

    step: Callable[[str], None] = lambda text: None
    upload: Callable[[str, int], None] = lambda name, size: None
    progress: Callable[[int, int], None] | None = None


@dataclass
class ProvisionResult:
    target: str
    device_model: str | None
    profile: str | None
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


def preflight(facts: dict[str, Any]) -> None:
    """Refuse a device that cannot run the service, before anything is installed on it."""
    version = tuple(int(part) for part in facts["python"]["version"].split(".")[:2])
    if version < MIN_PYTHON:
        raise PreflightFailed(
            f"The device runs Python {facts['python']['version']}; edgekit needs 3.8 or newer (JetPack 5.1 or later)."
        )
    if not facts["platform"].get("glibc"):
        raise PreflightFailed("The device's Python reports no glibc; edgekit supports glibc-based Linux (L4T, Debian).")
    if not facts.get("systemd"):
        raise PreflightFailed("The device does not run systemd; the camera service needs it as PID 1.")
    if facts.get("cv2") is None:
        raise PreflightFailed("The device's python3 cannot import cv2; install JetPack's OpenCV (python3-opencv).")
    free = facts["disk"]["free_bytes"]
    if free < MIN_FREE_BYTES:
        raise PreflightFailed(
            f"The device has {free // 2**20} MiB free at {facts['disk']['path']}; free at least "
            f"{MIN_FREE_BYTES // 2**20} MiB (old releases, logs) and re-run."
        )


def site_config(source: SourceSpec) -> dict[str, Any]:
    return {
        "release_dir": CURRENT_LINK,
        "source": {"uri": source.device_uri(CURRENT_LINK), "loop": source.loop, "realtime": True},
        "results": {"path": RESULTS_FILE, "max_bytes": RESULTS_MAX_BYTES, "backups": 3},
        "topk": 3,
    }


def release_manifest(bundle: Bundle, precision: str, rid: str) -> dict[str, Any]:
    return {
        "release": rid,
        "backend": "onnxruntime",
        "model": bundle.served_model,
        "precision": precision,
        "task": bundle.model.task,
        "labels": list(bundle.model.labels),
        "preprocess": bundle.model.preprocess.to_dict(),
        "onnx_sha256": bundle.model.sha256,
        "calibration_sha256": bundle.calibration_sha256,
    }


def provision(
    conn: Connection,
    bundle: Bundle,
    source: SourceSpec,
    precision: str,
    gate_threshold: float,
    reporter: Reporter,
) -> ProvisionResult:
    reporter.step("reading device facts")
    agent = bundle.files["agent.pyz"]
    staged = stage_agent(conn, agent, sha256_file(agent))
    facts = call_agent(conn, "python3", staged, ["facts"])
    preflight(facts)
    python_version = facts["python"]["version"]
    wheels = [
        Blob.of(path) for path in fetch_wheels(python_version, facts["platform"]["machine"], facts["platform"]["glibc"])
    ]

    files = {name: Blob.of(path) for name, path in bundle.files.items()}
    local_media = source.local_file()
    if local_media is not None:
        files[f"media/{local_media.name}"] = Blob.of(local_media)
    # The release id must not depend on release.json, which names it: hash the rest first.
    rid = install.release_id(files)
    manifest = release_manifest(bundle, precision, rid)
    system = {
        "release.json": _json_blob(bundle.directory / f"release-{rid}.json", manifest),
        "camera.json": _json_blob(bundle.directory / "camera.json", site_config(source)),
        "unit": Blob.of(install.UNIT_SOURCE),
    }
    files["release.json"] = system["release.json"]

    reporter.step("uploading")
    prepare_store(conn)
    sent = upload_blobs(
        conn,
        [*files.values(), *wheels, system["camera.json"], system["unit"]],
        on_file=lambda blob: reporter.upload(blob.local.name, blob.local.stat().st_size),
        progress=reporter.progress,
    )
    reporter.step("installing the runtime (offline)")
    changed = install.ensure_venv(conn, python_version, wheels, runtime_requirements(python_version))
    release_new = install.ensure_release(conn, rid, files)

    reporter.step("checking accuracy on the device")
    path = release_dir(rid)
    try:
        gate = call_agent(
            conn,
            f"{VENV_LINK}/bin/python",
            f"{path}/agent.pyz",
            ["gate", "--release-dir", path, "--samples", f"{path}/gate.npz"],
        )
    except BaseException:
        if release_new and install.current_release(conn) != rid:
            install.remove_release(conn, rid)
        raise
    gate["threshold"] = gate_threshold
    if gate["top1_agreement"] < gate_threshold:
        if install.current_release(conn) != rid:
            install.remove_release(conn, rid)
        raise GateFailed(
            f"The {precision} model agrees with FP32 on {gate['top1_agreement']:.1%} of {gate['samples']} "
            f"held-out samples, below the {gate_threshold:.0%} gate; calibrate with more images from the "
            "real scene, or lower --gate-threshold knowingly."
        )

    reporter.step("installing the service")
    changed = install.install_system(conn, system["unit"], system["camera.json"]) or changed
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
    jetson = facts.get("jetson") or {}
    return ProvisionResult(
        target=str(conn.target),
        device_model=jetson.get("model"),
        profile=match_profile(jetson.get("model"), jetson.get("l4t")),
        l4t=jetson.get("l4t"),
        python=python_version,
        backend="onnxruntime",
        precision=precision,
        release=rid,
        changed=changed,
        gate=gate,
        fps=first.get("fps"),
        first_result=first,
        uploaded=[blob.local.name for blob in sent],
    )


def _json_blob(path: Path, data: dict[str, Any]) -> Blob:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return Blob.of(path)
