"""The stand-in tensorrt modules are test infrastructure: these show they are strict and faithful."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
from fake_cuda import FakeCuda
from onnx import TensorProto, helper
from trt_standin import (
    CALIB_MAGIC,
    SURFACE_DIR,
    VERSIONS,
    calls,
    load_surface,
    logged,
    make_tensorrt,
    module_names,
    read_engine,
)

DIGITS = Path(__file__).resolve().parents[2] / "samples" / "digits" / "model.onnx"
CALIBRATOR_VERSIONS = ("8.5", "8.6", "10.3", "10.13")


def new(version: str) -> tuple[Any, FakeCuda]:
    cuda = FakeCuda()
    return make_tensorrt(version, cuda), cuda


def network_flags(trt: Any) -> int:
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    return 0 if flag is None else 1 << int(flag)


def parsed(trt: Any, model: bytes, flags: int | None = None) -> tuple[Any, Any, Any, Any]:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt) if flags is None else flags)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(model), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    return logger, builder, network, parser


def digits_config(trt: Any, builder: Any, batch: tuple[int, int, int] = (1, 4, 8)) -> tuple[Any, Any]:
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("image", *[(b, 1, 8, 8) for b in batch])
    config.add_optimization_profile(profile)
    return config, profile


def run(trt: Any, cuda: FakeCuda, serialized: Any, image: np.ndarray) -> np.ndarray:
    """What a runner does: named tensors, pinned buffers, async copies around execute_async_v3."""
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(serialized)
    assert engine is not None
    context = engine.create_execution_context()
    stream = cuda.stream()
    assert context.set_input_shape("image", image.shape)
    out_shape = tuple(context.get_tensor_shape("logits"))
    host_in = cuda.pagelocked_empty(image.shape, np.float32)
    host_out = cuda.pagelocked_empty(out_shape, trt.nptype(engine.get_tensor_dtype("logits")))
    dev_in, dev_out = cuda.mem_alloc(host_in.nbytes), cuda.mem_alloc(host_out.nbytes)
    assert context.set_tensor_address("image", dev_in) and context.set_tensor_address("logits", dev_out)
    np.copyto(host_in, image)
    cuda.memcpy_htod_async(dev_in, host_in, stream)
    assert context.execute_async_v3(stream.handle)
    cuda.memcpy_dtoh_async(host_out, dev_out, stream)
    stream.synchronize()
    return host_out.copy()


# -- strict surface ----------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_the_module_holds_exactly_the_surface(version: str) -> None:
    trt, _ = new(version)
    surface = json.loads((SURFACE_DIR / f"tensorrt-{version}.json").read_text())
    assert load_surface(version) == surface
    public = {name for name in dir(trt) if not name.startswith("_")} | {"__version__"}
    assert public == module_names(version)
    for name, members in surface["enums"].items():
        parent, _, child = name.rpartition(".")
        enum_class = getattr(getattr(trt, parent), child) if parent else getattr(trt, name)
        assert sorted(enum_class.__members__) == sorted(members)
    for name, attributes in surface["classes"].items():
        cls = getattr(trt, name)
        assert isinstance(cls, type)
        for attribute in attributes:
            if not attribute.startswith("_"):
                assert hasattr(cls, attribute), f"{name}.{attribute}"
    for base, parents in surface["bases"].items():
        assert all(issubclass(getattr(trt, base), getattr(trt, parent)) for parent in parents)
    with pytest.raises(AttributeError, match=f"tensorrt {version} has no float32"):
        trt.float32  # noqa: B018 - the real __init__.py has it; the brief allows only the three


MISSING = [
    ("11.1", "IInt8EntropyCalibrator2"),
    ("11.1", "IBuilderConfig.int8_calibrator"),
    ("11.1", "IBuilderConfig.set_calibration_profile"),
    ("11.1", "BuilderFlag.INT8"),
    ("11.1", "BuilderFlag.FP16"),
    ("11.1", "Builder.platform_has_fast_int8"),
    ("11.1", "NetworkDefinitionCreationFlag.EXPLICIT_BATCH"),
    ("11.1", "OnnxParser.supports_model"),
    ("10.3", "IBuilderConfig.max_workspace_size"),
    ("10.3", "Builder.build_engine"),
    ("10.3", "IExecutionContext.execute_async_v2"),
    ("10.3", "ICudaEngine.num_bindings"),
    ("8.5", "NetworkDefinitionCreationFlag.STRONGLY_TYPED"),
    ("8.5", "INetworkDefinition.flags"),
]
PRESENT = [
    ("8.5", "IBuilderConfig.max_workspace_size"),
    ("8.5", "IExecutionContext.execute_async_v2"),
    ("8.5", "ICudaEngine.num_bindings"),
    ("8.6", "Builder.build_engine"),
    ("10.13", "IInt8EntropyCalibrator2.get_batch"),
    ("10.13", "IBuilderConfig.int8_calibrator"),
    ("11.1", "OnnxParser.supports_model_v2"),
    ("11.1", "ILogger.Severity.WARNING"),
    ("11.1", "Logger.WARNING"),
]


def lookup(trt: Any, path: str) -> Any:
    value = trt
    for part in path.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize(("version", "path"), MISSING)
def test_missing_names_raise_on_module_and_class(version: str, path: str) -> None:
    trt, _ = new(version)
    with pytest.raises(AttributeError, match=f"tensorrt {version} has no {path}$"):
        lookup(trt, path)


@pytest.mark.parametrize(("version", "path"), PRESENT)
def test_present_names_resolve(version: str, path: str) -> None:
    trt, _ = new(version)
    lookup(trt, path)


def test_missing_names_raise_on_instances_for_get_and_set() -> None:
    trt, _ = new("11.1")
    builder = trt.Builder(trt.Logger())
    config = builder.create_builder_config()
    with pytest.raises(AttributeError, match="tensorrt 11.1 has no IBuilderConfig.int8_calibrator"):
        config.int8_calibrator  # noqa: B018
    with pytest.raises(AttributeError, match="tensorrt 11.1 has no IBuilderConfig.int8_calibrator"):
        config.int8_calibrator = None
    with pytest.raises(AttributeError, match="tensorrt 11.1 has no Builder.platform_has_fast_int8"):
        builder.platform_has_fast_int8  # noqa: B018
    assert not hasattr(config, "max_workspace_size")
    trt10, _ = new("10.3")
    config10 = trt10.Builder(trt10.Logger()).create_builder_config()
    with pytest.raises(AttributeError, match="tensorrt 10.3 has no IBuilderConfig.max_workspace_size"):
        config10.max_workspace_size = 1 << 30
    # 8.5 still has the alias, and it sets the workspace pool.
    trt8, _ = new("8.5")
    builder8 = trt8.Builder(trt8.Logger())
    config8 = builder8.create_builder_config()
    config8.max_workspace_size = 1 << 30
    assert config8.get_memory_pool_limit(trt8.MemoryPoolType.WORKSPACE) == 1 << 30
    assert builder8.platform_has_fast_int8 is True
    with pytest.raises(AttributeError, match="read-only"):
        builder8.platform_has_fast_int8 = False
    assert calls(trt8, "IBuilderConfig.max_workspace_size=") == ["IBuilderConfig.max_workspace_size=1073741824"]


def test_surface_names_without_behaviour_exist_but_say_so_when_called() -> None:
    trt, _ = new("8.5")
    with pytest.raises(NotImplementedError, match="does not simulate ICudaEngine.get_binding_name"):
        trt.ICudaEngine.get_binding_name(0)


def test_enums_are_strict_and_the_logger_severities_ordered() -> None:
    trt, _ = new("10.3")
    assert trt.BuilderFlag.INT8.name == "INT8" and hash(trt.BuilderFlag.INT8) is not None
    assert trt.TensorIOMode.INPUT != int(trt.TensorIOMode.INPUT)  # not arithmetic: equal only to itself
    assert trt.ILogger.Severity.ERROR < trt.Logger.WARNING and trt.Logger.WARNING is trt.ILogger.WARNING
    with pytest.raises(TypeError):
        trt.Builder(trt.Logger()).create_builder_config().set_flag(trt.MemoryPoolType.WORKSPACE)


def test_serialized_memory_is_a_buffer_with_only_dtype_and_nbytes(tmp_path: Path) -> None:
    trt, _ = new("10.13")
    _, builder, network, _ = parsed(trt, DIGITS.read_bytes())
    config, _ = digits_config(trt, builder)
    memory = builder.build_serialized_network(network, config)
    assert memory.nbytes == len(bytes(memory)) and memory.dtype == trt.DataType.UINT8
    (tmp_path / "plan").write_bytes(memory)
    assert read_engine((tmp_path / "plan").read_bytes())["trt"] == "10.13.3.9"
    with pytest.raises(AttributeError, match="tensorrt 10.13 has no IHostMemory.decode"):
        memory.decode()
    with pytest.raises(TypeError):
        len(memory)


# -- behaviour -------------------------------------------------------------------------------


def test_the_digits_model_has_a_dynamic_batch() -> None:
    dims = onnx.load(str(DIGITS)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 8, 8]


@pytest.mark.parametrize("version", VERSIONS)
def test_end_to_end_matches_onnxruntime(version: str) -> None:
    trt, cuda = new(version)
    _, builder, network, _ = parsed(trt, DIGITS.read_bytes())
    assert network.num_inputs == 1 and network.get_input(0).shape == (-1, 1, 8, 8)
    assert network.get_output(0).name == "logits" and network.get_input(0).dtype == trt.DataType.FLOAT
    config, _ = digits_config(trt, builder)
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
    serialized = builder.build_serialized_network(network, config)
    assert serialized is not None, logged(trt)
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(serialized)
    assert [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)] == ["image", "logits"]
    assert engine.get_tensor_mode("image") == trt.TensorIOMode.INPUT
    assert engine.get_tensor_shape("image") == (-1, 1, 8, 8)
    assert engine.get_tensor_profile_shape("image", 0) == [(1, 1, 8, 8), (4, 1, 8, 8), (8, 1, 8, 8)]
    image = np.random.default_rng(0).normal(size=(3, 1, 8, 8)).astype(np.float32)
    output = run(trt, cuda, serialized, image)
    expected = onnxruntime.InferenceSession(str(DIGITS)).run(None, {"image": image})[0]
    np.testing.assert_array_equal(output, expected)
    assert "IBuilderConfig.set_memory_pool_limit(WORKSPACE, 1073741824)" in trt._calls or version.startswith("8")
    assert len(calls(trt, "Builder.build_serialized_network")) == 1
    assert len(calls(trt, "IExecutionContext.execute_async_v3")) == 1
    copies = cuda.calls_named("memcpy_htod_async") + cuda.calls_named("memcpy_dtoh_async")
    assert all(call[4] for call in copies)  # from page-locked memory
    assert [
        c[0] for c in cuda.calls if c[0] in ("memcpy_htod_async", "enqueue", "memcpy_dtoh_async", "synchronize")
    ] == [
        "memcpy_htod_async",
        "enqueue",
        "memcpy_dtoh_async",
        "synchronize",
    ]


def test_execution_refuses_what_tensorrt_refuses() -> None:
    trt, cuda = new("10.3")
    _, builder, network, _ = parsed(trt, DIGITS.read_bytes())
    config, _ = digits_config(trt, builder)
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(builder.build_serialized_network(network, config))
    context = engine.create_execution_context()
    stream = cuda.stream()
    assert not context.set_input_shape("image", (9, 1, 8, 8))  # beyond the profile's max
    assert not context.set_input_shape("image", (2, 3, 8, 8))  # a static dimension changed
    assert context.set_input_shape("image", (2, 1, 8, 8))
    assert context.get_tensor_shape("logits") == (2, 10)
    context.set_tensor_address("image", cuda.mem_alloc(2 * 64 * 4))
    assert not context.execute_async_v3(stream.handle)
    assert "Neither address or allocator is set for output tensor logits" in logged(trt, "ERROR")[-1]
    context.set_tensor_address("logits", cuda.mem_alloc(10 * 4))  # one row: too small
    with pytest.raises(ValueError, match="logits needs 80 bytes"):
        context.execute_async_v3(stream.handle)
    with pytest.raises(TypeError):
        context.execute_async_v3(stream)  # the stream, not its handle


@pytest.mark.parametrize("version", VERSIONS)
def test_implicit_batch_networks_cannot_take_onnx_on_tensorrt_8(version: str) -> None:
    trt, _ = new(version)
    network = trt.Builder(trt.Logger()).create_network()
    parser = trt.OnnxParser(network, trt.Logger())
    ok = parser.parse(DIGITS.read_bytes())
    assert ok is (not version.startswith("8."))
    if not ok:
        assert "explicit batch dimension" in parser.get_error(0).desc()


@pytest.mark.parametrize("version", ("8.5", "11.1"))
def test_a_broken_model_lists_every_parser_error(version: str, tmp_path: Path) -> None:
    trt, _ = new(version)
    parser = trt.OnnxParser(trt.Builder(trt.Logger()).create_network(network_flags(trt)), trt.Logger())
    assert not parser.parse(b"\x08\x07 this is not an onnx model")
    assert parser.num_errors >= 2
    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["x"], ["y"], name="a"), helper.make_node("Grok", ["y"], ["z"], name="b")],
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
    )
    path = tmp_path / "custom.onnx"
    onnx.save(helper.make_model(graph), str(path))
    parser.clear_errors()
    assert not parser.parse_from_file(str(path))
    errors = [parser.get_error(i) for i in range(parser.num_errors)]
    unsupported = [e for e in errors if e.code() == trt.ErrorCode.UNSUPPORTED_NODE]
    assert [(e.node(), e.desc().split(".")[0]) for e in unsupported] == [
        (0, "No importer registered for op: Frobnicate"),
        (1, "No importer registered for op: Grok"),
    ]
    assert all("Plugin not found" in e.desc() for e in unsupported)
    assert all(str(e) for e in errors)


@pytest.mark.parametrize("version", VERSIONS)
def test_dynamic_inputs_need_a_profile(version: str) -> None:
    trt, _ = new(version)
    _, builder, network, _ = parsed(trt, DIGITS.read_bytes())
    assert builder.build_serialized_network(network, builder.create_builder_config()) is None
    assert "no optimization profile has been defined" in logged(trt, "ERROR")[-1]
    profile = builder.create_optimization_profile()
    with pytest.raises(RuntimeError, match="max input"):
        profile.set_shape("image", (1, 1, 8, 8), (4, 1, 8, 8), (2, 1, 8, 8))


@pytest.mark.parametrize("version", CALIBRATOR_VERSIONS)
def test_int8_needs_a_calibrator_or_qdq(version: str) -> None:
    trt, _ = new(version)
    _, builder, network, _ = parsed(trt, DIGITS.read_bytes())
    config, _ = digits_config(trt, builder)
    config.set_flag(trt.BuilderFlag.INT8)
    assert "IBuilderConfig.set_flag(INT8)" in trt._calls
    assert builder.build_serialized_network(network, config) is None
    assert "no scaling factors detected" in logged(trt, "ERROR")[-1]


@pytest.mark.parametrize("version", ("10.3", "10.13", "11.1"))
def test_strongly_typed_networks_refuse_precision_flags(version: str) -> None:
    trt, _ = new(version)
    typed = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    _, builder, network, _ = parsed(trt, DIGITS.read_bytes(), typed)
    assert network.flags == typed and network.get_flag(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    config, _ = digits_config(trt, builder)
    assert read_engine(builder.build_serialized_network(network, config))["strongly_typed"]
    if hasattr(trt.BuilderFlag, "FP16"):
        config.set_flag(trt.BuilderFlag.FP16)
        assert builder.build_serialized_network(network, config) is None


def test_engines_are_not_portable_across_releases() -> None:
    trt8, _ = new("8.5")
    _, builder, network, _ = parsed(trt8, DIGITS.read_bytes())
    config, _ = digits_config(trt8, builder)
    plan = bytes(builder.build_serialized_network(network, config))
    trt10, _ = new("10.3")
    runtime = trt10.Runtime(trt10.Logger())
    assert runtime.deserialize_cuda_engine(plan) is None
    assert "expecting library version 10.3.0.30 got 8.5.2.2" in logged(trt10, "ERROR")[-1]
    assert runtime.deserialize_cuda_engine(b"torn") is None
    assert "Magic tag does not match" in logged(trt10, "ERROR")[-1]


def test_a_timing_cache_is_reused_by_the_next_build() -> None:
    trt, _ = new("10.13")
    blob = b""
    reused = []
    for _ in range(2):
        _, builder, network, _ = parsed(trt, DIGITS.read_bytes())
        config, _ = digits_config(trt, builder)
        assert config.set_timing_cache(config.create_timing_cache(blob), False)
        reused.append(read_engine(builder.build_serialized_network(network, config))["timing_cache_reused"])
        blob = bytes(config.get_timing_cache().serialize())
    assert reused == [False, True]


def make_calibrator(trt: Any, cuda: FakeCuda, data: np.ndarray, batch: int, cache: bytes | None) -> Any:
    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.served = 0
            self.written: list[bytes] = []
            self.stream = cuda.stream()
            self.host = cuda.pagelocked_empty((batch,) + data.shape[1:], np.float32)
            self.device = cuda.mem_alloc(self.host.nbytes)

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            start = self.served * batch
            if start + batch > len(data):
                return None
            np.copyto(self.host, data[start : start + batch])
            cuda.memcpy_htod_async(self.device, self.host, self.stream)
            self.stream.synchronize()
            self.served += 1
            return [self.device]

        def read_calibration_cache(self) -> bytes | None:
            return cache

        def write_calibration_cache(self, blob: Any) -> None:
            self.written.append(bytes(blob))

    return Calibrator()


@pytest.mark.parametrize("version", CALIBRATOR_VERSIONS)
def test_the_calibration_protocol(version: str) -> None:
    trt, cuda = new(version)
    data = np.random.default_rng(2).normal(size=(20, 1, 8, 8)).astype(np.float32)
    _, builder, network, _ = parsed(trt, DIGITS.read_bytes())
    config, profile = digits_config(trt, builder, (1, 8, 8))
    config.set_flag(trt.BuilderFlag.INT8)
    calibrator = make_calibrator(trt, cuda, data, 8, None)
    config.int8_calibrator = calibrator
    config.set_calibration_profile(profile)
    engine = read_engine(builder.build_serialized_network(network, config))
    assert engine["calibration"]["batches"] == 2 and "INT8" in engine["flags"]
    assert engine["calibration"]["absmax"]["image"] == pytest.approx(float(np.abs(data[:16]).max()))
    assert calibrator.written[0].startswith(CALIB_MAGIC)
    assert calls(trt, "IBuilderConfig.int8_calibrator=") == ["IBuilderConfig.int8_calibrator=Calibrator"]
    assert [c for c in trt._calls if c.startswith("calibrator.")] == [
        "calibrator.get_algorithm()",
        "calibrator.read_calibration_cache()",
        "calibrator.get_batch_size()",
        "calibrator.get_batch(['image'])",
        "calibrator.get_batch(['image'])",
        "calibrator.get_batch(['image'])",
        f"calibrator.write_calibration_cache(<{len(calibrator.written[0])} bytes>)",
    ]
    # A cache from read_calibration_cache skips the batches.
    trt2, cuda2 = new(version)
    _, builder2, network2, _ = parsed(trt2, DIGITS.read_bytes())
    config2, _ = digits_config(trt2, builder2, (1, 8, 8))
    config2.set_flag(trt2.BuilderFlag.INT8)
    config2.int8_calibrator = make_calibrator(trt2, cuda2, data, 8, calibrator.written[0])
    assert read_engine(builder2.build_serialized_network(network2, config2))["calibration"]["source"] == "cache"
    assert not calls(trt2, "calibrator.get_batch")


def test_a_calibrator_batch_that_does_not_match_the_profile_fails_the_build() -> None:
    trt, cuda = new("8.6")
    data = np.zeros((8, 1, 8, 8), np.float32)
    _, builder, network, _ = parsed(trt, DIGITS.read_bytes())
    config, _ = digits_config(trt, builder, (1, 8, 8))
    config.set_flag(trt.BuilderFlag.INT8)
    config.int8_calibrator = make_calibrator(trt, cuda, data, 4, None)  # 4 images, the profile's OPT is 8
    assert builder.build_serialized_network(network, config) is None
    assert "Calibration Profile is not defined" in logged(trt, "WARNING")[-1]
    assert "must match the calibration profile's OPT shape" in logged(trt, "ERROR")[-1]


def test_calibrator_subclasses_behave_like_pybind11_ones(capsys: pytest.CaptureFixture[str]) -> None:
    trt, cuda = new("10.3")

    class Skipped(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            pass

    with pytest.raises(TypeError, match="IInt8EntropyCalibrator2.__init__\\(\\) must be called"):
        Skipped()

    class Raising(trt.IInt8EntropyCalibrator2):
        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            raise RuntimeError("boom")

        def read_calibration_cache(self) -> None:
            return None

    _, builder, network, _ = parsed(trt, DIGITS.read_bytes())
    config, _ = digits_config(trt, builder)
    config.set_flag(trt.BuilderFlag.INT8)
    config.int8_calibrator = Raising()
    # The exception is printed and swallowed, so the build sees no batches at all.
    assert builder.build_serialized_network(network, config) is None
    assert "Exception caught in get_batch(): boom" in capsys.readouterr().err
    assert "no scaling factors detected" in logged(trt, "ERROR")[-1]


def test_fake_cuda_is_strict_and_asynchronous() -> None:
    cuda = FakeCuda()
    stream = cuda.stream()
    ptr = cuda.mem_alloc(16)
    host = cuda.pagelocked_empty((4,), np.float32)
    host[:] = [1, 2, 3, 4]
    cuda.memcpy_htod_async(ptr, host, stream)
    with pytest.raises(RuntimeError, match="synchronize"):
        cuda.read(ptr, 16)  # the copy has not run yet
    stream.synchronize()
    assert np.frombuffer(cuda.read(ptr, 16), np.float32).tolist() == [1, 2, 3, 4]
    out = np.zeros(4, np.float32)
    cuda.memcpy_dtoh_async(out, ptr, stream)
    assert out.tolist() == [0, 0, 0, 0]  # not before synchronize
    stream.synchronize()
    assert out.tolist() == [1, 2, 3, 4]
    assert cuda.calls_named("memcpy_dtoh_async")[0][4] is False  # not page-locked
    with pytest.raises(ValueError, match="overflow"):
        cuda.memcpy_htod_async(ptr, np.zeros(5, np.float32), stream)
    with pytest.raises(ValueError, match="not the start of a live allocation"):
        cuda.memcpy_dtoh_async(out, ptr + 4, stream)
    cuda.mem_free(ptr)
    with pytest.raises(ValueError):
        cuda.mem_free(ptr)
