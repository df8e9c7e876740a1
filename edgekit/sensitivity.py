"""``--mixed-precision auto``: the layers INT8 hurts most, kept at a higher precision, step by step.

Only on request: a release that needs it is refused by the gate first, and the refusal
suggests it. The host then ranks the weighted layers (Conv, ConvTranspose, Gemm, MatMul)
by the error INT8 makes in each, and keeps the worst 1, 2, 4, ... of them out of INT8
until its estimate of the device's gate passes or a cap (a share of those layers) is
reached. The kept layers stay FP32 in the Q/DQ model; TensorRT's calibrator path builds
them at FP16 (edgekit/agent/backends/tensorrt/builder.py, keep_layers_half).

Ranking scores each layer alone: one graph holds the FP32 model and, beside each weighted
layer, a copy of it fed the Q/DQ model's INT8-rounded input and weights, computed from
FP32's own input. The error at a layer's output in the quantized model would blame every
layer after the culprit, since errors accumulate down the network; quantizing one layer at
a time would cost a calibration per layer, minutes each on a small host. This costs one
forward pass over a few calibration images, and each layer's score is its output's
noise-to-signal power (1 / SQNR) against FP32.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.agent.config import BOX_TASKS, DetectConfig

# numpy, onnx and onnxruntime are imported where used: the CLI imports MODES at start-up.
if TYPE_CHECKING:
    import numpy as np
    import onnx

MODES = ("off", "auto")
# The most layers kept at a higher precision, as a share of the weighted layers INT8 quantizes.
CAP_SHARE = 0.25
# Calibration images the ranking runs: layer errors settle within a few images, and the
# graph it runs holds every weighted layer twice.
RANK_IMAGES = 16


@dataclass(frozen=True)
class Step:
    """One try: this many of the worst layers kept out of INT8, and the host's gate figure then."""

    layers: int
    figure: float | None


@dataclass(frozen=True)
class MixedPrecision:
    """What the pass chose and why, as the release, the report and ``--json`` record it."""

    mode: str
    measure: str
    threshold: float
    # The most layers the pass would keep (CAP_SHARE of the weighted layers).
    cap: int
    # The weighted layers kept, worst first.
    layers: tuple[str, ...] = ()
    # Every node kept out of INT8 for them: the layers and what passes them their input (_feeders).
    nodes: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()

    @property
    def passed(self) -> bool:
        figure = self.steps[-1].figure if self.steps else None
        return figure is not None and figure >= self.threshold

    def cap_note(self) -> str | None:
        """One sentence when the cap stopped the pass short of the gate; None otherwise."""
        # No figure: FP32 found no box, and the device's refusal says so itself.
        if self.passed or not self.steps or self.steps[-1].figure is None:
            return None
        return (
            f"Mixed precision reached its cap of {self.cap} layers kept at higher precision with the host's "
            f"{self.measure} at {describe(self.measure, self.steps[-1].figure)}, below the {self.threshold:.0%} "
            "gate, so the device's gate is likely to refuse the release."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "layers": list(self.layers),
            "nodes": list(self.nodes),
            "steps": [dataclasses.asdict(step) for step in self.steps],
            "passed": self.passed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MixedPrecision:
        return cls(
            mode=data["mode"],
            measure=data["measure"],
            threshold=data["threshold"],
            cap=data["cap"],
            layers=tuple(data["layers"]),
            nodes=tuple(data["nodes"]),
            steps=tuple(Step(**step) for step in data["steps"]),
        )


@dataclass(frozen=True)
class GateTarget:
    """What the device's gate will hold the release to."""

    task: str
    detect: DetectConfig | None
    threshold: float


def describe(measure: str, figure: float | None) -> str:
    if figure is None:
        return "not measurable (FP32 finds no box)"
    # Cosine similarity sits near 1 for any usable model: percent would hide the difference.
    return f"{figure:.4f}" if measure == "output cosine similarity" else f"{figure:.1%}"


def estimate(target: GateTarget, outputs: np.ndarray, reference: np.ndarray) -> tuple[str, float | None]:
    """The device gate's measure for the task and its figure, for outputs computed on the host."""
    import numpy as np

    from edgekit.agent.gate import _mean_cosine, _mean_match, _snr_db, detection_agreement
    from edgekit.device.answers import GateReport

    flat, expected = outputs.reshape(len(outputs), -1), reference.reshape(len(reference), -1)
    boxes: dict[str, Any] = {}
    if target.task in BOX_TASKS and target.detect is not None:
        boxes = detection_agreement(list(outputs), list(reference), target.detect)
    report = GateReport(
        samples=len(outputs),
        top1_agreement=_mean_match(flat.argmax(axis=1), expected.argmax(axis=1)),
        output_cosine=_mean_cosine(flat, expected),
        max_abs_diff=float(np.max(np.abs(flat - expected))),
        accuracy=None,
        reference_accuracy=None,
        infer_ms_mean=0.0,
        snr_db=_snr_db(flat, expected),
        **boxes,
    )
    return report.measured(target.task)


def rank_layers(prepared: onnx.ModelProto, qdq_path: Path, input_name: str, images: np.ndarray) -> list[str]:
    """The weighted layers the Q/DQ model at ``qdq_path`` quantizes, worst first, by their
    output's noise-to-signal power against FP32 (see the module's docstring). ``prepared`` is
    the FP32 graph quantize_qdq quantized (edgekit.quantize.prepare_model), whose node and
    tensor names the Q/DQ model keeps."""
    import numpy as np
    import onnx
    import onnxruntime

    from edgekit.agent.backends.onnxruntime import session_options

    model = onnx.ModelProto()
    model.CopyFrom(prepared)
    probes = _add_probes(model, onnx.load(str(qdq_path)))
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), sess_options=session_options(), providers=["CPUExecutionProvider"]
    )
    names = [name for pair in probes.values() for name in pair]
    signal, noise = np.zeros(len(probes)), np.zeros(len(probes))
    for image in images:
        values = dict(zip(names, session.run(names, {input_name: image[np.newaxis]}), strict=True))
        for index, (exact, rounded) in enumerate(probes.values()):
            reference = values[exact].astype(np.float64)
            signal[index] += float(np.sum(reference**2))
            noise[index] += float(np.sum((values[rounded] - reference) ** 2))
    scores = noise / np.maximum(signal, 1e-30)
    return [name for _, name in sorted(zip(-scores, probes, strict=True))]


