"""Paths on the device (see DESIGN.md, "On the device")."""

from __future__ import annotations

from edgekit.agent import ENGINES_DIR
from edgekit.agent.config import MetricsConfig, SamplesConfig

STATE_DIR = "/var/lib/edgekit"
BLOBS_DIR = f"{STATE_DIR}/blobs/sha256"
INCOMING_DIR = f"{STATE_DIR}/incoming"
RELEASES_DIR = f"{STATE_DIR}/releases"
VENVS_DIR = f"{STATE_DIR}/venvs"
VENV_LINK = f"{STATE_DIR}/venv"
CURRENT_LINK = f"{STATE_DIR}/current"
PREVIOUS_LINK = f"{STATE_DIR}/previous"
RESULTS_FILE = f"{STATE_DIR}/results/results.jsonl"
# The engine cache, timing and calibration caches: the service's StateDirectory, so the
# service can rebuild an engine itself after a JetPack upgrade. The agent's default.
BUILDS_DIR = f"{ENGINES_DIR}/builds"
# The service's sample ring for recalibration and its localhost metrics: the agent's defaults.
SAMPLES = SamplesConfig()
METRICS = MetricsConfig()
CONFIG_FILE = "/etc/edgekit/camera.json"
UNIT_NAME = "edgekit-camera.service"
UNIT_FILE = f"/etc/systemd/system/{UNIT_NAME}"
SERVICE_USER = "edgekit"


def release_dir(release_id: str) -> str:
    return f"{RELEASES_DIR}/{release_id}"
