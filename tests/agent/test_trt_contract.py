"""Contract tests: the TensorRT builder and runner against a strict stand-in of each release.

TensorRT cannot be installed here. Each stand-in (trt_standin.py) exposes exactly the
Python API surface of one release, read from NVIDIA's binding sources, raises
AttributeError on anything else and records the calls made; the engine it "builds" runs
the ONNX model with onnxruntime, so the runner's data path is checked end to end. What
this proves: the right calls per release, the calibrator protocol, the cache and buffer
handling. What it cannot prove: TensorRT's own numerics, tactics or memory behaviour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from fake_cuda import FakeCuda
from trt_standin import VERSIONS, calls, make_tensorrt, read_engine

from edgekit.agent.backends.tensorrt.builder import BuildOptions, build_engine
from edgekit.agent.backends.tensorrt.runner import TensorRTBackend, deserialize
from edgekit.agent.errors import AgentError

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "digits"
CALIBRATORS = ("8.5", "8.6", "10.3", "10.13")


@pytest.fixture(scope="module")
def bundle(digits_split_bundle):
    return digits_split_bundle


def options(bundle, tmp_path, precision="int8", int8="calibrator", **changes):
    model = bundle.files["model.int8.onnx" if int8 == "qdq" and precision == "int8" else "model.onnx"]
    values = dict(
        onnx_path=str(model),
        precision=precision,
        int8=int8,
        workspace_mib=1024,
        dla_core=None,
        batch=(1, 4, 8),
        timing_cache_path=str(tmp_path / "timing.cache"),
        calibration_path=str(bundle.files["calib.npy"]),
        calibration_cache_path=str(tmp_path / "calib.cache"),
    )
    values.update(changes)
    return BuildOptions(**values)


def build(version, opts):
    cuda = FakeCuda()
    trt = make_tensorrt(version, cuda)
    return trt, cuda, build_engine(trt, cuda, opts, lambda line: None)


def reference(model_path, batch):
    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


@pytest.mark.parametrize("version", CALIBRATORS)
def test_int8_with_the_calibrator(version, bundle, tmp_path):
    trt, cuda, plan = build(version, options(bundle, tmp_path))
    engine = read_engine(plan)
    assert "INT8" in engine["flags"] and "FP16" not in engine["flags"]
    # Every full batch of 8 from the 240 calibration images (every 5th of 300 is held out).
    assert engine["calibration"]["source"] == "batches"
    assert engine["calibration"]["batches"] == 240 // 8
    assert calls(trt, "IBuilderConfig.int8_calibrator=")
    assert calls(trt, "IBuilderConfig.set_calibration_profile")
    assert (tmp_path / "calib.cache").is_file()
    # The calibrator's device buffer was freed once the build was over.
    assert not cuda.memory


@pytest.mark.parametrize("version", CALIBRATORS)
def test_a_second_build_reads_the_calibration_and_timing_caches(version, bundle, tmp_path):
    build(version, options(bundle, tmp_path))
    _, _, plan = build(version, options(bundle, tmp_path))
    engine = read_engine(plan)
    assert engine["calibration"]["source"] == "cache" and engine["calibration"]["batches"] == 0
    assert engine["timing_cache_reused"] is True


@pytest.mark.parametrize("version", VERSIONS)
def test_workspace_uses_the_api_of_the_release(version, bundle, tmp_path):
    trt, _, _ = build(version, options(bundle, tmp_path, precision="fp32"))
    # set_memory_pool_limit exists from 8.4 on; max_workspace_size is gone in 10.
    assert calls(trt, "IBuilderConfig.set_memory_pool_limit") == [
        "IBuilderConfig.set_memory_pool_limit(WORKSPACE, 1073741824)"
    ]
    assert not calls(trt, "IBuilderConfig.max_workspace_size=")


@pytest.mark.parametrize("version", VERSIONS)
def test_explicit_batch_flag_only_where_the_release_has_it(version, bundle, tmp_path):
    trt, _, _ = build(version, options(bundle, tmp_path, precision="fp32"))
    created = calls(trt, "Builder.create_network")
    assert created == (["Builder.create_network(0)"] if version == "11.1" else ["Builder.create_network(1)"])


def test_tensorrt_11_refuses_the_calibrator_path(bundle, tmp_path):
    with pytest.raises(AgentError, match="TensorRT 11.1.* has no INT8 calibrator.*qdq"):
        build("11.1", options(bundle, tmp_path))


@pytest.mark.parametrize("version", VERSIONS)
def test_int8_from_the_qdq_model(version, bundle, tmp_path):
    trt, _, plan = build(version, options(bundle, tmp_path, int8="qdq"))
    engine = read_engine(plan)
    assert engine["calibration"] is None or engine["calibration"]["source"] != "batches"
    # Before 11 the INT8 flag allows INT8 kernels; 11 has no such flag at all.
    assert ("INT8" in engine["flags"]) == (version != "11.1")
    assert not calls(trt, "IBuilderConfig.int8_calibrator=")


@pytest.mark.parametrize("version", VERSIONS)
def test_qdq_path_refuses_a_model_without_qdq_nodes(version, bundle, tmp_path):
    opts = options(bundle, tmp_path, int8="qdq")._replace(onnx_path=str(bundle.files["model.onnx"]))
    with pytest.raises(AgentError, match="no Q/DQ nodes"):
        build(version, opts)


@pytest.mark.parametrize("version", VERSIONS)
def test_fp16_only_when_asked_and_never_on_11(version, bundle, tmp_path):
    if version == "11.1":
        with pytest.raises(AgentError, match="no FP16 builder flag"):
            build(version, options(bundle, tmp_path, precision="fp16"))
        return
    _, _, plan = build(version, options(bundle, tmp_path, precision="fp16"))
    assert read_engine(plan)["flags"] == ["FP16"]
    _, _, fp32 = build(version, options(bundle, tmp_path / "fp32", precision="fp32"))
    assert read_engine(fp32)["flags"] == []


@pytest.mark.parametrize("version", VERSIONS)
def test_dla_with_gpu_fallback(version, bundle, tmp_path):
    _, _, plan = build(version, options(bundle, tmp_path, precision="fp32", dla_core=1))
    engine = read_engine(plan)
    assert (engine["device"], engine["dla_core"]) == ("DLA", 1)
    assert "GPU_FALLBACK" in engine["flags"]
    with pytest.raises(AgentError, match="DLA core 5"):
        build(version, options(bundle, tmp_path, precision="fp32", dla_core=5))


@pytest.mark.parametrize("version", VERSIONS)
def test_every_parser_error_is_listed(version, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07this is not an onnx model")
    opts = BuildOptions(str(broken), "fp32", "calibrator", 256, None, (1, 1, 1), str(tmp_path / "t"))
    with pytest.raises(AgentError) as info:
        build(version, opts)
    message = str(info.value)
    assert "cannot parse" in message and "errors)" in message and message.count(";") >= 1


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("batch", [1, 3, 8])
def test_runner_matches_onnxruntime(version, batch, bundle, tmp_path):
    trt, cuda, plan = build(version, options(bundle, tmp_path, precision="fp32"))
    backend = TensorRTBackend(trt, cuda, deserialize(trt, plan))
    images = np.random.default_rng(batch).random((batch, 1, 8, 8), dtype=np.float32)
    (logits,) = backend.infer({backend.input_names[0]: images})
    np.testing.assert_allclose(logits, reference(bundle.files["model.onnx"], images), rtol=1e-6)
    # Named-tensor API only, one stream, page-locked host buffers.
    assert calls(trt, "IExecutionContext.execute_async_v3")
    assert not [c for c in trt._calls if "execute_async_v2" in c or "binding" in c]
    assert len(cuda.streams) == 1
    backend.close()
    assert not cuda.memory


@pytest.mark.parametrize("version", VERSIONS)
def test_runner_reuses_buffers_and_refuses_a_batch_beyond_the_profile(version, bundle, tmp_path):
    trt, cuda, plan = build(version, options(bundle, tmp_path, precision="fp32"))
    backend = TensorRTBackend(trt, cuda, deserialize(trt, plan))
    name = backend.input_names[0]
    for _ in range(3):
        backend.infer({name: np.zeros((2, 1, 8, 8), np.float32)})
    assert len(cuda.calls_named("mem_alloc")) == 2  # one input, one output buffer, kept
    with pytest.raises(AgentError, match="outside the engine's profile"):
        backend.infer({name: np.zeros((9, 1, 8, 8), np.float32)})
    backend.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_engines_are_not_portable_across_releases(version, bundle, tmp_path):
    _, _, plan = build(version, options(bundle, tmp_path, precision="fp32"))
    other = "10.3" if version != "10.3" else "8.6"
    assert deserialize(make_tensorrt(other, FakeCuda()), plan) is None


def corpus_bundle(tmp_path_factory, name):
    """A corpus Ultralytics export, pinned and calibrated on synthetic scenes by the host."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from synthetic_scenes import write_scenes

    from edgekit.bundle import BundleRequest, build_bundle

    root = tmp_path_factory.mktemp(name)
    write_scenes(str(root / "calib"), 48, seed=31)
    write_scenes(str(root / "holdout"), 8, seed=32)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("edgekit.bundle.CACHE_DIR", root / "cache")
        model = Path(__file__).resolve().parents[1] / "data" / "models" / name
        return build_bundle(BundleRequest(model, root / "calib", root / "holdout", "int8"))