def _add_probes(model: onnx.ModelProto, qdq: onnx.ModelProto) -> dict[str, tuple[str, str]]:
    """Beside each weighted layer of ``model`` that ``qdq`` quantizes, a copy of it on the Q/DQ
    model's quantized input and weights, both outputs exposed; returns them by layer name."""
    from onnx import helper

    from edgekit.quantize import WEIGHTED_OPS

    graph = model.graph
    present = {name for node in graph.node for name in node.output}
    present |= {value.name for value in graph.input} | {init.name for init in graph.initializer}
    producers = {name: node for node in qdq.graph.node for name in node.output}
    constants = {init.name: init for init in qdq.graph.initializer}
    copied: set[str] = set()

    def feed(name: str) -> None:
        """Bring what makes ``name`` in the Q/DQ model over, down to tensors FP32 computes itself."""
        if not name or name in present or name in copied:
            return
        copied.add(name)
        if name in constants:
            graph.initializer.append(constants[name])
            return
        node = producers[name]
        for each in node.input:
            feed(each)
        graph.node.append(node)
        copied.update(node.output)

    layers = {node.name: node for node in graph.node if node.op_type in WEIGHTED_OPS}
    probes: dict[str, tuple[str, str]] = {}
    for twin in qdq.graph.node:
        layer = layers.get(twin.name)
        # A layer left out of INT8 (nodes_to_exclude) reads no DequantizeLinear: nothing to score.
        rounded = [producers[name] for name in twin.input if name in producers]
        if layer is None or not any(node.op_type == "DequantizeLinear" for node in rounded):
            continue
        for name in twin.input:
            feed(name)
        probe = helper.make_node(
            twin.op_type, list(twin.input), [f"edgekit_int8/{layer.output[0]}"], name=f"edgekit_int8/{twin.name}"
        )
        probe.attribute.extend(twin.attribute)
        graph.node.append(probe)
        probes[layer.name] = (layer.output[0], probe.output[0])
    exposed = {value.name for value in graph.output}
    graph.output.extend(
        helper.make_empty_tensor_value_info(name) for pair in probes.values() for name in pair if name not in exposed
    )
    return probes


def _feeders(model: onnx.ModelProto, layers: Sequence[str]) -> list[str]:
    """``layers`` and the nodes that pass them their input from the layers before (a Relu, a
    MaxPool, a Reshape: one tensor in, one out): INT8 rounds a tensor where it is made, so a
    layer kept out of INT8 reads an unrounded input only if these are kept out too."""
    from edgekit.quantize import WEIGHTED_OPS

    producers = {name: node for node in model.graph.node for name in node.output}
    constants = {init.name for init in model.graph.initializer}
    constants |= {name for node in model.graph.node if node.op_type == "Constant" for name in node.output}
    pending = [node for node in model.graph.node if node.name in set(layers)]
    kept: list[str] = []
    while pending:
        node = pending.pop()
        if node.name in kept:
            continue
        kept.append(node.name)
        for name in node.input:
            feeder = producers.get(name)
            if feeder is None or feeder.op_type in WEIGHTED_OPS:
                continue
            if len([each for each in feeder.input if each and each not in constants]) == 1:
                pending.append(feeder)
    return kept


