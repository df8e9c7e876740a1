"""Small conv nets whose INT8 failure has a known cause, for the mixed-precision tests.

A channel of a convolution's output is a thousand times larger than the others (its
weights scaled up), and the next convolution reads it with weights scaled down by as much.
FP32 computes the same function as without it; INT8 gives that tensor one scale, set by
the large channel, and rounds the other channels to zero, so the next convolution is the
culprit: it reads nothing but the outlier.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def conv_net(path: Path, outliers: tuple[int, ...]) -> Path:
    """Image [batch, 3, 16, 16] through four convolutions and a Gemm to ten logits; an outlier
    channel on the output of each convolution listed in ``outliers`` (1-3), read back down by
    the convolution after it, whose node (c2-c4) is then what INT8 breaks."""
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.5]
    weights += [rng.standard_normal((8, 8, 3, 3)).astype(np.float32) * 0.2 for _ in range(3)]
    for index in outliers:
        weights[index - 1][0] *= 1000.0
        weights[index][:, 0] /= 1000.0
    initializers = [numpy_helper.from_array(w, f"w{index}") for index, w in enumerate(weights, 1)]
    initializers += [numpy_helper.from_array(np.full(8, 0.1, np.float32), "bias")]
    initializers += [numpy_helper.from_array(rng.standard_normal((10, 8)).astype(np.float32), "fc")]
    nodes, tensor = [], "image"
    for index in range(1, 5):
        nodes += [
            helper.make_node("Conv", [tensor, f"w{index}", "bias"], [f"c{index}"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"c{index}"], [f"r{index}"]),
        ]
        tensor = f"r{index}"
    nodes += [
        helper.make_node("GlobalAveragePool", [tensor], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "outliers",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
