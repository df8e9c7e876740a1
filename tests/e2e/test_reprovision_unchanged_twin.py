"""End to end: a re-provision with nothing changed, on a twin of its own.

The second `edgekit provision` with the same inputs finds the release current and committed
with gate figures that pass: it says so, sends nothing, runs no build unit and leaves the
service's process alone. A --gate-threshold above the figures the release's build recorded
is not taken on trust: the release is built and gated again, and refused while it serves on.
A changed site config (--sample-every) takes the stages too, and restarts the service.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_provision_twin import edgekit, on_twin, provision_args

from edgekit.twin import TwinInfo

pytestmark = pytest.mark.e2e
UNIT = "edgekit-camera.service"


@pytest.fixture(scope="module")
def provisioned(unchanged_twin: TwinInfo, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The home the commands run from (its known_hosts trusts the twin), and the first provision's result."""
    home = tmp_path_factory.mktemp("reprovision-home")
    first = edgekit(*provision_args(unchanged_twin, home / "known_hosts", "--accept-new-host-key", "--json"), home=home)
    assert first.returncode == 0, first.stderr
    result: dict[str, Any] = json.loads(first.stdout)
    assert result["changed"] is True and result["unchanged"] is False
    return home, result


def again(twin: TwinInfo, home: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return edgekit(*provision_args(twin, home / "known_hosts", *extra), home=home)


def main_pid(twin: TwinInfo) -> str:
    return on_twin(twin, "systemctl", "show", "--property=MainPID", "--value", UNIT)


def built_at(twin: TwinInfo, release: str) -> str:
    """When the release's build answer was written: each run of its build unit writes it anew."""
    return on_twin(twin, "stat", "--format=%y", f"/var/lib/edgekit/engines/builds/{release}.json")


def test_a_second_provision_with_nothing_changed_changes_nothing(
    unchanged_twin: TwinInfo, provisioned: tuple[Path, dict[str, Any]]
) -> None:
    home, first = provisioned
    pid, built = main_pid(unchanged_twin), built_at(unchanged_twin, first["release"])
    blobs = on_twin(unchanged_twin, "ls", "-l", "--time-style=full-iso", "/var/lib/edgekit/blobs/sha256")

    done = again(unchanged_twin, home, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["unchanged"], result["changed"], result["uploaded"]) == (True, False, [])
    # The figures its build recorded on the device, held to the same threshold.
    assert (result["release"], result["gate"]) == (first["release"], first["gate"])
    assert "uploading" not in done.stderr and "building" not in done.stderr

    # Nothing was sent, built, gated or restarted.
    assert on_twin(unchanged_twin, "ls", "-l", "--time-style=full-iso", "/var/lib/edgekit/blobs/sha256") == blobs
    assert built_at(unchanged_twin, first["release"]) == built
    assert main_pid(unchanged_twin) == pid
    # The first result is the running process's own.
    assert str(result["first_result"]["pid"]) == pid

    shown = again(unchanged_twin, home)
    assert shown.returncode == 0, shown.stderr
    said = " ".join(shown.stderr.split())
    assert (
        f"release {first['release']} is already current and committed on {unchanged_twin.target}; nothing to do" in said
    )


def test_a_threshold_above_the_recorded_figures_is_gated_again(
    unchanged_twin: TwinInfo, provisioned: tuple[Path, dict[str, Any]]
) -> None:
    home, first = provisioned
    figure = first["gate"]["top1_agreement"]
    assert figure < 1.0, "the sample model's INT8 must differ from FP32 somewhere for a higher threshold to exist"
    raised = f"{(figure + 1.0) / 2:.4f}"
    pid, built = main_pid(unchanged_twin), built_at(unchanged_twin, first["release"])

    done = again(unchanged_twin, home, "--gate-threshold", raised)
    said = " ".join(done.stderr.split())
    assert done.returncode == 6, done.stderr
    assert f"release {first['release']} is current, but its recorded top-1 agreement" in said
    assert f"does not pass the {float(raised):g} threshold; provisioning it again" in said
    assert "building the int8 model on the device" in said and "GateFailed" in said
    assert built_at(unchanged_twin, first["release"]) != built
    # Refused, it serves on as it was: the gate never takes down a serving release.
    assert main_pid(unchanged_twin) == pid
    assert on_twin(unchanged_twin, "readlink", "/var/lib/edgekit/current").endswith(first["release"])

    back = again(unchanged_twin, home, "--json")
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["unchanged"] is True


def test_a_changed_site_config_is_installed_and_tried(
    unchanged_twin: TwinInfo, provisioned: tuple[Path, dict[str, Any]]
) -> None:
    home, first = provisioned
    pid = main_pid(unchanged_twin)
    done = again(unchanged_twin, home, "--sample-every", "5", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["unchanged"], result["changed"], result["release"]) == (False, True, first["release"])
    assert "/etc/edgekit/camera.json differs; provisioning it again" in " ".join(done.stderr.split())
    assert main_pid(unchanged_twin) != pid
    assert json.loads(on_twin(unchanged_twin, "cat", "/etc/edgekit/camera.json"))["samples"]["every_s"] == 5.0
