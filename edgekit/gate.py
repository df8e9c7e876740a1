"""The host's gate: the figure each task is held to, its default threshold, and the refusal.

The device measures (edgekit/agent/gate.py); the host decides. A refusal names the measure,
its figures and what usually causes a low one, because "calibrate with more images" sends a
technician collecting frames for nothing when the detector's boxes were lost to a head
layer's quantization instead.
"""

from __future__ import annotations

from edgekit.agent.config import BOX_TASKS
from edgekit.device.answers import GateReport

# Matched-box F1 against FP32 is a harder measure than top-1 agreement: a box that moves a
# few pixels past IoU 0.5, or a score that crosses the confidence threshold, counts against it.
DEFAULT_THRESHOLDS = {"classify": 0.99, "detect": 0.90, "pose": 0.90, "segment": 0.90, "raw": 0.99}
LOWER = "or lower --gate-threshold knowingly"
# Only an INT8 release has layers that --mixed-precision auto can keep at a higher precision.
MIXED = "keep the layers INT8 hurts most at a higher precision with --mixed-precision auto, "


def default_threshold(task: str) -> float:
    return DEFAULT_THRESHOLDS[task]


def threshold_for(task: str, given: float | None) -> float:
    """The threshold a release of ``task`` is held to: ``given`` (--gate-threshold), else the task's."""
    return default_threshold(task) if given is None else given


def refusal(gate: GateReport, task: str, precision: str, conf: float | None = None) -> str | None:
    """Why ``gate`` (already held to its threshold) refuses the release; None when it passes."""
    measure, figure = gate.measured(task)
    threshold = gate.threshold or 0.0
    held = f"on {gate.samples} held-out samples"
    if task in BOX_TASKS and figure is None:
        return (
            f"FP32 finds no box in the {gate.samples} held-out samples (at confidence {conf}), so the gate cannot "
            f"tell whether the {precision} model still finds them; hold out images that show the objects "
            "(--holdout-dir), or lower the detect conf in the model's metadata."
        )
    assert figure is not None
    if figure >= threshold:
        return None
    lower = (MIXED if precision == "int8" else "") + LOWER
    if task in BOX_TASKS:
        return (
            f"The {precision} model's {measure} with FP32 is {figure:.1%} {held} (precision "
            f"{gate.box_precision or 0:.1%}, recall {gate.box_recall or 0:.1%}: {gate.boxes} boxes where FP32 "
            f"finds {gate.reference_boxes}), below the {threshold:.0%} gate; lost boxes come from calibration "
            "images that do not show the objects or from head layers that need a higher precision, so calibrate "
            f"with frames of the real scene that show them, {lower}."
        )
    if task == "raw":
        snr = "identical" if gate.snr_db is None else f"SNR {gate.snr_db:.1f} dB"
        return (
            f"The {precision} model's {measure} with FP32 is {figure:.4f} {held} ({snr}), below the "
            f"{threshold:.0%} gate; calibrate with more images from the real scene, {lower}."
        )
    return (
        f"The {precision} model's {measure} with FP32 is {figure:.1%} {held}, below the {threshold:.0%} gate; "
        f"calibrate with more images from the real scene, {lower}."
    )
