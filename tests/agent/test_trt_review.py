"""What a read of the TensorRT path against the real TensorRT sources found
(shared/reference/tensorrt-review.md), each pinned by a stand-in that behaves like the
real thing there: calibration batches read at the OPT shape, plugins registered only on
request from 10.0, the runtime's DLA core, a logger that writes to stdout, and outputs
whose shape depends on the data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from fake_cuda import FakeCuda
from onnx import TensorProto, helper, numpy_helper
from trt_standin import calls, make_tensorrt, read_engine

from edgekit.agent.backends.tensorrt.builder import BuildOptions, build_engine, calibration_batch, calibration_data
from edgekit.agent.backends.tensorrt.runner import TensorRTBackend, deserialize
from edgekit.agent.errors import AgentError

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "digits"
CALIBRATORS = ("8.5", "8.6", "10.3", "10.13")


@pytest.fixture(scope="module")
def bundle(digits_split_bundle):
    return digits_split_bundle


def opts(model: Path, tmp_path: Path, precision: str = "fp32", **changes) -> BuildOptions:
    values = dict(
        onnx_path=str(model),
        precision=precision,
        int8="calibrator",
        workspace_mib=256,
        dla_core=None,
        batch=(1, 1, 8),
        timing_cache_path=str(tmp_path / "timing.cache"),
        calibration_path=None,
        calibration_cache_path=str(tmp_path / "calib.cache"),
    )
    values.update(changes)
    return BuildOptions(**values)


def save(tmp_path: Path, name: str, graph: onnx.GraphProto, opset: int = 13) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def fixed_batch_classifier(tmp_path: Path, batch: int) -> Path:
    """The digits' shape with a batch fixed at export, as many exporters leave it."""
    weights = np.random.default_rng(1).normal(size=(64, 10)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["image"], ["flat"], axis=1), helper.make_node("MatMul", ["flat", "w"], ["y"])],
        "fixed",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])],
        initializer=[numpy_helper.from_array(weights, "w")],
    )
    return save(tmp_path, "fixed.onnx", graph)


# -- calibration ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", CALIBRATORS)
def test_every_calibration_image_is_read(version, bundle, tmp_path):
    # The digits model has a dynamic batch; the camera's profile is min 1 / opt 1 / max 8.
    calib = bundle.files["calib.npy"]
    images = len(np.load(calib, mmap_mode="r"))
    trt = make_tensorrt(version, FakeCuda())
    options = opts(bundle.files["model.onnx"], tmp_path, "int8", calibration_path=str(calib))
    engine = read_engine(build_engine(trt, trt._cuda, options, lambda line: None))
    calibration = engine["calibration"]
    # TensorRT reads the calibration profile's OPT shape: it must be the calibrator's batch.
    assert calibration["batch_shape"] == {"image": [8, 1, 8, 8]}
    assert calibration["images"] == images == 240
    [profile] = calls(trt, "IBuilderConfig.set_calibration_profile")
    assert profile


def test_a_fixed_batch_calibrates_in_that_batch(tmp_path):
    model = fixed_batch_classifier(tmp_path, 4)
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(2).random((42, 1, 8, 8), dtype=np.float32))
    trt = make_tensorrt("10.3", FakeCuda())
    lines: list[str] = []
    engine = read_engine(
        build_engine(trt, trt._cuda, opts(model, tmp_path, "int8", calibration_path=str(calib)), lines.append)
    )
    assert engine["calibration"]["batch_shape"] == {"image": [4, 1, 8, 8]}
    assert engine["calibration"]["images"] == 40
    assert any("2 left out" in line for line in lines)


def test_the_calibration_batch_divides_a_dynamic_set():
    assert calibration_batch(-1, 240, 8) == 8
    assert calibration_batch(-1, 300, 8) == 6
    assert calibration_batch(-1, 101, 8) == 1
    assert calibration_batch(-1, 3, 8) == 3
    assert calibration_batch(4, 42, 8) == 4


@pytest.mark.parametrize(
    ("array", "problem"),
    [
        (np.zeros((16, 1, 8, 8), np.float16), "float16 images of shape \\[1, 8, 8\\]"),
        (np.zeros((16, 3, 8, 8), np.float32), "float32 images of shape \\[3, 8, 8\\]"),
        (np.zeros((16, 64), np.float32), "float32 images of shape \\[64\\]"),
        (np.zeros((0, 1, 8, 8), np.float32), "holds no images"),
    ],
)
def test_a_calibration_set_of_the_wrong_shape_or_dtype_is_refused_before_the_build(array, problem, bundle, tmp_path):
    calib = tmp_path / "calib.npy"
    np.save(calib, array)
    trt = make_tensorrt("10.3", FakeCuda())
    with pytest.raises(AgentError, match=problem) as info:
        build_engine(
            trt, trt._cuda, opts(bundle.files["model.onnx"], tmp_path, "int8", calibration_path=str(calib)), print
        )
    assert info.value.kind == "calibration" and "re-run edgekit provision" in info.value.message
    assert not calls(trt, "Builder.build_serialized_network")


def test_calibration_data_is_a_memory_map(bundle):
    trt = make_tensorrt("10.3", FakeCuda())
    network = trt.Builder(trt.Logger()).create_network(0)
    parser = trt.OnnxParser(network, trt.Logger())
    assert parser.parse(Path(bundle.files["model.onnx"]).read_bytes())
    data = calibration_data(trt, str(bundle.files["calib.npy"]), network.get_input(0))
    assert isinstance(data, np.memmap) and data.shape == (240, 1, 8, 8)


# -- plugins ---------------------------------------------------------------------------------