@pytest.fixture(scope="module")
def yolo_bundle(tmp_path_factory):
    return corpus_bundle(tmp_path_factory, "ultralytics-yolov8-tiny-detect.onnx")


@pytest.mark.parametrize(
    ("name", "task", "shapes"),
    [
        ("ultralytics-yolov8-tiny-pose.onnx", "pose", [(1, 18, 525)]),
        ("ultralytics-yolov8-tiny-seg.onnx", "segment", [(1, 38, 525), (1, 32, 40, 40)]),
    ],
)
def test_pose_and_segment_heads_keep_their_decode_at_fp32_and_serve_every_output_in_order(
    name, task, shapes, tmp_path_factory, tmp_path
):
    bundle = corpus_bundle(tmp_path_factory, name)
    trt, cuda, plan = build("10.3", options(bundle, tmp_path, task=task))
    engine = read_engine(plan)
    kept = engine["precision_constraints"]
    # The keypoints' and mask coefficients' decode joins the final Concat with the boxes and scores.
    concat = next(
        node.name for node in onnx.load(str(bundle.files["model.onnx"])).graph.node if "output0" in node.output
    )
    assert "OBEY_PRECISION_CONSTRAINTS" in engine["flags"] and kept[concat] == "FLOAT"
    # The service reads the prototypes as the second output: the engine serves them in the ONNX order.
    backend = TensorRTBackend(trt, cuda, deserialize(trt, plan))
    outputs = backend.infer({backend.input_names[0]: np.zeros((1, 3, 160, 160), np.float32)})
    assert [output.shape for output in outputs] == shapes
    backend.close()


