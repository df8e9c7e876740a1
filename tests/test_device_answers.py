"""The camera service's result lines, read by the host as ``ResultRecord``; the parts
come from the agent's own postprocessing, so the shapes are the ones the service writes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edgekit.agent.postprocess import classify, raw_outputs
from edgekit.device.answers import ResultRecord
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
    with pytest.raises(
        DeviceError, match=r"^The camera service's result line has latency_ms.pre = None, not a number"
    ):
        ResultRecord.parse(record(latency_ms={"grab": 1.0}))
