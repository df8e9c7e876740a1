"""End to end: the public Python API against a twin, the way the CLI (and later features) use it."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_provision_twin import SAMPLES

from edgekit import api
from edgekit.errors import PreflightFailed
from edgekit.twin import TwinInfo

pytestmark = pytest.mark.e2e


def endpoint(twin: TwinInfo) -> api.Endpoint:
    return api.Endpoint(
        twin.target, identity=Path(twin.identity), known_hosts=Path(twin.known_hosts), use_ssh_config=False
    )


def request(source: str) -> api.ProvisionRequest:
    return api.ProvisionRequest(
        model=SAMPLES / "model.onnx",
        calib_dir=SAMPLES / "calib",
        holdout_dir=SAMPLES / "holdout",
        source=api.SourceSpec(source),
    )


def test_facts_plan_and_status_from_python(twin: TwinInfo) -> None:
    report = api.facts(endpoint(twin))
    assert (report.profile, report.how, report.profile_error) == ("twin", "detected", None)
    assert report.facts.jetson.soc == "tegra234"

    steps: list[str] = []
    plan = api.plan(endpoint(twin), request(str(SAMPLES / "clip.avi")), api.Reporter(step=steps.append))
    assert plan.ok and plan.resolution.profile.name == "twin"
    assert steps[:3] == ["checking the model", f"connecting to {twin.target}", "reading the device"]
    # A plan that fails preflight is refused by provision before anything is uploaded.
    refused = api.plan(endpoint(twin), request("csi://0"))
    assert not refused.ok
    with pytest.raises(PreflightFailed, match="csi:// sources need"):
        api.provision(endpoint(twin), request("csi://0"))

    status = api.status(endpoint(twin))
    assert status.target == twin.target and status.active_state in ("active", "inactive")
