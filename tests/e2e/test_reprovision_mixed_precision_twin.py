"""End to end: a model whose INT8 the gate refuses provisions with ``--mixed-precision auto``.

On the session twin, after test_provision_twin (whose first tests need it untouched): the
file's name keeps it after that one.

The model (outlier_models.conv_net) fails INT8 through one convolution that reads an
outlier channel; the refusal names the flag, and with it the host keeps that convolution
out of INT8 and the twin's own gate passes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from outlier_models import conv_net
from test_provision_twin import edgekit, on_twin, provision_args

from edgekit.twin import TwinInfo

pytestmark = pytest.mark.e2e


def test_refused_int8_passes_with_mixed_precision_auto(twin: TwinInfo, tmp_path: Path) -> None:
    model = conv_net(tmp_path / "outlier.onnx", outliers=(2,))
    args = provision_args(twin, tmp_path / "known_hosts", "--accept-new-host-key", "--task", "raw", "--json")
    args[args.index("--model") + 1] = str(model)
    refused = edgekit(*args, home=tmp_path)
    assert refused.returncode == 6, refused.stderr
    assert "--mixed-precision auto" in " ".join(refused.stderr.split())

    checked = edgekit(*args, "--mixed-precision", "auto", "--check", home=tmp_path)
    assert checked.returncode == 0, checked.stderr
    # --check shows the choice before anything is sent.
    assert json.loads(checked.stdout)["mixed_precision"]["layers"] == ["node_of_c3"]

    done = edgekit(*args, "--mixed-precision", "auto", home=tmp_path)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    mixed = result["mixed_precision"]
    assert (mixed["layers"], mixed["passed"]) == (["node_of_c3"], True)
    assert [step["layers"] for step in mixed["steps"]] == [0, 1] and mixed["steps"][0]["figure"] < 0.99
    # The device measured it itself, on onnxruntime running the host's Q/DQ model.
    assert result["gate"]["measure"] == "output cosine similarity" and result["gate"]["output_cosine"] >= 0.99
    manifest = json.loads(on_twin(twin, "cat", f"/var/lib/edgekit/releases/{result['release']}/release.json"))
    assert manifest["mixed_precision"]["nodes"] == ["node_of_c3", "node_of_r2"]
