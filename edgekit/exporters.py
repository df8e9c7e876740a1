"""What a model's exporter, its author and the deployer say about it, merged in that order.

Three sources can state a model's task, labels, input size and preprocessing, each
overriding the one before:

1. Ultralytics' own metadata (edgekit's reading of ultralytics/engine/exporter.py: every
   value is ``str()`` of a Python object, so ``names`` is ``"{0: 'person', ...}"`` and
   ``imgsz`` is ``"[640, 640]"``, height then width), or the original YOLOv5 exporter's
   ``stride`` and ``names`` alone;
2. edgekit's ``edgekit.model`` metadata (JSON), then a sidecar ``MODEL.edgekit.toml`` next
   to the ONNX file, with the same keys, for models that cannot be re-exported;
3. the command line: ``--task``, ``--input-size WxH``, ``--labels FILE``, ``--layout``, ``--color``.
"""

from __future__ import annotations

import ast
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.agent.config import BOX_TASKS
from edgekit.errors import ModelError

if TYPE_CHECKING:
    import onnx

METADATA_KEY = "edgekit.model"
# Ultralytics' tasks that edgekit serves under its own names; obb (rotated boxes) is not yet.
ULTRALYTICS_TASKS = {"detect": "detect", "classify": "classify", "pose": "pose", "segment": "segment"}
EDGEKIT_KEYS = ("task", "labels", "preprocess", "detect", "input_size")


@dataclass(frozen=True)
class ModelOverrides:
    """The command line's say about a model (each None leaves it to the model)."""

    task: str | None = None
    # Width, height.
    input_size: tuple[int, int] | None = None
    labels: Path | None = None
    layout: str | None = None
    color: str | None = None
    # What a serving release's record states of its model (task, labels, preprocess, detect,
    # input_size): `edgekit calibrate` recalibrates the model exactly as that release serves it.
    release: Mapping[str, Any] | None = field(default=None, compare=False)


@dataclass
class Declared:
    """What the model's sources state; None where none of them does."""

    task: str | None = None
    labels: list[str] | None = None
    # Height, width.
    size: tuple[int, int] | None = None
    # Keys of edgekit.agent.preprocess.PreprocessSpec.
    preprocess: dict[str, Any] = field(default_factory=dict)
    detect: dict[str, Any] | None = None
    # Ultralytics' stride: an input size must be a multiple of it.
    stride: int | None = None
    # Where each statement came from, for the provision log.
    sources: list[str] = field(default_factory=list)


