"""Which task a model serves, told by its output shapes when nothing states it.

Exporters rarely say what a model does: torchvision writes no metadata, TensorFlow and
Paddle neither, and a hand-pinned Ultralytics file may have lost its own. The output
shapes of the usual heads tell them apart:

- a classifier: one output ``[1, C]`` (or ``[1, C, 1, 1]``);
- YOLOv8/11 (and Ultralytics' YOLOv5u): ``[1, 4 + C, N]``, box then class scores per column;
- YOLOv5/v7: ``[1, N, 5 + C]``, box, objectness, class scores per row;
- end-to-end (NMS-free, YOLOv10/26): ``[1, K, 6]``, x1 y1 x2 y2 score class per row;
- Ultralytics segmentation: ``[1, 4 + C + M, N]`` and ``[1, M, h, w]`` mask prototypes.

A pose head ``[1, 4 + C + K * D, N]`` looks like a detector with more classes: only the
keypoint shape its metadata states tells them apart, so it is never inferred.

What is inferred is said, with why; what stays ambiguous is refused with the choices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgekit.errors import ModelError

# An end-to-end head keeps at most a few hundred boxes (300 in Ultralytics); a YOLOv5 head
# has three anchors on every cell of three grids, over a thousand even at 160 pixels.
END2END_MAX_ROWS = 1000
TASK_CHOICE = "pass --task classify, --task detect, --task pose, --task segment or --task raw"


@dataclass(frozen=True)
class Head:
    task: str
    # The detection head's layout (edgekit.agent.detect.FORMATS); None for other tasks.
    layout: str | None
    # Classes the output has room for; None when its shape does not say.
    classes: int | None
    # Why: what was read off the shapes, for the provision log.
    reason: str
    # Mask coefficients per box of a segmentation head; 0 for the others.
    masks: int = 0


def detection_layout(shape: Sequence[int], stated: str | None = None) -> Head | None:
    """The detection head a ``[1, a, b]`` output is (the ``stated`` one, if its shape fits it),
    or None if it is none of them. A one-class YOLOv5 head ``[1, N, 6]`` fits the end-to-end
    layout too: unstated, the end-to-end reading wins while N is small enough for one."""
    if len(shape) != 3 or shape[0] != 1:
        return None
    rows, columns = shape[1], shape[2]
    fits = {
        "end2end": columns == 6 and (stated == "end2end" or rows <= END2END_MAX_ROWS),
        "yolov8": rows < columns and rows >= 5,
        "yolov5": rows > columns and columns >= 6,
    }
    layout = stated if stated is not None else next((name for name, fit in fits.items() if fit), None)
    if layout is None or not fits.get(layout):
        return None
    if layout == "end2end":
        return Head("detect", "end2end", None, f"{rows} rows of x1 y1 x2 y2 score class (an NMS-free head)")
    if layout == "yolov8":
        return Head(
            "detect", "yolov8", rows - 4, f"4 box values and {rows - 4} class scores for each of {columns} anchors"
        )
    return Head(
        "detect",
        "yolov5",
        columns - 5,
        f"{rows} anchors of 4 box values, objectness and {columns - 5} class scores",
    )


def segmentation_head(outputs: Sequence[tuple[str, Sequence[int]]]) -> Head | None:
    """Ultralytics' segmentation head: ``[1, 4 + C + M, N]`` boxes, class scores and M mask
    coefficients per anchor, then ``[1, M, h, w]`` mask prototypes."""
    (boxes_name, boxes), (protos_name, protos) = ((name, list(shape)) for name, shape in outputs)
    head = detection_layout(boxes)
    if head is None or head.layout != "yolov8" or len(protos) != 4 or protos[0] != 1 or head.classes is None:
        return None
    masks = protos[1]
    if head.classes - masks < 1:
        return None
    return Head(
        "segment",
        "yolov8",
        head.classes - masks,
        f"outputs {boxes_name} {boxes} and {protos_name} {protos}: 4 box values, {head.classes - masks} class "
        f"scores and {masks} mask coefficients for each of {boxes[2]} anchors, then {masks} mask prototypes",
        masks,
    )


def infer_head(path: object, outputs: Sequence[tuple[str, Sequence[int]]]) -> Head:
    """The task the outputs (name and concrete shape at batch 1) belong to; ModelError if unclear."""
    shapes = ", ".join(f"{name} {list(shape)}" for name, shape in outputs)
    if len(outputs) == 1:
        name, shape = outputs[0]
        dims = list(shape)
        if len(dims) == 2 and dims[0] == 1 and dims[1] >= 2 or len(dims) == 4 and dims[:1] + dims[2:] == [1, 1, 1]:
            return Head("classify", None, dims[1], f"one output {name} {dims}: {dims[1]} class scores")
        head = detection_layout(dims)
        if head is not None:
            return Head(head.task, head.layout, head.classes, f"one output {name} {dims}: {head.reason}")
    if len(outputs) == 2:
        segment = segmentation_head(outputs)
        if segment is not None:
            return segment
    raise ModelError(
        f"{path} states no task and its outputs ({shapes}) are no classifier or YOLO head edgekit knows; "
        f"{TASK_CHOICE} (raw serves every output as named tensors)."
    )
