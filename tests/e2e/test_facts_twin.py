"""End to end: detection and preflight against twins, changing nothing on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_provision_twin import SAMPLES, edgekit, provision_args

from edgekit.twin import TwinInfo, twin_exec
from edgekit.twin.machine import STATE_ROOT

pytestmark = pytest.mark.e2e
# Written by the twin itself (journal, login records, timers), not by anything we run.
OWN_WRITES = ("var/log/", "var/lib/systemd/", "var/cache/", "var/tmp/", "tmp/")


def ssh_args(twin: TwinInfo) -> list[str]:
    return [twin.target, "--identity", twin.identity, "--known-hosts", twin.known_hosts, "--no-ssh-config"]


def check_args(twin: TwinInfo, source: str, *extra: str) -> list[str]:
    args = provision_args(twin, Path(twin.known_hosts), "--check", "--json", *extra)
    args[args.index("--source") + 1] = source
    return args


def written(twin: TwinInfo, also_ignored: tuple[str, ...] = ()) -> set[str]:
    """Every path the twin's overlay holds above its rootfs: what has changed since boot."""
    upper = STATE_ROOT / twin.name / "upper"
    found = {path.relative_to(upper).as_posix() for path in upper.rglob("*")}
    return {path for path in found if not (path + "/").startswith(OWN_WRITES + also_ignored)}


def test_facts_detect_the_twin_and_write_nothing(twin: TwinInfo, tmp_path: Path) -> None:
    before = written(twin)
    done = edgekit("facts", *ssh_args(twin), "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["profile"], answer["how"]) == ("twin", "detected")
    jetson = answer["facts"]["jetson"]
    assert (jetson["soc"], jetson["l4t"], jetson["l4t_source"]) == ("tegra234", "36.4.3", "nv_tegra_release")
    assert "edgekit,jetson-twin" in jetson["module_entries"]
    assert answer["facts"]["systemd"] is True
    assert written(twin) == before
    # The comparison does see a write on the twin.
    twin_exec(twin.name, ["touch", "/home/jetson/mark"])
    assert written(twin) == before | {"home/jetson/mark"}
    twin_exec(twin.name, ["rm", "/home/jetson/mark"])

    table = edgekit("facts", *ssh_args(twin), home=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "twin (detected)" in table.stdout and "36.4.3 (from nv_tegra_release)" in table.stdout
    assert "no libcudart" in table.stdout


def test_check_passes_on_the_twin_and_installs_nothing(twin: TwinInfo, tmp_path: Path) -> None:
    before = written(twin)
    done = edgekit(*check_args(twin, str(SAMPLES / "clip.avi")), home=tmp_path)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["ok"] is True and plan["profile"] == "twin"
    assert [check["name"] for check in plan["checks"] if check["ok"]] == [
        "jetpack", "system", "precision", "runtime", "cuda", "opencv", "camera", "disk", "memory",
    ]  # fmt: skip
    assert written(twin) == before


def test_the_twin_of_a_module_is_detected_as_that_module(orin_twin: TwinInfo, tmp_path: Path) -> None:
    done = edgekit("facts", *ssh_args(orin_twin), "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["profile"], answer["how"]) == ("orin-nano-8gb-jp62", "detected")
    assert answer["facts"]["jetson"]["board_ids"] == ["p3767-0003"]


def test_check_on_a_module_twin_lists_what_it_lacks(orin_twin: TwinInfo, tmp_path: Path) -> None:
    before = written(orin_twin)
    done = edgekit(*check_args(orin_twin, "csi://0"), home=tmp_path)
    assert done.returncode == 5, done.stderr
    plan = json.loads(done.stdout)
    failed = {check["name"]: check["problem"] for check in plan["checks"] if not check["ok"]}
    assert "cannot import tensorrt" in failed["runtime"]
    assert "no /dev/video0 for csi://0" in failed["camera"]
    assert "no nvarguscamerasrc" in failed["opencv"]
    # A twin has no CUDA: the runtime library is looked for where JetPack puts it.
    assert "no CUDA runtime library (libcudart.so.13, .12 or .11.0" in failed["cuda"]
    assert "nvidia-l4t-cuda" in failed["cuda"]
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("PreflightFailed: Preflight found 4 problems (runtime, cuda, opencv, camera)")
    assert written(orin_twin) == before


def test_a_profile_of_another_module_is_refused_with_the_reason(orin_twin: TwinInfo, tmp_path: Path) -> None:
    done = edgekit(*check_args(orin_twin, "csi://0", "--profile", "xavier-nx-jp51"), home=tmp_path)
    assert done.returncode == 2, done.stderr
    message = " ".join(done.stderr.split())
    assert "--profile xavier-nx-jp51 is for tegra194" in message
    assert "the device reports tegra234" in message and "looks like orin-nano-8gb-jp62" in message