def declared(model: onnx.ModelProto, path: Path, overrides: ModelOverrides) -> Declared:
    found = Declared()
    props = {prop.key: prop.value for prop in model.metadata_props}
    # Ultralytics' package writes author, task and imgsz; the original YOLOv5 repository's
    # export.py (and the `yolov5` package) only stride and names, in the same str() form.
    if props.get("author") == "Ultralytics" or {"names", "stride"} <= set(props):
        _ultralytics(found, props, path)
    if METADATA_KEY in props:
        _edgekit(found, _json_object(props[METADATA_KEY], path), f"{path.name}'s {METADATA_KEY} metadata", path)
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        try:
            data = tomllib.loads(sidecar.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ModelError(f"{sidecar} is not valid TOML ({exc}); fix it or remove it.") from exc
        _edgekit(found, data, sidecar.name, sidecar)
    if overrides.release is not None:
        _edgekit(found, dict(overrides.release), "the serving release's record", path)
    _command_line(found, overrides)
    return found


def sidecar_path(model: Path) -> Path:
    return model.with_name(f"{model.stem}.edgekit.toml")


def _literal(props: dict[str, str], key: str, path: Path) -> Any:
    try:
        return ast.literal_eval(props[key])
    except (ValueError, SyntaxError) as exc:
        raise ModelError(
            f"{path}'s Ultralytics metadata {key} = {props[key]!r} is not readable; re-export it with Ultralytics."
        ) from exc


def _ultralytics(found: Declared, props: dict[str, str], path: Path) -> None:
    found.sources.append("Ultralytics metadata")
    task = props.get("task")
    if task is not None:
        if task not in ULTRALYTICS_TASKS:
            raise ModelError(
                f"{path} is an Ultralytics {task} model, which edgekit does not serve yet; --task raw serves its "
                "outputs as named tensors."
            )
        found.task = ULTRALYTICS_TASKS[task]
    if "names" in props:
        names = _literal(props, "names", path)
        if isinstance(names, dict):
            found.labels = [str(names[key]) for key in sorted(names)]
    if "imgsz" in props:
        size = _literal(props, "imgsz", path)
        if isinstance(size, int):
            size = [size, size]
        if isinstance(size, list | tuple) and len(size) == 2:
            found.size = (int(size[0]), int(size[1]))
    if "stride" in props:
        found.stride = int(_literal(props, "stride", path))
    if found.task in BOX_TASKS:
        end2end = "end2end" in props and bool(_literal(props, "end2end", path))
        if end2end and found.task != "detect":
            raise ModelError(
                f"{path} is an end-to-end Ultralytics {found.task} model, which edgekit does not decode yet; "
                "export it with end2end=False, or serve its outputs with --task raw."
            )
        # Ultralytics' predictor defaults: confidence 0.25, NMS IoU 0.7, 300 boxes.
        found.detect = {"head": "end2end" if end2end else "yolov8", "conf": 0.25, "iou": 0.7, "max_det": 300}
        if found.task == "pose":
            found.detect["kpt_shape"] = _literal(props, "kpt_shape", path) if "kpt_shape" in props else None
    # Ultralytics trains on letterboxed RGB in 0-1, padded with grey 114.
    found.preprocess.update(resize="letterbox", color="rgb", scale=1.0 / 255.0)


def _json_object(text: str, path: Path) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ModelError(f"{path}'s {METADATA_KEY} metadata is not JSON ({exc}); fix the export.") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}'s {METADATA_KEY} metadata must be a JSON object.")
    return data


def _edgekit(found: Declared, data: dict[str, Any], source: str, path: Path) -> None:
    unknown = sorted(set(data) - set(EDGEKIT_KEYS))
    if unknown:
        raise ModelError(f"{source} has unknown keys {unknown}; it takes {', '.join(EDGEKIT_KEYS)}.")
    found.sources.append(source)
    if "task" in data:
        found.task = str(data["task"])
    if "labels" in data:
        labels = data["labels"]
        if not isinstance(labels, list):
            # A string would otherwise become one label per character.
            raise ModelError(f"{path}'s labels are {labels!r}; set them to a list of class names.")
        found.labels = [str(label) for label in labels]
    if "preprocess" in data:
        if not isinstance(data["preprocess"], dict):
            raise ModelError(f"{path}'s preprocess metadata is invalid (not an object); fix the export.")
        found.preprocess.update(data["preprocess"])
    if "detect" in data:
        found.detect = data["detect"]
    if "input_size" in data:
        size = data["input_size"]
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
            raise ModelError(f"{source}'s input_size is {size!r}; set it to [width, height] in pixels.")
        found.size = (size[1], size[0])


def _command_line(found: Declared, overrides: ModelOverrides) -> None:
    if overrides.task is not None:
        found.task = overrides.task
    if overrides.input_size is not None:
        width, height = overrides.input_size
        found.size = (height, width)
    if overrides.labels is not None:
        try:
            lines = overrides.labels.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"Cannot read the labels file {overrides.labels} ({exc}); pass a text file.") from exc
        found.labels = [line.strip() for line in lines if line.strip()]
    if overrides.layout is not None:
        found.preprocess["layout"] = overrides.layout
    if overrides.color is not None:
        found.preprocess["color"] = overrides.color
    stated = (overrides.task, overrides.input_size, overrides.labels, overrides.layout, overrides.color)
    if any(value is not None for value in stated):
        found.sources.append("the command line")
