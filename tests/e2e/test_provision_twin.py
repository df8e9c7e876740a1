"""End to end: a fresh twin, provisioned for real over SSH, runs the camera service under systemd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from edgekit.twin import TwinInfo, twin_exec

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "digits"


def edgekit(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_command(args), capture_output=True, text=True, env=_env(home), timeout=600)


def edgekit_process(*args: str, home: Path, **popen: Any) -> subprocess.Popen[str]:
    """The CLI started and not waited for, for a test that acts on what it prints."""
    return subprocess.Popen(_command(args), text=True, env=_env(home), **popen)


def _command(args: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-c", "from edgekit.cli import main; main()", *args]


def _env(home: Path) -> dict[str, str]:
    return dict(os.environ, EDGEKIT_CACHE=str(home / "cache"), COLUMNS="200")


def provision_args(twin: TwinInfo, known_hosts: Path, *extra: str) -> list[str]:
    return [
        "provision",
        twin.target,
        "--identity",
        twin.identity,
        "--known-hosts",
        str(known_hosts),
        "--no-ssh-config",
        "--model",
        str(SAMPLES / "model.onnx"),
        "--calib",
        str(SAMPLES / "calib"),
        "--holdout",
        str(SAMPLES / "holdout"),
        "--source",
        str(SAMPLES / "clip.avi"),
        *extra,
    ]


def on_twin(twin: TwinInfo, *argv: str) -> str:
    done = twin_exec(twin.name, list(argv))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def nothing_installed(twin: TwinInfo) -> bool:
    return (
        twin_exec(twin.name, ["test", "-e", "/var/lib/edgekit"]).returncode != 0
        and twin_exec(twin.name, ["test", "-e", "/etc/systemd/system/edgekit-camera.service"]).returncode != 0
    )


def test_unknown_host_key_is_refused_and_nothing_installed(twin: TwinInfo, tmp_path: Path) -> None:
    done = edgekit(*provision_args(twin, tmp_path / "known_hosts"), home=tmp_path)
    assert done.returncode == 4, done.stderr
    assert "UnknownHostKey" in done.stderr and twin.host_key_fingerprint in done.stderr.replace("\n", "")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "known_hosts").exists()
    assert nothing_installed(twin)


def test_wrong_key_is_refused_and_nothing_installed(twin: TwinInfo, tmp_path: Path) -> None:
    key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    args = provision_args(twin, tmp_path / "known_hosts", "--accept-new-host-key")
    args[args.index("--identity") + 1] = str(key)
    done = edgekit(*args, home=tmp_path)
    assert done.returncode == 4, done.stderr
    assert "AuthFailed" in done.stderr and "Traceback" not in done.stderr
    assert nothing_installed(twin)


def test_provision_runs_the_service_and_is_idempotent(twin: TwinInfo, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    first = edgekit(*provision_args(twin, known_hosts, "--accept-new-host-key", "--json"), home=tmp_path)
    assert first.returncode == 0, first.stderr
    assert twin.host_key_fingerprint in first.stderr.replace("\n", "")
    result: dict[str, Any] = json.loads(first.stdout)
    assert result["changed"] is True
    assert result["precision"] == "int8"
    assert result["profile"] == "twin"
    assert result["gate"]["samples"] == 360
    assert result["gate"]["top1_agreement"] >= 0.99
    assert result["gate"]["accuracy"] >= 0.97

    # systemd says it runs, as the unprivileged service user, from the new release.
    assert on_twin(twin, "systemctl", "is-active", "edgekit-camera.service") == "active"
    main_pid = on_twin(twin, "systemctl", "show", "--property=MainPID", "--value", "edgekit-camera.service")
    assert on_twin(twin, "ps", "-o", "user=", "-p", main_pid) == "edgekit"
    assert on_twin(twin, "readlink", "/var/lib/edgekit/current").endswith(result["release"])

    # Results keep arriving, in the results file and in the journal, and they are right.
    time.sleep(2)
    lines = on_twin(twin, "tail", "-n", "60", "/var/lib/edgekit/results/results.jsonl").splitlines()
    records = [json.loads(line) for line in lines]
    assert {r["pid"] for r in records} == {int(main_pid)}
    assert records[-1]["frame"] > records[0]["frame"]
    truth = dict(
        (int(row.split(",")[0]), row.split(",")[1])
        for row in (SAMPLES / "clip_labels.csv").read_text().splitlines()[1:]
    )
    right = sum(r["top"][0]["label"] == truth[r["frame"] % len(truth)] for r in records)
    assert right / len(records) >= 0.95
    journal = on_twin(twin, "journalctl", "-u", "edgekit-camera", "-n", "5", "-o", "cat")
    assert json.loads(journal.splitlines()[-1])["release"] == result["release"]

    # A second provision with the same inputs sends nothing and leaves the service alone.
    second = edgekit(*provision_args(twin, known_hosts, "--json"), home=tmp_path)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["changed"] is False
    assert again["uploaded"] == []
    assert again["release"] == result["release"]
    assert on_twin(twin, "systemctl", "show", "--property=MainPID", "--value", "edgekit-camera.service") == main_pid
