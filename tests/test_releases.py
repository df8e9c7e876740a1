"""``edgekit releases`` and ``edgekit prune`` from the host: the current release's agent asked,
its real answer (edgekit/agent/inventory.py on a state folder of the test's own) parsed and shown."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from test_logs import device
from typer.testing import CliRunner

from edgekit import api
from edgekit.agent import inventory, lifecycle
from edgekit.cli import app
from edgekit.cli.output import console
from edgekit.device.layout import STATE_DIR, VENV_LINK
from edgekit.errors import UsageError
from edgekit.testing import FakeConnection, Reply

GATE = {"samples": 64, "top1_agreement": 0.98, "output_cosine": 0.999, "max_abs_diff": 0.1}
GATE.update(accuracy=None, reference_accuracy=None, infer_ms_mean=1.5)
ONNX = "ab" * 32


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """r2 current and committed with its gate; r1 rolled back; r0 laid out long ago, never on trial."""
    monkeypatch.setattr(lifecycle, "_systemctl", lambda *args: "")
    device = lifecycle.Device(str(tmp_path))
    for index, rid in enumerate(("r0", "r1", "r2")):
        folder = tmp_path / "releases" / rid
        folder.mkdir(parents=True)
        manifest = {"release": rid, "model": "model.onnx", "precision": "fp16", "backend": "onnxruntime"}
        manifest.update(task="classify", onnx_sha256=ONNX, calibration_sha256="cd" * 32)
        (folder / "release.json").write_text(json.dumps(manifest))
        (folder / "model.onnx").write_bytes(b"m" * 1024)
        # Created in order, long ago.
        os.utime(folder, (1000.0 * (index + 1), 1000.0 * (index + 1)))
    device.write_record("r1", state="rolled back", rolled_back_at=50.0, reason="it wrote no results", by="device")
    device.write_record("r2", state="committed", committed_at=60.0, by="host")
    device.switch("current", "r2")
    device.switch("committed", "r2")
    builds = tmp_path / "engines" / "builds"
    builds.mkdir(parents=True)
    (builds / "r2.json").write_text(json.dumps({"release": "r2", "gate": GATE}))
    return tmp_path


def agent(fake: FakeConnection, answer: dict[str, Any], current: str = "r2") -> None:
    fake.on(["readlink"], Reply(stdout=f"{STATE_DIR}/releases/{current}\n"))
    fake.on([f"{VENV_LINK}/bin/python"], Reply(stdout=json.dumps(answer) + "\n"))


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, [*args, "jetson", "--no-ssh-config"], catch_exceptions=False)


def test_releases_asks_the_current_release_s_agent_and_names_the_gate_s_measure(
    fake_connection: FakeConnection, monkeypatch: pytest.MonkeyPatch, state: Path
) -> None:
    agent(fake_connection, inventory.releases(str(state)))
    with device(monkeypatch, fake_connection):
        found = api.releases("jetson")
    run = fake_connection.runs[-1]
    assert run.sudo and run.argv == (
        f"{VENV_LINK}/bin/python",
        f"{STATE_DIR}/releases/r2/agent.pyz",
        "lifecycle",
        "list",
        "--state-dir",
        STATE_DIR,
    )
    assert [release.release for release in found.releases] == ["r2", "r1", "r0"]
    newest = found.releases[0]
    size = 1024 + len((state / "releases" / "r2" / "release.json").read_bytes())
    assert (newest.links, newest.state, newest.committed_at, newest.bytes) == (
        ["current", "committed"],
        "committed",
        60.0,
        size,
    )
    assert newest.measured() == ("top-1 agreement", 0.98)
    shown = found.to_dict()["releases"][0]
    assert (shown["measure"], shown["figure"], shown["gate"]["samples"]) == ("top-1 agreement", 0.98, 64)
    assert found.releases[1].reason == "it wrote no results" and found.releases[2].state is None


def test_prune_passes_keep_and_check_and_reads_what_would_go(
    fake_connection: FakeConnection, monkeypatch: pytest.MonkeyPatch, state: Path
) -> None:
    agent(fake_connection, inventory.prune(str(state), keep=0, check=True))
    with device(monkeypatch, fake_connection):
        done = api.prune("jetson", keep=0, check=True)
    assert fake_connection.runs[-1].argv[2:] == (
        "lifecycle",
        "prune",
        "--keep",
        "0",
        "--state-dir",
        STATE_DIR,
        "--check",
    )
    assert done.check and [(kept.release, kept.why) for kept in done.kept] == [("r2", ["current", "committed"])]
    assert {(removal.kind, Path(removal.path).name) for removal in done.removed} >= {
        ("release", "r0"),
        ("release", "r1"),
    }
    assert done.to_dict()["removed"][0].keys() == {"kind", "path", "bytes"}


def test_a_device_serving_no_release_is_told_in_one_sentence(
    fake_connection: FakeConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_connection.on(["readlink"], Reply(exit_code=1))
    with device(monkeypatch, fake_connection), pytest.raises(UsageError, match="serves no release yet.*provision it"):
        api.releases("jetson")


def test_the_releases_table_shows_digests_gate_state_and_size(
    fake_connection: FakeConnection, monkeypatch: pytest.MonkeyPatch, state: Path
) -> None:
    agent(fake_connection, inventory.releases(str(state)))
    monkeypatch.setattr(console, "width", 250)
    with device(monkeypatch, fake_connection):
        done = cli("releases")
    assert done.exit_code == 0, done.output
    rows = {line.split()[1]: line for line in done.stdout.splitlines() if re.match(r"^\W+r\d ", line)}
    assert set(rows) == {"r0", "r1", "r2"}
    assert ONNX[:12] in rows["r2"] and ONNX[:13] not in rows["r2"]
    assert "top-1 agreement 0.98" in rows["r2"] and "committed (current, committed link)" in rows["r2"]
    assert "rolled back: it wrote no results" in rows["r1"] and "none recorded" in rows["r0"]
    assert "1 KiB (1 KiB own)" in rows["r2"]


def test_the_commands_print_json(fake_connection: FakeConnection, monkeypatch: pytest.MonkeyPatch, state: Path) -> None:
    agent(fake_connection, inventory.releases(str(state)))
    with device(monkeypatch, fake_connection):
        listed = json.loads(cli("releases", "--json").stdout)
    assert listed["target"] == str(fake_connection.target)
    assert [release["release"] for release in listed["releases"]] == ["r2", "r1", "r0"]
    assert listed["releases"][0]["measure"] == "top-1 agreement" and listed["releases"][1]["measure"] is None

    agent(fake_connection, inventory.prune(str(state), keep=0, check=True))
    with device(monkeypatch, fake_connection):
        pruned = json.loads(cli("prune", "--keep", "0", "--check", "--json").stdout)
    assert pruned["check"] is True and {kept["release"] for kept in pruned["kept"]} == {"r2"}


def test_prune_says_what_it_would_remove_and_free(
    fake_connection: FakeConnection, monkeypatch: pytest.MonkeyPatch, state: Path
) -> None:
    agent(fake_connection, inventory.prune(str(state), keep=0, check=True))
    monkeypatch.setattr(console, "width", 250)
    with device(monkeypatch, fake_connection):
        done = cli("prune", "--keep", "0", "--check")
    assert done.exit_code == 0, done.output
    assert f"would remove release {state}/releases/r0" in done.stdout
    assert "kept r2 (current; committed)" in done.stdout and "would free" in done.stdout
    assert (state / "releases" / "r0").is_dir()