def _read_unrounded(path: Path, nodes: Sequence[str]) -> None:
    """Rewire ``nodes`` of the Q/DQ model at ``path`` to read the tensors their
    DequantizeLinear inputs were rounded from, as TensorRT feeds a layer kept at FP16 (the
    builder's keep_layers_half): quantize_static leaves an excluded node reading a rounded
    tensor when another consumer quantizes it. Q/DQ pairs left unread are dropped."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    producers = {name: node for node in graph.node for name in node.output}
    for node in graph.node:
        if node.name not in nodes:
            continue
        for index, name in enumerate(node.input):
            dequantize = producers.get(name)
            if dequantize is None or dequantize.op_type != "DequantizeLinear":
                continue
            quantize = producers.get(dequantize.input[0])
            if quantize is not None and quantize.op_type == "QuantizeLinear":
                node.input[index] = quantize.input[0]
    while True:
        read = {name for node in graph.node for name in node.input} | {value.name for value in graph.output}
        unread = [
            node
            for node in graph.node
            if node.op_type in ("QuantizeLinear", "DequantizeLinear") and not read & set(node.output)
        ]
        if not unread:
            break
        for node in unread:
            graph.node.remove(node)
    read = {name for node in graph.node for name in node.input}
    unused = [init for init in graph.initializer if init.name not in read]
    for init in unused:
        graph.initializer.remove(init)
    onnx.save(model, str(path))


def keep_precise(
    fp32_path: Path,
    input_name: str,
    calibration: np.ndarray,
    holdout: np.ndarray,
    reference: np.ndarray,
    target: GateTarget,
    head: Sequence[str],
    served: Path,
    log: Callable[[str], None],
    cap_share: float = CAP_SHARE,
) -> MixedPrecision:
    """Keep the worst layers of ``served`` (quantize_qdq's model of ``fp32_path``) out of INT8,
    1, 2, 4, ... of them, until the host's estimate of the gate passes or the cap is reached;
    ``served`` is rewritten with the last step's model."""
    from edgekit.quantize import prepare_model, quantize_qdq, reference_outputs

    def figure_of(model: Path) -> tuple[str, float | None]:
        return estimate(target, reference_outputs(model, input_name, holdout), reference)

    def passes(figure: float | None) -> bool:
        return figure is not None and figure >= target.threshold

    measure, figure = figure_of(served)
    log(f"mixed precision: INT8 throughout, {measure} {describe(measure, figure)} (gate {target.threshold:.0%})")
    steps = [Step(0, figure)]
    if figure is None:
        log("mixed precision: FP32 finds no box in the held-out images, so nothing shows which layers to keep")
        return MixedPrecision("auto", measure, target.threshold, 0, steps=tuple(steps))
    if passes(figure):
        log("mixed precision: INT8 passes the gate on the host; no layer kept at higher precision")
        return MixedPrecision("auto", measure, target.threshold, 0, steps=tuple(steps))
    log(f"mixed precision: ranking layers by their INT8 error on {min(len(calibration), RANK_IMAGES)} images")
    with tempfile.TemporaryDirectory() as scratch:
        # The graph quantize_qdq quantized, so node and tensor names match the Q/DQ model's.
        prepared = prepare_model(fp32_path, Path(scratch) / "prepared.onnx")
    ranked = rank_layers(prepared, served, input_name, calibration[:RANK_IMAGES])
    cap = max(1, int(len(ranked) * cap_share)) if ranked else 0
    kept: list[str] = []
    nodes: list[str] = []
    candidate = served.with_name("mixed-" + served.name)
    count = 1
    while len(kept) < cap and not passes(figure):
        kept = ranked[: min(count, cap)]
        nodes = _feeders(prepared, kept)
        quantize_qdq(fp32_path, input_name, calibration, candidate, head, exclude=nodes)
        _read_unrounded(candidate, nodes)
        measure, figure = figure_of(candidate)
        steps.append(Step(len(kept), figure))
        log(
            f"mixed precision: step {len(steps) - 1}, {len(kept)} layer{'s' if len(kept) != 1 else ''} kept at "
            f"higher precision, {measure} {describe(measure, figure)}"
        )
        count *= 2
    if kept:
        candidate.replace(served)
    result = MixedPrecision("auto", measure, target.threshold, cap, tuple(kept), tuple(sorted(nodes)), tuple(steps))
    note = result.cap_note()
    if note:
        log(note)
    return result
