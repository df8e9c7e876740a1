"""Inspect an ONNX model on the host, before anything is sent to a device."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from edgekit.agent.config import BOX_TASKS, TASKS, DetectConfig
from edgekit.agent.detect import FORMATS as DETECT_HEADS
from edgekit.agent.preprocess import DTYPES, LAYOUTS, PreprocessSpec
from edgekit.errors import ModelError
from edgekit.exporters import METADATA_KEY, Declared, ModelOverrides, declared
from edgekit.heads import detection_layout, infer_head

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
    # For the box tasks (detect, pose, segment): head and thresholds, as the agent reads them from release.json.
    detect: DetectConfig | None
    # The input shape served (batch 1, the image size pinned); pinned when the file's image axes are dynamic.
    input_shape: tuple[int, ...]
    pinned: bool
    # What was read from where and what was inferred, for the provision log.
    notes: tuple[str, ...] = ()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def inspect_model(path: Path, overrides: ModelOverrides | None = None) -> ModelInfo:
    """Load, check and describe ``path``; raise ModelError with the fix for anything unusable."""
    model = _load_checked(path)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        raise ModelError(f"{path} uses opset {opset}; export with opset {MIN_OPSET} or newer.")
    initializers = {init.name for init in model.graph.initializer}
    inputs = tuple(_tensor(v) for v in model.graph.input if v.name not in initializers)
    if len(inputs) != 1:
        raise ModelError(
            f"{path} has {len(inputs)} inputs ({', '.join(t.name for t in inputs)}); edgekit serves camera models "
            "with exactly one image input, so export it with one."
        )
    found = declared(model, path, overrides or ModelOverrides())
    preprocess = _preprocess(inputs[0], found, path)
    shape = _served_shape(preprocess)
    # A dynamic batch stays: TensorRT serves it at 1 through a profile and calibrates in larger batches.
    pinned_shape = inputs[0].shape[:1] + shape[1:]
    pinned = pinned_shape != inputs[0].shape
    outputs = _probe(pin_input(model, inputs[0].name, pinned_shape) if pinned else model, inputs[0], shape, path)
    notes = [f"read {', '.join(found.sources)}"] if found.sources else []
    if pinned:
        notes.append(f"input {inputs[0].name} {list(inputs[0].shape)} pinned to {list(pinned_shape)}")
    notes.append(_preprocess_note(preprocess))
    task, detect, classes = _task(found, outputs, path, notes)
    used = 2 if task == "segment" else 1
    if task != "raw" and len(outputs) > used:
        read = " and ".join(output.name for output in outputs[:used])
        unused = ", ".join(output.name for output in outputs[used:])
        notes.append(f"the {task} head reads output {read}; {unused} not used (--task raw serves all)")
    labels = found.labels or []
    if labels and classes is not None and len(labels) != classes:
        raise ModelError(
            f"{path} has {classes} classes but {len(labels)} labels were given; pass a --labels file with one "
            f"name per class, {classes} lines."
        )
    return ModelInfo(
        path=path,
        sha256=sha256_file(path),
        opset=opset,
        inputs=inputs,
        outputs=outputs,
        task=task,
        labels=tuple(labels),
        preprocess=preprocess,
        detect=detect,
        input_shape=shape,
        pinned=pinned,
        notes=tuple(notes),
    )


def served_onnx(info: ModelInfo) -> bytes:
    """The ONNX that is served, quantized and gated: the file itself, or its input pinned."""
    if not info.pinned:
        return info.path.read_bytes()
    batch = info.inputs[0].shape[:1]
    pinned = pin_input(onnx.load(str(info.path)), info.preprocess.input_name, batch + info.input_shape[1:])
    # The outputs' axes that followed the image size ("anchors") are fixed too, as measured;
    # a runtime that trusts the declared shapes would otherwise size a buffer of -1.
    measured = {output.name: output.shape for output in info.outputs}
    for value in pinned.graph.output:
        dims = value.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            if axis == 0 and dim.dim_param and dim.dim_param == batch[0]:
                continue
            if not dim.HasField("dim_value") and value.name in measured and len(measured[value.name]) == len(dims):
                size = measured[value.name][axis]
                dim.Clear()
                dim.dim_value = int(size)
    return bytes(pinned.SerializeToString())


def pin_input(model: onnx.ModelProto, name: str, shape: tuple[int | str, ...]) -> onnx.ModelProto:
    """A copy with the input's image axes fixed at the size that is served, so that every
    runtime (onnxruntime, TensorRT's parser) sees the shape preprocessing makes; a named
    (dynamic) batch axis stays as it is."""
    pinned = onnx.ModelProto()
    pinned.CopyFrom(model)
    for value in pinned.graph.input:
        if value.name == name:
            for dim, size in zip(value.type.tensor_type.shape.dim, shape, strict=True):
                if isinstance(size, int):
                    dim.Clear()
                    dim.dim_value = size
    return pinned


def _load_checked(path: Path) -> onnx.ModelProto:
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
    return model


def _preprocess(tensor: TensorInfo, found: Declared, path: Path) -> PreprocessSpec:
    """How frames become this input: its layout, type and size, as stated or as read off it."""
    shape, stated = tensor.shape, found.preprocess
    if len(shape) != 4 or tensor.dtype not in DTYPES:
        raise ModelError(
            f"{path}'s input {tensor.name!r} is {tensor.dtype}{list(shape)}; edgekit serves image inputs "
            f"[N, C, H, W] or [N, H, W, C] of {', '.join(DTYPES)}."
        )
    layout = stated.get("layout") or ("NCHW" if shape[1] in (1, 3) else "NHWC" if shape[3] in (1, 3) else None)
    if layout not in LAYOUTS:
        raise ModelError(
            f"{path}'s input {tensor.name!r} {list(shape)} has no channel axis of 1 or 3 that edgekit can find; "
            "pass --layout NCHW or --layout NHWC."
        )
    channels, height, width = (shape[1], shape[2], shape[3]) if layout == "NCHW" else (shape[3], shape[1], shape[2])
    if channels not in (1, 3):
        raise ModelError(f"{path}'s input {tensor.name!r} {list(shape)} is not {layout} with 1 or 3 channels.")
    if isinstance(shape[0], int) and shape[0] != 1:
        raise ModelError(
            f"{path}'s input {tensor.name!r} has a fixed batch of {shape[0]}; the camera serves one frame at a "
            "time, so export it with batch 1 or a dynamic batch."
        )
    size = _image_size(tensor, (height, width), found, path)
    base: dict[str, object] = {
        "input_name": tensor.name,
        "height": size[0],
        "width": size[1],
        "channels": channels,
        "layout": layout,
        "color": "gray" if channels == 1 else "rgb",
        "dtype": tensor.dtype,
    }
    if tensor.dtype == "uint8":
        base["scale"] = 1.0
    merged = {**base, **stated}
    try:
        spec = PreprocessSpec.from_dict(merged)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{path}'s preprocessing is invalid ({exc}); fix the {METADATA_KEY} metadata.") from exc
    if spec.input_name != tensor.name:
        raise ModelError(f"{path}'s metadata preprocesses {spec.input_name!r} but the input is {tensor.name!r}.")
    made = (
        (spec.channels, spec.height, spec.width) if spec.layout == "NCHW" else (spec.height, spec.width, spec.channels)
    )
    if any(isinstance(want, int) and want != got for want, got in zip(shape[1:], made, strict=True)) or (
        spec.dtype != tensor.dtype
    ):
        raise ModelError(
            f"{path}'s preprocessing makes {spec.dtype} {spec.layout} {list(made)} but the input {tensor.name!r} is "
            f"{tensor.dtype}{list(shape)}; fix the {METADATA_KEY} metadata."
        )
    return spec


def _image_size(tensor: TensorInfo, dims: tuple[int | str, int | str], found: Declared, path: Path) -> tuple[int, int]:
    """Height and width: the input's own, or the stated size where its axes are dynamic."""
    if found.size is None:
        if isinstance(dims[0], int) and isinstance(dims[1], int):
            return dims[0], dims[1]
        raise ModelError(
            f"{path}'s input {tensor.name!r} {list(tensor.shape)} has a dynamic image size and nothing states one; "
            "pass --input-size WxH (the size it was trained at), or export it with a fixed image size."
        )
    height, width = found.size
    axes = zip(("height", "width"), dims, found.size, strict=True)
    wrong = [f"{axis} {want}" for axis, want, got in axes if isinstance(want, int) and want != got]
    if wrong:
        raise ModelError(
            f"{path}'s input {tensor.name!r} {list(tensor.shape)} has a fixed {', '.join(wrong)}, so it cannot take "
            f"{width}x{height}; drop --input-size or re-export the model at that size."
        )
    stride = found.stride
    if height < 1 or width < 1 or (stride and (height % stride or width % stride)):
        raise ModelError(
            f"{width}x{height} is not an input size {path} can take"
            + (f" (a multiple of its stride {stride})" if stride else "")
            + "; pass another --input-size WxH."
        )
    return height, width


def _preprocess_note(spec: PreprocessSpec) -> str:
    """How frames become the input, as read or stated: what a wrong guess would be found by."""
    if spec.dtype == "uint8":
        values = "raw pixels 0-255"
    else:
        values = f"pixels x {spec.scale:.6g}"
        if any(spec.mean) or any(v != 1.0 for v in spec.std):
            values += f", mean {list(spec.mean)}, std {list(spec.std)}"
    return (
        f"frames become {spec.dtype} {spec.layout} {spec.width}x{spec.height} {spec.color.upper()}, "
        f"{spec.resize}, {values}"
    )


def _served_shape(spec: PreprocessSpec) -> tuple[int, ...]:
    if spec.layout == "NCHW":
        return (1, spec.channels, spec.height, spec.width)
    return (1, spec.height, spec.width, spec.channels)


def _probe(model: onnx.ModelProto, tensor: TensorInfo, shape: tuple[int, ...], path: Path) -> tuple[TensorInfo, ...]:
    """The outputs' concrete shapes at the served input shape: one onnxruntime run on zeros,
    because an exporter's dynamic axes leave them symbolic in the graph."""
    # Imported here: inspecting a model is the only host step that runs one before quantizing.
    import numpy as np
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        results = session.run(None, {tensor.name: np.zeros(shape, dtype=tensor.dtype)})
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
        raise ModelError(
            f"onnxruntime cannot run {path} at input {list(shape)} ({str(exc).splitlines()[0]}); check the input "
            "size and the export."
        ) from exc
    return tuple(
        TensorInfo(value.name, tuple(int(d) for d in np.shape(result)), np.asarray(result).dtype.name)
        for value, result in zip(model.graph.output, results, strict=True)
    )


def _task(
    found: Declared, outputs: tuple[TensorInfo, ...], path: Path, notes: list[str]
) -> tuple[str, DetectConfig | None, int | None]:
    """The task, its detection head and how many classes the output has room for."""
    # Probed, so every dimension is a number.
    shapes = [(output.name, tuple(int(d) for d in output.shape)) for output in outputs]
    # A stated detection head says the task too (a sidecar's [detect] table alone).
    if found.task is None and found.detect is None:
        head = infer_head(path, shapes)
        notes.append(f"task {head.task} inferred from {head.reason}; pass --task to say otherwise")
        if head.task not in BOX_TASKS:
            return head.task, None, head.classes
        inferred: dict[str, object] = {"head": head.layout}
        if head.masks:
            inferred["masks"] = head.masks
        return head.task, _declared_detect(inferred, path, head.task), head.classes
    task = found.task or "detect"
    if task not in TASKS:
        raise ModelError(f"{path} declares task {task!r}; this edgekit serves: {', '.join(TASKS)}.")
    if task == "raw":
        return task, None, None
    if task == "classify":
        return task, None, int(outputs[0].shape[1]) if len(outputs[0].shape) >= 2 else None
    guess = detection_layout(shapes[0][1])
    stated: dict[str, object] = dict(found.detect or ({"head": guess.layout} if guess else {}))
    if task == "segment":
        stated["masks"] = _prototypes(shapes, path)
    detect = _declared_detect(stated, path, task)
    layout = detection_layout(shapes[0][1], detect.head)
    if layout is None:
        raise ModelError(
            f"{path}'s output {outputs[0].name} {list(outputs[0].shape)} is no {detect.head} detection head; "
            "set the detect head that matches it, or --task raw."
        )
    classes = None if layout.classes is None else layout.classes - detect.extra
    if classes is not None and classes < 1:
        raise ModelError(
            f"{path}'s output {outputs[0].name} {list(outputs[0].shape)} has {layout.classes} values per box after "
            f"its coordinates, too few for {detect.extra} keypoint values or mask coefficients and a class score; "
            "check the kpt_shape the model states."
        )
    return task, detect, classes


def _prototypes(shapes: list[tuple[str, tuple[int, ...]]], path: Path) -> int:
    """How many mask prototypes a segmentation model's second output ``[1, M, h, w]`` holds."""
    if len(shapes) < 2 or len(shapes[1][1]) != 4:
        found = ", ".join(f"{name} {list(shape)}" for name, shape in shapes)
        raise ModelError(
            f"{path} is declared a segmentation model but has no mask prototypes [1, M, h, w] as its second "
            f"output ({found}); export it with Ultralytics' segment task, or pass --task detect or --task raw."
        )
    return shapes[1][1][1]


def _declared_detect(data: dict[str, object] | None, path: Path, task: str = "detect") -> DetectConfig:
    """The detection head and thresholds; checked here so a typo fails before any upload."""
    fix = (
        f'set {METADATA_KEY} "detect" to {{"head": "yolov8"}} (heads: {", ".join(DETECT_HEADS)}), '
        'optionally with "conf", "iou" (0-1) and "max_det"'
    )
    if not isinstance(data, dict) or data.get("head") not in DETECT_HEADS:
        raise ModelError(f"{path} declares task {task!r} without a known detection head; {fix}.")
    for key in ("conf", "iou"):
        value = data.get(key, 0.5)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise ModelError(f"{path}'s detect {key} is {value!r}; {fix}.")
    max_det = data.get("max_det", 1)
    if isinstance(max_det, bool) or not isinstance(max_det, int) or max_det < 1:
        raise ModelError(f"{path}'s detect max_det is {max_det!r}; {fix}.")
    unknown = set(data) - set(DetectConfig._fields)
    if unknown:
        raise ModelError(f"{path}'s detect metadata has unknown keys {sorted(unknown)}; {fix}.")
    settings = {key: value for key, value in data.items() if key != "kpt_shape"}
    if task in ("pose", "segment") and data["head"] != "yolov8":
        raise ModelError(
            f"{path} is a {task} model with a {data['head']} head; edgekit decodes {task} from Ultralytics' "
            "yolov8-style head only, so serve it with --task raw."
        )
    if task == "pose":
        settings["kpt_shape"] = _kpt_shape(data.get("kpt_shape"), path)
    # The agent's defaults written out, so release.json and the gate's messages say what is used.
    return DetectConfig(**settings)  # type: ignore[arg-type]  # each key was checked above


def _kpt_shape(value: object, path: Path) -> tuple[int, int]:
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and value[0] >= 1
        and value[1] in (2, 3)
    ):
        return int(value[0]), int(value[1])
    raise ModelError(
        f"{path} is a pose model whose keypoint shape is {value!r}, not [keypoints, 2 or 3]; export it with "
        "Ultralytics (which writes kpt_shape), or set kpt_shape = [17, 3] in the [detect] table of "
        f"{path.stem}.edgekit.toml."
    )


def _tensor(value: onnx.ValueInfoProto) -> TensorInfo:
    tensor_type = value.type.tensor_type
    shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor_type.shape.dim)
    return TensorInfo(value.name, shape, onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name)