@pytest.mark.parametrize("version", CALIBRATORS)
def test_a_calibrated_detector_keeps_its_head_decode_at_fp32(version, yolo_bundle, tmp_path):
    trt, _, plan = build(version, options(yolo_bundle, tmp_path, task="detect"))
    engine = read_engine(plan)
    kept = engine["precision_constraints"]
    # The same decode the host keeps out of its Q/DQ model, held at FP32 with the flag that binds it.
    assert "OBEY_PRECISION_CONSTRAINTS" in engine["flags"] and "INT8" in engine["flags"]
    # The host's FP32 nodes, less the integer shape arithmetic no FP32 constraint can bind.
    assert set(kept) <= set(yolo_bundle.fp32_nodes) | {n for n in kept if "/dfl/" in n}
    assert set(kept.values()) == {"FLOAT"} and {"/model.22/Concat_26", "/model.22/Sigmoid"} <= set(kept)
    assert all(name.startswith("/model.22/") for name in kept)


def test_a_calibrated_classifier_has_no_precision_constraints(bundle, tmp_path):
    _, _, plan = build("10.3", options(bundle, tmp_path))
    engine = read_engine(plan)
    assert engine["precision_constraints"] == {} and "OBEY_PRECISION_CONSTRAINTS" not in engine["flags"]


@pytest.mark.parametrize("version", CALIBRATORS)
def test_layers_kept_by_mixed_precision_are_built_at_fp16(version, bundle, tmp_path):
    # The digits model's nodes are unnamed: the host names them as TensorRT's parser names their layers.
    kept = ("node_of_conv2", "node_of_relu1", "node_of_gone")
    lines = []
    cuda = FakeCuda()
    trt = make_tensorrt(version, cuda)
    engine = read_engine(build_engine(trt, cuda, options(bundle, tmp_path, half_layers=kept), lines.append))
    # The kept layers at FP16 and bound by OBEY; conv1 and the Gemm left to INT8.
    assert engine["precision_constraints"] == {"node_of_conv2": "HALF", "node_of_relu1": "HALF"}
    assert {"INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS"} <= set(engine["flags"])
    # Both kept layers' outputs and conv1's, which relu1 reads: it is made in FP16, not rounded to INT8.
    assert calls(trt, "ILayer.set_output_type") == ["ILayer.set_output_type(0, HALF)"] * 3
    assert any("keeping 2 layers at FP16" in line and "left to INT8: node_of_gone" in line for line in lines)


def test_without_mixed_precision_no_layer_is_fp16(bundle, tmp_path):
    trt, _, plan = build("10.3", options(bundle, tmp_path))
    assert "FP16" not in read_engine(plan)["flags"] and not calls(trt, "ILayer.set_output_type")
