"""End to end: ``edgekit releases`` and ``edgekit prune`` on a twin of their own.

The sample model is provisioned five times, each with the clip under another name: the clip
is one of the release's files, so each run lays out a new release (one small upload, no new
venv) that passes its trial and is committed. With the default --keep 3, prune keeps the
three newest (current and previous among them) and removes the two oldest with their records
and build answers; --check first lists the same and removes nothing. Their blobs stay: they
were all made within the hour that pruning leaves alone.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_facts_twin import ssh_args
from test_provision_twin import SAMPLES, edgekit, on_twin, provision_args

from edgekit.twin import TwinInfo

pytestmark = pytest.mark.e2e
STATE = "/var/lib/edgekit"
RELEASES = 5


def run(home: Path, *args: str) -> Any:
    done = edgekit(*args, home=home)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def provisioned(releases_twin: TwinInfo, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The home the commands run from and the release ids, oldest first."""
    home = tmp_path_factory.mktemp("releases-home")
    made = []
    for index in range(RELEASES):
        clip = home / f"clip-{index}.avi"
        shutil.copyfile(SAMPLES / "clip.avi", clip)
        args = provision_args(releases_twin, Path(releases_twin.known_hosts), "--json")
        args += ["--trial-results", "10", "--trial-deadline", "60"]
        args[args.index("--source") + 1] = str(clip)
        made.append(run(home, *args)["release"])
    assert len(set(made)) == RELEASES
    return home, made


def listed(twin: TwinInfo, home: Path) -> dict[str, dict[str, Any]]:
    answer = run(home, "releases", *ssh_args(twin), "--json")
    return {release["release"]: release for release in answer["releases"]}


def test_releases_lists_each_with_its_state_gate_and_links(
    releases_twin: TwinInfo, provisioned: tuple[Path, list[str]]
) -> None:
    home, made = provisioned
    found = listed(releases_twin, home)
    assert set(found) == set(made)
    assert all(release["state"] == "committed" for release in found.values())
    assert found[made[-1]]["links"] == ["current", "committed"] and found[made[-2]]["links"] == ["previous"]
    newest = found[made[-1]]
    assert newest["measure"] == "top-1 agreement" and newest["figure"] is not None
    assert newest["backend"] == "onnxruntime" and len(newest["onnx_sha256"]) == 64
    # The model, the agent and the gate samples are hard links to the same blobs as the others'.
    assert 0 < newest["shared_bytes"] < newest["bytes"]


def test_prune_check_then_prune_keep_the_three_newest(
    releases_twin: TwinInfo, provisioned: tuple[Path, list[str]]
) -> None:
    home, made = provisioned
    checked = run(home, "prune", *ssh_args(releases_twin), "--check", "--json")
    assert on_twin(releases_twin, "ls", f"{STATE}/releases").split() == sorted(made)
    done = run(home, "prune", *ssh_args(releases_twin), "--json")
    assert [checked[key] for key in ("kept", "removed")] == [done[key] for key in ("kept", "removed")]
    assert {kept["release"]: kept["why"][0] for kept in done["kept"]} == {
        made[2]: "one of the 3 newest committed",
        made[3]: "previous",
        made[4]: "current",
    }
    gone = {(removal["kind"], removal["path"]) for removal in done["removed"]}
    for release in made[:2]:
        assert ("release", f"{STATE}/releases/{release}") in gone
        assert ("record", f"{STATE}/lifecycle/releases/{release}.json") in gone
        assert ("build answer", f"{STATE}/engines/builds/{release}.json") in gone
    # Made within the hour, so a provision beside the prune could still be linking them.
    assert not any(kind == "blob" for kind, _ in gone)
    assert on_twin(releases_twin, "ls", f"{STATE}/releases").split() == sorted(made[2:])
    assert set(listed(releases_twin, home)) == set(made[2:])
    assert on_twin(releases_twin, "systemctl", "is-active", "edgekit-camera.service") == "active"