def nms_model(tmp_path: Path) -> Path:
    """Boxes and scores into TensorRT's EfficientNMS plugin, as detector exports with NMS do."""
    node = helper.make_node(
        "EfficientNMS_TRT",
        ["boxes", "scores"],
        ["num_detections", "detection_boxes", "detection_scores", "detection_classes"],
        max_output_boxes=10,
        score_threshold=0.25,
        iou_threshold=0.45,
        background_class=-1,
        score_activation=0,
        box_coding=0,
        plugin_version="1",
    )
    graph = helper.make_graph(
        [node],
        "nms",
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 100, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 100, 3]),
        ],
        [
            helper.make_tensor_value_info("num_detections", TensorProto.INT32, [1, 1]),
            helper.make_tensor_value_info("detection_boxes", TensorProto.FLOAT, [1, 10, 4]),
            helper.make_tensor_value_info("detection_scores", TensorProto.FLOAT, [1, 10]),
            helper.make_tensor_value_info("detection_classes", TensorProto.INT32, [1, 10]),
        ],
    )
    return save(tmp_path, "nms.onnx", graph)


@pytest.mark.parametrize("version", ["10.3", "10.13", "11.1"])
def test_plugins_are_registered_before_parsing_on_10_and_later(version, tmp_path):
    trt = make_tensorrt(version, FakeCuda())
    engine = read_engine(build_engine(trt, trt._cuda, opts(nms_model(tmp_path), tmp_path), lambda line: None))
    assert engine["plugins"] == ["EfficientNMS_TRT"]
    # Once per process, before the parser ran, with the logger the build uses.
    [registered] = calls(trt, "init_libnvinfer_plugins")
    assert registered.endswith(", '')")
    assert trt._calls.index(registered) < next(i for i, c in enumerate(trt._calls) if c.startswith("OnnxParser.parse"))
    build_engine(trt, trt._cuda, opts(nms_model(tmp_path), tmp_path), lambda line: None)
    assert len(calls(trt, "init_libnvinfer_plugins")) == 1


def test_an_engine_with_a_plugin_loads_in_a_fresh_process(tmp_path):
    # TensorRT 8's parser registers the plugins itself, so the build passes without them;
    # the service's process has not parsed anything and must register them to deserialize.
    builder_process = make_tensorrt("8.5", FakeCuda())
    plan = build_engine(builder_process, builder_process._cuda, opts(nms_model(tmp_path), tmp_path), print)
    service_process = make_tensorrt("8.5", FakeCuda())
    assert deserialize(service_process, plan) is not None
    assert calls(service_process, "init_libnvinfer_plugins")


def test_a_model_needing_a_plugin_tensorrt_lacks_is_one_sentence(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("DCNv2_TRT", ["x"], ["y"])],
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    trt = make_tensorrt("10.3", FakeCuda())
    with pytest.raises(AgentError) as info:
        build_engine(trt, trt._cuda, opts(save(tmp_path, "dcn.onnx", graph), tmp_path), lambda line: None)
    message = info.value.message
    assert "DCNv2_TRT" in message and "Plugin not found" in message
    assert message.endswith("custom layer JetPack's TensorRT lacks).")


# -- DLA core at load ------------------------------------------------------------------------


def test_a_dla_engine_is_loaded_on_the_core_it_was_built_for(bundle, tmp_path):
    trt = make_tensorrt("8.5", FakeCuda())
    plan = build_engine(trt, trt._cuda, opts(bundle.files["model.onnx"], tmp_path, dla_core=1), lambda line: None)
    assert read_engine(plan)["dla_core"] == 1
    loaded = deserialize(trt, plan, dla_core=1)
    assert loaded is not None and loaded.engine._dla_core == 1
    assert calls(trt, "Runtime.DLA_core=") == ["Runtime.DLA_core=1"]
    # Set before the engine is deserialized, which is when TensorRT picks the core.
    assert trt._calls.index("Runtime.DLA_core=1") < trt._calls.index(calls(trt, "Runtime.deserialize_cuda_engine")[0])


# -- logging ---------------------------------------------------------------------------------


def test_the_standin_logger_writes_to_stdout_like_the_real_one(capsys):
    trt = make_tensorrt("10.3", FakeCuda())
    trt.Logger().log(trt.ILogger.Severity.ERROR, "from the bindings")
    assert "from the bindings" in capsys.readouterr().out


@pytest.mark.parametrize("version", ["8.5", "10.3", "11.1"])
def test_tensorrt_messages_go_to_stderr_never_stdout(version, tmp_path, capsys):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07 not a model")
    trt = make_tensorrt(version, FakeCuda())
    with pytest.raises(AgentError):
        build_engine(trt, trt._cuda, opts(broken, tmp_path), lambda line: None)
    assert deserialize(trt, b"torn") is None
    out, err = capsys.readouterr()
    assert out == ""
    assert "TensorRT error: " in err and "Magic tag does not match" in err


# -- outputs whose shape depends on the data ---------------------------------------------------


def test_an_output_with_a_data_dependent_shape_is_refused_by_name(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("NonZero", ["x"], ["where"])],
        "nonzero",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("where", TensorProto.INT64, [2, "count"])],
    )
    trt = make_tensorrt("10.3", FakeCuda())
    plan = build_engine(trt, trt._cuda, opts(save(tmp_path, "nonzero.onnx", graph), tmp_path), lambda line: None)
    backend = TensorRTBackend(trt, trt._cuda, deserialize(trt, plan))
    with pytest.raises(AgentError, match="output 'where' has a data-dependent shape \\[2, -1\\]"):
        backend.infer({"x": np.ones((1, 6), np.float32)})
    backend.close()
    assert not trt._cuda.memory
