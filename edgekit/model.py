"""Inspect an ONNX model on the host, before anything is sent to a device."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from edgekit.agent.config import TASKS
from edgekit.agent.detect import FORMATS as DETECT_HEADS
from edgekit.agent.preprocess import PreprocessSpec
from edgekit.errors import ModelError

METADATA_KEY = "edgekit.model"
MIN_OPSET = 11


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int | str, ...]
    dtype: str


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    sha256: str
    opset: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    task: str
    labels: tuple[str, ...]
    preprocess: PreprocessSpec
    # For task "detect": head and thresholds, as the agent reads them from release.json.
    detect: dict[str, object] | None = None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def inspect_model(path: Path) -> ModelInfo:
    """Load, check and describe ``path``; raise ModelError with the fix for anything unusable."""
    if not path.is_file():
        raise ModelError(f"The model {path} does not exist; pass the path of an .onnx file with --model.")
    try:
        model = onnx.load(str(path))
    except (DecodeError, ValueError, OSError) as exc:
        raise ModelError(
            f"{path} is not a readable ONNX model (truncated, or another format: {exc}); "
            "export it again and copy it whole."
        ) from exc
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path} fails the ONNX checker ({first}); export it again.") from exc
    if not model.graph.node:
        raise ModelError(f"{path} holds no graph nodes (an empty or truncated export); export it again.")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        raise ModelError(f"{path} uses opset {opset}; export with opset {MIN_OPSET} or newer.")
    initializers = {init.name for init in model.graph.initializer}
    inputs = tuple(_tensor(v) for v in model.graph.input if v.name not in initializers)
    outputs = tuple(_tensor(v) for v in model.graph.output)
    if len(inputs) != 1:
        raise ModelError(f"{path} has {len(inputs)} inputs; edgekit serves camera models with exactly one image input.")
    meta = _edgekit_metadata(model, path)
    preprocess = _declared_preprocess(meta["preprocess"], path) if "preprocess" in meta else None
    preprocess = preprocess or _default_preprocess(inputs[0], path)
    _check_fits(preprocess, inputs[0], path)
    if preprocess.input_name != inputs[0].name:
        raise ModelError(
            f"{path}'s metadata preprocesses {preprocess.input_name!r} but the input is {inputs[0].name!r}."
        )
    task = meta.get("task", "classify")
    if task not in TASKS:
        raise ModelError(f"{path} declares task {task!r}; this edgekit serves: {', '.join(TASKS)}.")
    detect = _declared_detect(meta.get("detect"), path) if task == "detect" else None
    labels = meta.get("labels", [])
    if not isinstance(labels, list):
        # A string would otherwise become one label per character.
        raise ModelError(f"{path}'s {METADATA_KEY} labels are {labels!r}; set them to a JSON list of class names.")
    return ModelInfo(
        path=path,
        sha256=sha256_file(path),
        opset=opset,
        inputs=inputs,
        outputs=outputs,
        task=task,
        labels=tuple(str(label) for label in labels),
        preprocess=preprocess,
        detect=detect,
    )


def _declared_detect(data: object, path: Path) -> dict[str, object]:
    """The detection head and thresholds; checked here so a typo fails before any upload."""
    fix = (
        f'set {METADATA_KEY} "detect" to {{"head": "yolov8"}} (or "yolov5"), '
        'optionally with "conf", "iou" (0-1) and "max_det"'
    )
    if not isinstance(data, dict) or data.get("head") not in DETECT_HEADS:
        raise ModelError(f"{path} declares task 'detect' without a known detection head; {fix}.")
    for key in ("conf", "iou"):
        value = data.get(key, 0.5)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise ModelError(f"{path}'s detect {key} is {value!r}; {fix}.")
    max_det = data.get("max_det", 1)
    if isinstance(max_det, bool) or not isinstance(max_det, int) or max_det < 1:
        raise ModelError(f"{path}'s detect max_det is {max_det!r}; {fix}.")
    unknown = set(data) - {"head", "conf", "iou", "max_det"}
    if unknown:
        raise ModelError(f"{path}'s detect metadata has unknown keys {sorted(unknown)}; {fix}.")
    return dict(data)


def _tensor(value: onnx.ValueInfoProto) -> TensorInfo:
    tensor_type = value.type.tensor_type
    shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor_type.shape.dim)
    return TensorInfo(value.name, shape, onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name)


def _edgekit_metadata(model: onnx.ModelProto, path: Path) -> dict[str, object]:
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            try:
                data = json.loads(prop.value)
            except ValueError as exc:
                raise ModelError(f"{path}'s {METADATA_KEY} metadata is not JSON ({exc}); fix the export.") from exc
            if not isinstance(data, dict):
                raise ModelError(f"{path}'s {METADATA_KEY} metadata must be a JSON object.")
            return data
    return {}


def _default_preprocess(tensor: TensorInfo, path: Path) -> PreprocessSpec:
    """Without edgekit metadata, read the layout off a [N, C, H, W] or [N, H, W, C] float input."""
    shape = tensor.shape
    if tensor.dtype != "float32" or len(shape) != 4:
        raise ModelError(
            f"{path}'s input {tensor.name!r} is {tensor.dtype}{list(shape)}; edgekit expects a float32 image batch."
        )
    if shape[1] in (1, 3) and isinstance(shape[2], int) and isinstance(shape[3], int):
        channels, height, width, layout = shape[1], shape[2], shape[3], "NCHW"
    elif shape[3] in (1, 3) and isinstance(shape[1], int) and isinstance(shape[2], int):
        channels, height, width, layout = shape[3], shape[1], shape[2], "NHWC"
    else:
        raise ModelError(f"{path}'s input {tensor.name!r} has shape {list(shape)}; export it with a fixed image size.")
    assert isinstance(channels, int)
    return PreprocessSpec(
        input_name=tensor.name,
        height=int(height),
        width=int(width),
        channels=channels,
        layout=layout,
        color="gray" if channels == 1 else "rgb",
    )


def _declared_preprocess(data: object, path: Path) -> PreprocessSpec:
    try:
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        return PreprocessSpec.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{path}'s {METADATA_KEY} preprocess metadata is invalid ({exc}); fix the export.") from exc


def _check_fits(spec: PreprocessSpec, tensor: TensorInfo, path: Path) -> None:
    """The tensor preprocessing makes must be one the model accepts."""
    made = (
        (spec.channels, spec.height, spec.width) if spec.layout == "NCHW" else (spec.height, spec.width, spec.channels)
    )
    accepted = tensor.shape[1:]
    if len(accepted) != 3 or any(
        isinstance(want, int) and want != got for want, got in zip(accepted, made, strict=True)
    ):
        raise ModelError(
            f"{path}'s preprocessing makes {spec.layout} {list(made)} but the input {tensor.name!r} is "
            f"{list(tensor.shape)}; fix the {METADATA_KEY} metadata."
        )
