"""What the agent answers: its ``build`` command (edgekit/agent/build.py, gate.py) and the
camera service's result lines, as read by edgekit.device.wire where they cross the wire."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from edgekit.agent.config import BOX_TASKS
from edgekit.device.wire import parse


@dataclass(frozen=True)
class GateReport:
    """The held-out samples run through what the service will run, against FP32."""

    samples: int
    top1_agreement: float
    output_cosine: float
    max_abs_diff: float
    # Only when the hold-out set had labels.
    accuracy: float | None
    reference_accuracy: float | None
    infer_ms_mean: float
    # FP32's output power over the error's, in dB; None when the outputs are identical.
    snr_db: float | None = None
    # Detectors: the boxes found matched against FP32's (same class, IoU >= 0.5). Recall and
    # F1 are None when FP32 finds no box in the held-out set.
    box_f1: float | None = None
    box_precision: float | None = None
    box_recall: float | None = None
    boxes: int | None = None
    reference_boxes: int | None = None
    # Set by the host's gate: the threshold and the measure it was held to.
    threshold: float | None = None
    measure: str | None = None

    def measured(self, task: str) -> tuple[str, float | None]:
        """What the threshold applies to: the top-1 class for a classifier; FP32's boxes still
        found for a detector; the whole output's cosine similarity for raw heads."""
        if task == "classify":
            return "top-1 agreement", self.top1_agreement
        if task in BOX_TASKS:
            return "matched-box F1", self.box_f1
        return "output cosine similarity", self.output_cosine

    def held_to(self, task: str, threshold: float) -> GateReport:
        return dataclasses.replace(self, threshold=threshold, measure=self.measured(task)[0])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Baseline:
    """The release serving when the build ran, gated on the same samples as the new one:
    its gate, or (exactly one of the two) why it could not be gated."""

    release: str
    gate: GateReport | None = None
    error: str | None = None


@dataclass(frozen=True)
class EngineRecord:
    """The TensorRT engine a build gated (its cache manifest): its key, and the parts of the
    key that the device, rather than the release, decides."""

    key: str
    tensorrt: str
    compute_capability: str
    l4t: str | None


@dataclass(frozen=True)
class BuildAnswer:
    """The build unit's answer: the model ready on the device, and its gate figures."""

    release: str
    backend: str
    precision: str
    ready_s: float
    gate: GateReport
    # systemd's id of the build unit's run, to find its lines in the journal later.
    invocation: str | None
    # Only when the build was asked to compare against the serving release.
    baseline: Baseline | None = None
    # Only on TensorRT; None also from agents older than the record.
    engine: EngineRecord | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> BuildAnswer:
        return parse(cls, data, "the device's build answer")


@dataclass(frozen=True)
class ClassScore:
    index: int
    label: str
    score: float


@dataclass(frozen=True)
class Detection:
    index: int
    label: str
    score: float
    # x1, y1, x2, y2 in source-frame pixels.
    box: list[float]
    # Pose: [x, y] or [x, y, visibility] per keypoint, in source-frame pixels.
    keypoints: list[list[float]] | None = None
    # Segment: the mask's outline, [x, y] points in source-frame pixels.
    outline: list[list[float]] | None = None


@dataclass(frozen=True)
class RawOutput:
    name: str
    shape: list[int]
    values: list[float]
    # More values than a record carries (edgekit/agent/postprocess.py RAW_VALUES).
    truncated: bool


@dataclass(frozen=True)
class StageLatency:
    grab: float
    pre: float
    infer: float
    post: float
    total: float


@dataclass(frozen=True)
class ResultRecord:
    """One line of the camera service's results (edgekit/agent/service.py ``_record``):
    exactly one of top, detections and outputs is set, by the release's task."""

    ts: float
    frame: int
    release: str
    pid: int
    latency_ms: StageLatency
    # Results per second over the newest frames; None on the first.
    fps: float | None
    top: list[ClassScore] | None = None
    detections: list[Detection] | None = None
    outputs: list[RawOutput] | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> ResultRecord:
        return parse(cls, data, "the camera service's result line")

    def describe(self) -> str:
        """The record in its task's own terms: the top label, the boxes, or the output shapes."""
        if self.top is not None:
            return f"{self.top[0].label} ({self.top[0].score})" if self.top else "no classes"
        if self.detections is not None:
            if not self.detections:
                return "no boxes"
            best, count = max(self.detections, key=lambda box: box.score), len(self.detections)
            extra = ""
            if best.keypoints is not None:
                extra = f", {len(best.keypoints)} keypoints each"
            elif best.outline is not None:
                extra = ", with mask outlines"
            return f"{count} box{'es' if count != 1 else ''}, best {best.label} ({best.score}){extra}"
        shapes = ", ".join(f"{output.name} {output.shape}" for output in self.outputs or [])
        return f"outputs {shapes or 'none'}"

    def to_dict(self) -> dict[str, Any]:
        """As the service wrote it: only the task's own part."""
        parts = ("top", "detections", "outputs")
        record = {
            key: value for key, value in dataclasses.asdict(self).items() if value is not None or key not in parts
        }
        for box in record.get("detections") or []:
            for key in ("keypoints", "outline"):
                if box[key] is None:
                    del box[key]
        return record
