"""End to end: edgekit installed from its wheel, away from the source tree, checks a twin as the checkout does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_facts_twin import check_args, written
from test_provision_twin import SAMPLES, provision_args
from wheel_venv import WheelVenv, wheel_venv

from edgekit.twin import TwinInfo

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> WheelVenv:
    return wheel_venv(tmp_path_factory)


# Where a camera service that an earlier test provisioned on this twin writes by itself
# (results, the sample ring): not what the check wrote.
SERVICE_STATE = ("var/lib/edgekit/",)


def test_installed_edgekit_checks_the_twin(twin: TwinInfo, venv: WheelVenv, tmp_path: Path) -> None:
    before = written(twin, SERVICE_STATE)
    done = venv.run(venv.edgekit, *check_args(twin, str(SAMPLES / "clip.avi")), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    # Detecting the twin needs the packaged profiles; running the checks needs the packed agent.
    assert plan["ok"] is True and plan["profile"] == "twin"
    assert plan["checks"] and all(check["ok"] for check in plan["checks"])
    assert written(twin, SERVICE_STATE) == before


def test_installed_edgekit_provisions_the_twin(twin: TwinInfo, venv: WheelVenv, tmp_path: Path) -> None:
    done = venv.run(venv.edgekit, *provision_args(twin, Path(twin.known_hosts), "--json"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # The packaged unit, profiles and agent reached the device and the service serves.
    assert result["profile"] == "twin" and result["gate"]["top1_agreement"] >= 0.99
    assert result["first_result"]["release"] == result["release"]
