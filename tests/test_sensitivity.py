"""``--mixed-precision auto``: the layer INT8 breaks is found, kept out of INT8, and the gate passes.

The models (outlier_models.conv_net) are small conv nets whose INT8 failure has a known
cause, one convolution that reads an outlier channel. They are gated as raw heads (output
cosine similarity), which random weights and images measure steadily; a top-1 class of
random logits flips on noise.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from outlier_models import conv_net

from edgekit.bundle import BundleRequest, build_bundle
from edgekit.device.answers import GateReport
from edgekit.exporters import ModelOverrides
from edgekit.gate import refusal
from edgekit.profiles import load_profile
from edgekit.provision import release_manifest
from edgekit.quantize import prepare_model, quantize_qdq, reference_outputs
from edgekit.sensitivity import GateTarget, MixedPrecision, Step, estimate, keep_precise, rank_layers
from edgekit.settings import merge_settings

RAW = GateTarget("raw", None, 0.99)


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.random((64, 3, 16, 16), dtype=np.float32), rng.random((64, 3, 16, 16), dtype=np.float32)


def int8(model: Path, calibration: np.ndarray, tmp_path: Path) -> Path:
    served = tmp_path / "model.int8.onnx"
    quantize_qdq(model, "image", calibration, served)
    return served


def host_gate(model: Path, served: Path, holdout: np.ndarray) -> float | None:
    return estimate(RAW, reference_outputs(served, "image", holdout), reference_outputs(model, "image", holdout))[1]


def keep(
    model: Path, served: Path, images: tuple[np.ndarray, np.ndarray], **options: float
) -> tuple[MixedPrecision, list[str]]:
    calibration, holdout = images
    lines: list[str] = []
    reference = reference_outputs(model, "image", holdout)
    chosen = keep_precise(model, "image", calibration, holdout, reference, RAW, [], served, lines.append, **options)
    return chosen, lines


def test_the_culprit_is_ranked_first_kept_and_the_gate_then_passes(images, tmp_path: Path) -> None:
    model = conv_net(tmp_path / "model.onnx", outliers=(2,))
    served = int8(model, images[0], tmp_path)
    # INT8 throughout demonstrably fails the classifier's gate on the host.
    before = host_gate(model, served, images[1])
    assert before is not None and before < 0.99
    prepared = prepare_model(model, tmp_path / "prepared.onnx")
    ranked = rank_layers(prepared, served, "image", images[0][:16])
    assert ranked[0] == "node_of_c3" and len(ranked) == 5
    chosen, lines = keep(model, served, images)
    assert chosen.layers == ("node_of_c3",) and chosen.passed and chosen.cap == 1
    # The Relu that hands c3 its input stays out of INT8 with it, so c3 reads an unrounded tensor.
    assert chosen.nodes == ("node_of_c3", "node_of_r2")
    assert [step.layers for step in chosen.steps] == [0, 1]
    assert chosen.steps[0].figure == before and chosen.steps[1].figure == host_gate(model, served, images[1]) >= 0.99
    qdq = onnx.load(str(served))
    producers = {name: node.op_type for node in qdq.graph.node for name in node.output}
    c3 = next(node for node in qdq.graph.node if node.name == "node_of_c3")
    # Its input straight from the Relu, its weights the FP32 initializer (the bias is shared with the others).
    assert [producers.get(name, "initializer") for name in c3.input[:2]] == ["Relu", "initializer"]
    assert any(node.op_type == "QuantizeLinear" for node in qdq.graph.node)
    assert re.fullmatch(
        r"mixed precision: step 1, 1 layer kept at higher precision, output cosine similarity 0\.99\d\d", lines[-1]
    ), lines


def test_two_culprits_are_kept_step_by_step(images, tmp_path: Path) -> None:
    model = conv_net(tmp_path / "model.onnx", outliers=(1, 3))
    chosen, lines = keep(model, int8(model, images[0], tmp_path), images, cap_share=0.4)
    assert set(chosen.layers) == {"node_of_c2", "node_of_c4"} and chosen.passed
    assert [step.layers for step in chosen.steps] == [0, 1, 2]
    figures = [step.figure for step in chosen.steps]
    assert figures[0] is not None and figures[0] < 0.99 <= figures[-1]
    assert [line.split(",")[0] for line in lines[-2:]] == ["mixed precision: step 1", "mixed precision: step 2"]


def test_the_cap_stops_it_and_says_so(images, tmp_path: Path) -> None:
    model = conv_net(tmp_path / "model.onnx", outliers=(1, 3))
    served = int8(model, images[0], tmp_path)
    chosen, lines = keep(model, served, images, cap_share=0.2)
    assert chosen.cap == 1 and len(chosen.layers) == 1 and not chosen.passed
    assert [step.layers for step in chosen.steps] == [0, 1]
    note = chosen.cap_note()
    assert note is not None and note == lines[-1]
    assert note.startswith("Mixed precision reached its cap of 1 layers kept at higher precision")
    assert note.endswith("so the device's gate is likely to refuse the release.") and note.count(". ") == 0
    # The served model is the last step's: the one layer is out of INT8 in it.
    assert host_gate(model, served, images[1]) == chosen.steps[-1].figure


def test_a_model_that_already_passes_keeps_no_layer(images, tmp_path: Path) -> None:
    model = conv_net(tmp_path / "model.onnx", outliers=())
    served = int8(model, images[0], tmp_path)
    untouched = served.read_bytes()
    chosen, lines = keep(model, served, images)
    assert (chosen.layers, chosen.nodes, chosen.cap, chosen.passed) == ((), (), 0, True)
    assert chosen.steps == (Step(0, chosen.steps[0].figure),) and chosen.cap_note() is None
    assert served.read_bytes() == untouched
    assert lines[-1] == "mixed precision: INT8 passes the gate on the host; no layer kept at higher precision"


def test_the_bundle_and_release_record_what_was_kept(images, tmp_path: Path, monkeypatch) -> None:
    model = conv_net(tmp_path / "model.onnx", outliers=(2,))
    for name, batch in (("calib", images[0]), ("holdout", images[1])):
        (tmp_path / name).mkdir()
        for index, image in enumerate(batch):
            pixels = (image.transpose(1, 2, 0) * 255).astype(np.uint8)
            cv2.imwrite(str(tmp_path / name / f"{index:03d}.png"), pixels)
    monkeypatch.setattr("edgekit.bundle.CACHE_DIR", tmp_path / "cache")
    lines: list[str] = []
    raw = ModelOverrides(task="raw")
    request = BundleRequest(model, tmp_path / "calib", tmp_path / "holdout", "int8", raw, mixed_precision="auto")
    bundle = build_bundle(request, log=lines.append)
    assert bundle.mixed_precision is not None and bundle.mixed_precision.layers == ("node_of_c3",)
    assert any(line.startswith("mixed precision: step 1, 1 layer kept") for line in lines)
    figures = [step.figure for step in bundle.mixed_precision.steps]
    assert figures[0] is not None and figures[0] < 0.99 <= figures[1], figures
    recorded = json.loads(bundle.files["mixed-precision.json"].read_text())
    assert recorded == bundle.mixed_precision.to_dict()
    # Built once: the cached bundle reads back the same choice without a second pass.
    again = build_bundle(request, log=lines.append)
    assert again.mixed_precision == bundle.mixed_precision
    # TensorRT's calibrator serves the FP32 model and reads the nodes to build at FP16.
    manifest = release_manifest(bundle, merge_settings(load_profile("orin-nano-8gb-jp62")), "r1")
    assert manifest["model"] == "model.onnx" and manifest["mixed_precision"]["layers"] == ["node_of_c3"]
    assert manifest["mixed_precision"]["nodes"] == ["node_of_c3", "node_of_r2"]
    assert [step["layers"] for step in manifest["mixed_precision"]["steps"]] == [0, 1]
    off = build_bundle(BundleRequest(model, tmp_path / "calib", tmp_path / "holdout", "int8", raw))
    assert off.mixed_precision is None and "mixed-precision.json" not in off.files
    assert off.files["model.int8.onnx"].read_bytes() != bundle.files["model.int8.onnx"].read_bytes()


@pytest.mark.parametrize(
    ("task", "figures"),
    [
        ("classify", {"top1_agreement": 0.5}),
        ("detect", {"box_f1": 0.2, "box_precision": 0.5, "box_recall": 0.1, "boxes": 2, "reference_boxes": 10}),
        ("raw", {"output_cosine": 0.9}),
    ],
)
def test_a_refused_int8_release_suggests_mixed_precision(task: str, figures: dict[str, float]) -> None:
    gate = GateReport(
        **{
            "samples": 40,
            "top1_agreement": 1.0,
            "output_cosine": 1.0,
            "max_abs_diff": 1.0,
            "accuracy": None,
            "reference_accuracy": None,
            "infer_ms_mean": 1.0,
            **figures,
        }
    ).held_to(task, 0.99)
    message = refusal(gate, task, "int8")
    assert message is not None and "--mixed-precision auto" in message
    # FP16 has no INT8 layer to keep at a higher precision.
    assert "--mixed-precision" not in (refusal(gate, task, "fp16") or "")


def test_the_report_and_json_list_the_layers_and_each_steps_figure(capsys: pytest.CaptureFixture[str]) -> None:
    from edgekit.cli.provision import _summary
    from edgekit.device.answers import ResultRecord, StageLatency
    from edgekit.provision import ProvisionResult

    chosen = MixedPrecision(
        "auto",
        "top-1 agreement",
        0.99,
        3,
        ("/m/c3", "/m/c1"),
        ("/m/c3", "/m/c1"),
        (Step(0, 0.8), Step(1, 0.95), Step(2, 0.97)),
    )
    gate = GateReport(40, 0.97, 0.999, 1.0, None, None, 2.0).held_to("classify", 0.99)
    first = ResultRecord(1.0, 1, "r1", 7, StageLatency(1, 1, 1, 1, 4), None, top=[])
    result = ProvisionResult(
        "jetson",
        "Orin",
        "orin",
        "36.4",
        "3.10",
        "tensorrt",
        "int8",
        "classify",
        "r1",
        True,
        gate,
        None,
        first,
        mixed_precision=chosen,
    )
    assert result.to_dict()["mixed_precision"] == {
        "mode": "auto",
        "measure": "top-1 agreement",
        "threshold": 0.99,
        "cap": 3,
        "layers": ["/m/c3", "/m/c1"],
        "nodes": ["/m/c3", "/m/c1"],
        "steps": [{"layers": 0, "figure": 0.8}, {"layers": 1, "figure": 0.95}, {"layers": 2, "figure": 0.97}],
        "passed": False,
    }
    _summary(result)
    shown = " ".join(capsys.readouterr().err.split())
    assert (
        "mixed 2 layers kept at higher precision (/m/c3, /m/c1); host top-1 agreement 80.0% with 0, 95.0% with 1, "
        "97.0% with 2" in shown
    )
    assert "Mixed precision reached its cap of 3 layers" in shown


def test_a_detector_is_estimated_on_matched_boxes_as_the_device_gates_it() -> None:
    from edgekit.agent.config import DetectConfig

    # YOLOv8 layout [N, 4 + classes, anchors]: one box of class 0 per sample, the rest empty.
    reference = np.zeros((4, 6, 3), np.float32)
    reference[:, :4, 0] = [40.0, 40.0, 20.0, 20.0]
    reference[:, 4, 0] = 0.9
    # Scores rounded to zero, as one INT8 scale shared with the coordinates does, and the output still close.
    lost = reference.copy()
    lost[:, 4, 0] = 0.0
    target = GateTarget("detect", DetectConfig(head="yolov8"), 0.9)
    assert estimate(target, reference, reference) == ("matched-box F1", 1.0)
    assert estimate(target, lost, reference) == ("matched-box F1", 0.0)
