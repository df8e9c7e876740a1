"""The camera service's result lines, read by the host as ``ResultRecord``; the parts
come from the agent's own postprocessing, so the shapes are the ones the service writes.
And the build unit's answer, read as ``BuildAnswer``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edgekit.agent.postprocess import classify, raw_outputs
from edgekit.device.answers import Baseline, BuildAnswer, GateReport, ResultRecord
from edgekit.errors import DeviceError

LATENCY = {"grab": 1.0, "pre": 2.0, "infer": 3.0, "post": 0.5, "total": 7.0}


def record(**part: Any) -> dict[str, Any]:
    """A line as edgekit/agent/service.py writes it, with the task's part."""
    return {"ts": 1.5, "frame": 9, "release": "r1", "pid": 42, "latency_ms": LATENCY, "fps": 29.5, **part}


def detection(label: str, score: float) -> dict[str, Any]:
    return {"index": 0, "label": label, "score": score, "box": [1.0, 2.0, 3.0, 4.0]}


@pytest.mark.parametrize(
    ("part", "shown"),
    [
        ({"top": classify(np.array([0.1, 3.0, 0.2]), ["cat", "7", "dog"], 2)}, "7 (0.8962)"),
        ({"detections": [detection("car", 0.4), detection("person", 0.9)]}, "2 boxes, best person (0.9)"),
        ({"detections": [detection("car", 0.4)]}, "1 box, best car (0.4)"),
        ({"detections": []}, "no boxes"),
        ({"outputs": raw_outputs([np.zeros((1, 512))], ["features"])}, "outputs features [1, 512]"),
    ],
)
def test_a_result_is_shown_in_its_task_s_terms_and_reads_back_as_written(part: dict[str, Any], shown: str) -> None:
    line = record(**part)
    parsed = ResultRecord.parse(line)
    assert parsed.describe() == shown
    assert parsed.to_dict() == line
    assert parsed.pid == 42 and parsed.latency_ms.infer == 3.0


def test_the_first_frame_has_no_fps_yet() -> None:
    assert ResultRecord.parse(record(fps=None, top=[])).fps is None


def test_a_result_of_another_shape_is_one_sentence() -> None:
    with pytest.raises(DeviceError, match=r"^The camera service's result line has latency_ms.pre = None, not a number"):
        ResultRecord.parse(record(latency_ms={"grab": 1.0}))


GATE = {
    "samples": 10,
    "top1_agreement": 0.9,
    "output_cosine": 0.99,
    "max_abs_diff": 0.5,
    "accuracy": None,
    "reference_accuracy": None,
    "infer_ms_mean": 1.5,
}


def build_answer(**changes: Any) -> dict[str, Any]:
    """As edgekit/agent/build.py writes it."""
    base = {"release": "r2", "backend": "onnxruntime", "precision": "int8", "ready_s": 0.5, "gate": GATE}
    return {**base, "invocation": "inv1", **changes}


def test_a_build_answer_without_a_baseline_has_none() -> None:
    assert BuildAnswer.parse(build_answer()).baseline is None


def test_a_build_answer_carries_the_serving_release_s_gate_on_the_same_samples() -> None:
    old_gate = {**GATE, "top1_agreement": 0.7}
    parsed = BuildAnswer.parse(build_answer(baseline={"release": "r1", "gate": old_gate}))
    assert parsed.baseline == Baseline("r1", GateReport(**old_gate), None)
    assert parsed.gate.top1_agreement == 0.9


def test_a_baseline_that_could_not_be_gated_says_why() -> None:
    parsed = BuildAnswer.parse(build_answer(baseline={"release": "r1", "error": "release.json is missing"}))
    assert parsed.baseline == Baseline("r1", None, "release.json is missing")


def test_a_malformed_baseline_is_one_sentence() -> None:
    with pytest.raises(DeviceError, match=r"^The device's build answer has baseline.gate.samples = 'ten', not an int"):
        BuildAnswer.parse(build_answer(baseline={"release": "r1", "gate": {**GATE, "samples": "ten"}}))
