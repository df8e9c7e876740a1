"""Strict stand-in ``tensorrt`` modules, one per release, for testing TensorRT code without TensorRT.

``make_tensorrt("10.3", FakeCuda())`` returns a module named ``tensorrt`` whose names are
exactly that release's Python API surface (tests/data/tensorrt-api/tensorrt-<release>.json,
read from NVIDIA's pybind11 bindings) plus ``__version__``, ``nptype`` and ``volume``:

* Every class, enum and function of the surface exists; nothing else does. A public name
  outside the surface raises AttributeError naming the release, on the module, on a class
  and on an instance (get and set), e.g. "tensorrt 11.1 has no IBuilderConfig.int8_calibrator".
* Behaviour (the builder, ONNX parser, calibration protocol, runtime and execution on
  onnxruntime through the fake CUDA device) is written once, in the ``_Impl*`` classes below,
  and copied onto a release's class only for the names in its surface, so a behaviour
  for a name the release lacks can never be reached. A surface name without behaviour is
  an "unsimulated" stub: accessing it works (``hasattr`` is True), calling it raises
  NotImplementedError, and assigning it stores the value.
* Enum values are the member's index in sorted name order (so code must use ``int(member)``,
  never literals), except ``ILogger.Severity``, which has TensorRT's values. Enums that the
  bindings declare ``py::arithmetic()`` (Severity, BuilderFlag) are IntEnums; the others are
  strict: equal only to themselves, ``int()``-able.
* As in pybind11: a Python subclass of a stand-in class must call the base ``__init__`` and may
  set any attribute; exceptions raised in a Python calibrator's callbacks are printed to
  stderr and swallowed (the build sees "no batch" / "no cache"), as the real trampolines do.

Recording (``module._calls``, a list of str), only for calls made by the code under test
(calls the stand-in makes internally are not recorded):

* method call:      ``"Class.method(arg, ...)"``  e.g. ``"IBuilderConfig.set_flag(INT8)"``,
  ``"IBuilderConfig.set_memory_pool_limit(WORKSPACE, 1073741824)"``,
  ``"Builder.build_serialized_network(INetworkDefinition, IBuilderConfig)"``,
  ``"IExecutionContext.execute_async_v3(20480)"``.
* constructor:      ``"Builder(Logger)"``, ``"Logger(WARNING)"``, ``"OnnxParser(INetworkDefinition, Logger)"``.
  Arguments: enum members by name, numbers/str/tuples by repr, buffers as ``<N bytes>``,
  other objects by class name. ``Class`` is the stand-in class the method belongs to.
* property set:     ``"Class.attr=value"`` e.g. ``"IBuilderConfig.int8_calibrator=MyCalibrator"``.
* module function:  ``"init_libnvinfer_plugins(Logger, '')"``.
* calibrator callbacks the build makes: ``"calibrator.get_batch(['image'])"`` etc.
Use ``calls(trt, "IBuilderConfig.set_flag")`` / ``calls(trt, "IBuilderConfig.int8_calibrator=")``
to select entries by name. ``module._log`` is a list of (severity name, message) for every
message the stand-in sent to a logger (plus ("STDERR", ...) for swallowed callback errors).

Serialized engines are ``ENGINE_MAGIC`` + JSON (``read_engine`` decodes them): the ONNX
bytes, I/O names/shapes/dtypes, profiles, builder flags, calibration summary, timing cache
reuse and the release; a runtime of another release refuses them, like real plans.
"""

# Kept Python 3.8-compatible like the agent it tests: annotations are strings (the
# __future__ import), and zip() has no strict= (hence the B905 waivers).
from __future__ import annotations

import base64
import enum
import functools
import hashlib
import json
import operator
import os
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

SURFACE_DIR = Path(__file__).resolve().parents[1] / "data" / "tensorrt-api"
VERSIONS: tuple[str, ...] = ("8.5", "8.6", "10.3", "10.13", "11.1")
FULL_VERSIONS: dict[str, str] = {
    "8.5": "8.5.2.2",
    "8.6": "8.6.2.3",
    "10.3": "10.3.0.30",
    "10.13": "10.13.3.9",
    "11.1": "11.1.0.0",
}
# What every release's tensorrt/__init__.py adds in Python on top of the bindings.
PYTHON_ADDITIONS: frozenset[str] = frozenset({"__version__", "nptype", "volume"})
ENGINE_MAGIC = b"TRT-standin-engine\n"
CALIB_MAGIC = b"TRT-standin-calib\n"
# Ops of libnvinfer_plugin the stand-in parser knows as plugin layers.
PLUGIN_OPS = frozenset({"EfficientNMS_TRT", "BatchedNMSDynamic_TRT", "ROIAlign_TRT", "ResizeNearest_TRT"})
TIMING_MAGIC = b"TRT-standin-timing\n"

_SEVERITY_VALUES = {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4}
_ARITHMETIC_ENUMS = {"ILogger.Severity", "BuilderFlag"}
# Builder flags a strongly typed network refuses: its precision comes from the model.
_TYPED_PRECISION_FLAGS = {"FP16", "BF16", "INT8", "FP8", "INT4", "FP4"}
_NUMPY_TYPES = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT8": np.int8,
    "INT32": np.int32,
    "INT64": np.int64,
    "BOOL": np.bool_,
    "UINT8": np.uint8,
}
_ONNX_TYPES = {
    onnx.TensorProto.FLOAT: "FLOAT",
    onnx.TensorProto.FLOAT16: "HALF",
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.BOOL: "BOOL",
    onnx.TensorProto.UINT8: "UINT8",
}
_LAZY_LOADING = (
    "CUDA lazy loading is not enabled. Enabling it can significantly reduce device memory usage and speed up "
    'TensorRT initialization. See "Lazy Loading" section of CUDA documentation '
    "https://docs.nvidia.com/cuda/cuda-c-programming-guide/index.html#lazy-loading"
)
_NO_CALIBRATION = (
    "Calibration failure occurred with no scaling factors detected. This could be due to no int8 calibrator "
    "or insufficient custom scales for network layers. Please see int8 sample to setup calibration correctly."
)


# -- public helpers -----------------------------------------------------------------------


@functools.cache
def load_surface(version: str) -> dict[str, Any]:
    if version not in FULL_VERSIONS:
        raise ValueError(f"no TensorRT API surface for {version!r}; have {', '.join(VERSIONS)}")
    return json.loads((SURFACE_DIR / f"tensorrt-{version}.json").read_text())


def module_names(version: str) -> frozenset[str]:
    """The names a stand-in module of this release has (nested enums live on their class)."""
    surface = load_surface(version)
    enums = {name for name in surface["enums"] if "." not in name}
    return frozenset(set(surface["classes"]) | enums | set(surface["functions"]) | PYTHON_ADDITIONS)


def calls(trt: types.ModuleType, name: str) -> list[str]:
    """Recorded calls of ``name`` ("Class.method", or "Class.attr=" for property sets)."""
    return [entry for entry in trt._calls if _call_key(entry) == name]


def logged(trt: types.ModuleType, severity: str | None = None) -> list[str]:
    return [message for level, message in trt._log if severity is None or level == severity]


def read_engine(data: Any) -> dict[str, Any]:
    """The JSON inside a stand-in serialized engine (bytes, IHostMemory or a file's bytes)."""
    raw = bytes(memoryview(data))
    if not raw.startswith(ENGINE_MAGIC):
        raise ValueError("not a stand-in TensorRT engine")
    return json.loads(raw[len(ENGINE_MAGIC) :])


def make_tensorrt(version: str, cuda: Any) -> types.ModuleType:
    """A fresh ``tensorrt`` module for ``version`` (one of VERSIONS) on the fake device ``cuda``."""
    surface = load_surface(version)
    ctx = _Context(version, cuda)
    module = types.ModuleType(
        "tensorrt", f"Stand-in for TensorRT {FULL_VERSIONS[version]} (tests/agent/trt_standin.py)"
    )
    for name, members in surface["enums"].items():
        ctx.enums[name] = _make_enum(ctx, name, members)
    _make_classes(ctx, surface)
    for name, enum_class in ctx.enums.items():
        if "." not in name:
            setattr(module, name, enum_class)
    for name, cls in ctx.classes.items():
        setattr(module, name, cls)
    for name in surface["functions"]:
        setattr(module, name, _module_function(ctx, name))
    module.__version__ = ctx.full_version
    module.nptype = _nptype(ctx)
    module.volume = _volume
    module._calls = ctx.calls
    module._log = ctx.log
    module._ctx = ctx
    module._cuda = cuda

    # Attributes set above are found first; this only words the error for everything else.
    def __getattr__(name: str) -> Any:
        raise AttributeError(f"tensorrt {version} has no {name}")

    module.__getattr__ = __getattr__
    return module


# -- the surface-checked class factory ------------------------------------------------------


class _Context:
    """Per-module state shared by its classes: the release, the device, the records."""

    def __init__(self, version: str, cuda: Any) -> None:
        self.version = version
        self.full_version = FULL_VERSIONS[version]
        self.major = int(version.split(".")[0])
        self.cuda = cuda
        self.calls: list[str] = []
        self.log: list[tuple[str, str]] = []
        self.depth = 0
        self.enums: dict[str, Any] = {}
        self.classes: dict[str, type] = {}
        # libnvinfer_plugin's creators, registered per process (a fresh module is a fresh process).
        self.plugins_registered = False

    def member(self, enum_name: str, name: str) -> Any:
        """The enum member, or None where this release lacks it (behaviour keys off this)."""
        enum_class = self.enums.get(enum_name)
        return None if enum_class is None else enum_class.__members__.get(name)

    def new(self, class_name: str, **state: Any) -> Any:
        """An instance made the way the bindings return one: no public constructor runs."""
        cls = self.classes[class_name]
        obj = cls.__new__(cls)
        for key, value in state.items():
            object.__setattr__(obj, "_" + key, value)
        return obj

    def emit(self, logger: Any, severity: str, message: str) -> None:
        self.log.append((severity, message))
        try:
            logger.log(self.enums["ILogger.Severity"][severity], message)
        except Exception as exc:  # noqa: BLE001 - the bindings print and carry on
            print(f"[ERROR] Exception caught in log(): {exc}", file=sys.stderr)

    def fail(self, logger: Any, message: str) -> None:
        self.emit(logger, "ERROR", message)
        return None

    def callback(self, obj: Any, method: str, *args: Any, default: Any = None) -> Any:
        """Call user code the way TensorRT's trampolines do: exceptions are printed, not raised."""
        self.calls.append(f"calibrator.{method}({_format_args(args, {})})")
        try:
            return getattr(obj, method)(*args)
        except Exception as exc:  # noqa: BLE001
            message = f"Exception caught in {method}(): {exc}"
            print(f"[ERROR] {message}", file=sys.stderr)
            self.log.append(("STDERR", message))
            return default


class _Meta(type):
    def __getattr__(cls, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(_missing(cls, name))

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = super().__call__(*args, **kwargs)
        if not cls.__dict__.get("_generated") and not obj.__dict__.get("_standin_init"):
            # pybind11 refuses a Python subclass whose __init__ skipped the base one.
            raise TypeError(f"{_owner(cls).__name__}.__init__() must be called when overriding __init__")
        return obj


class _StandIn(metaclass=_Meta):
    """Base of every stand-in class; ``_ctx``, ``_surface`` and ``_generated`` are set per class."""

    _ctx: _Context
    _surface: frozenset[str] = frozenset()
    _readonly: frozenset[str] = frozenset()

    def __init__(self) -> None:
        object.__setattr__(self, "_standin_init", True)

    def __getattr__(self, name: str) -> Any:
        # Reached only when normal lookup failed: the class holds surface names only.
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(_missing(type(self), name))

    def __setattr__(self, name: str, value: Any) -> None:
        cls = type(self)
        # Private state, and Python subclasses (which have a __dict__ in pybind11 too).
        if name.startswith("_") or not cls.__dict__.get("_generated"):
            object.__setattr__(self, name, value)
            return
        if name not in cls._surface:
            raise AttributeError(_missing(cls, name))
        attribute = _static_lookup(cls, name)
        if isinstance(attribute, property) and attribute.fset is None:
            if name in cls._readonly:
                raise AttributeError(f"tensorrt {cls._ctx.version}: {cls.__name__}.{name} is read-only")
            raise NotImplementedError(f"the tensorrt {cls._ctx.version} stand-in does not simulate setting {name}")
        if isinstance(attribute, types.FunctionType) or isinstance(attribute, enum.Enum):
            raise AttributeError(f"tensorrt {cls._ctx.version}: {cls.__name__}.{name} cannot be assigned")
        if not isinstance(attribute, property):
            # An unsimulated name: keep the value, and record the assignment.
            cls._ctx.calls.append(f"{cls.__name__}.{name}={_format(value)}")
        object.__setattr__(self, name, value)


def _owner(cls: type) -> type:
    return next(k for k in cls.__mro__ if k.__dict__.get("_generated"))


def _missing(cls: type, name: str) -> str:
    owner = _owner(cls)
    return f"tensorrt {owner._ctx.version} has no {owner.__name__}.{name}"


def _static_lookup(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


class _Unsimulated:
    """A surface name the stand-in gives no behaviour: present, but calling it says so."""

    def __init__(self, ctx: _Context, owner: str, name: str) -> None:
        self.ctx, self.owner, self.name = ctx, owner, name

    def __get__(self, obj: Any, objtype: Any = None) -> Callable[..., Any]:
        return self  # unbound: calls through an instance do not pass it

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.ctx.depth == 0:
            self.ctx.calls.append(f"{self.owner}{self.name}({_format_args(args, kwargs)})")
        raise NotImplementedError(
            f"the tensorrt {self.ctx.version} stand-in does not simulate {self.owner}{self.name}; "
            "add it to tests/agent/trt_standin.py if the code needs it"
        )

    def __repr__(self) -> str:
        return f"<unsimulated tensorrt {self.ctx.version} {self.owner}{self.name}>"


def _recorded(ctx: _Context, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if ctx.depth == 0:
            ctx.calls.append(f"{_owner(type(self)).__name__}.{name}({_format_args(args, kwargs)})")
        ctx.depth += 1
        try:
            return function(self, *args, **kwargs)
        finally:
            ctx.depth -= 1

    return method


def _recorded_init(ctx: _Context, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """Records a public constructor as "Class(args)"; a subclass's base call is not recorded."""

    @functools.wraps(function)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if ctx.depth == 0 and type(self).__dict__.get("_generated"):
            ctx.calls.append(f"{name}({_format_args(args, kwargs)})")
        function(self, *args, **kwargs)

    return __init__


def _recorded_property(ctx: _Context, name: str, prop: property) -> property:
    if prop.fset is None:
        return prop
    setter = prop.fset

    def fset(self: Any, value: Any) -> None:
        if ctx.depth == 0:
            ctx.calls.append(f"{_owner(type(self)).__name__}.{name}={_format(value)}")
        setter(self, value)

    return property(prop.fget, fset)


def _make_enum(ctx: _Context, name: str, members: list[str]) -> Any:
    base = _TrtIntEnum if name in _ARITHMETIC_ENUMS else _TrtEnum
    if name == "ILogger.Severity":
        values = [(member, _SEVERITY_VALUES[member]) for member in members]
    else:
        values = [(member, index) for index, member in enumerate(sorted(members))]
    enum_class = base(name.split(".")[-1], values, module="tensorrt", qualname=name)
    enum_class._release = ctx.version
    return enum_class


class _EnumType(enum.EnumMeta):
    def __getattr__(cls, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        members = cls.__dict__.get("_member_map_", {})
        if name in members:
            return members[name]
        raise AttributeError(f"tensorrt {cls.__dict__.get('_release', '?')} has no {cls.__qualname__}.{name}")


class _TrtEnum(enum.Enum, metaclass=_EnumType):
    def __int__(self) -> int:
        return int(self.value)

    __index__ = __int__

    def __str__(self) -> str:
        return f"{type(self).__qualname__}.{self.name}"


class _TrtIntEnum(enum.IntEnum, metaclass=_EnumType):
    def __str__(self) -> str:
        return f"{type(self).__qualname__}.{self.name}"


def _make_classes(ctx: _Context, surface: dict[str, Any]) -> None:
    classes: dict[str, list[str]] = surface["classes"]
    bases: dict[str, list[str]] = surface["bases"]
    nested: dict[str, list[str]] = {}
    for enum_name in surface["enums"]:
        if "." in enum_name:
            parent, child = enum_name.split(".", 1)
            nested.setdefault(parent, []).append(child)

    def make(name: str) -> type:
        if name in ctx.classes:
            return ctx.classes[name]
        parents = [make(base) for base in bases.get(name, [])]
        # The extraction lists every C++ base (IPluginV3OneBuildV2: IPluginCapability,
        # IPluginV3OneBuild, ...); keep the most derived ones so Python can order the MRO.
        parents = [p for p in parents if not any(q is not p and issubclass(q, p) for q in parents)]
        impl = _impl_attributes(name)
        own = {n for n in classes[name] if not n.startswith("_")}
        namespace: dict[str, Any] = {"_generated": True, "_ctx": ctx, "__module__": "tensorrt", "__qualname__": name}
        for attr, value in impl.items():
            if attr.startswith("_"):
                namespace[attr] = value
        if impl.get("__init__", _no_constructor) is not _no_constructor:
            namespace["__init__"] = _recorded_init(ctx, name, impl["__init__"])
        for child in nested.get(name, []):
            namespace[child] = ctx.enums[f"{name}.{child}"]
        exported = {m.name: m for child in nested.get(name, []) for m in ctx.enums[f"{name}.{child}"]}
        for attr in sorted(own):
            if attr in impl:
                value = impl[attr]
                if isinstance(value, property):
                    namespace[attr] = _recorded_property(ctx, attr, value)
                else:
                    namespace[attr] = _recorded(ctx, attr, value)
            elif attr in exported:
                namespace[attr] = exported[attr]
            elif not any(hasattr(p, attr) for p in parents):
                namespace[attr] = _Unsimulated(ctx, f"{name}.", attr)
        inherited = frozenset().union(*(p._surface for p in parents)) if parents else frozenset()
        namespace["_surface"] = frozenset(own | set(nested.get(name, []))) | inherited
        cls = _Meta(name, tuple(parents) or _IMPL_BASES.get(name, (_StandIn,)), namespace)
        ctx.classes[name] = cls
        return cls

    for name in classes:
        make(name)


def _impl_attributes(name: str) -> dict[str, Any]:
    impl = _IMPLS.get(name)
    if impl is None:
        return {}
    found: dict[str, Any] = {}
    for klass in reversed(impl.__mro__[:-1]):
        for attr, value in klass.__dict__.items():
            if attr not in ("__dict__", "__weakref__", "__module__", "__qualname__", "__doc__"):
                found[attr] = value
    return found


def _module_function(ctx: _Context, name: str) -> Callable[..., Any]:
    def init_plugins(logger: Any, namespace: str) -> bool:
        ctx.plugins_registered = True
        return True

    behaviour = {
        "init_libnvinfer_plugins": init_plugins,
        "get_nv_onnx_parser_version": lambda: ctx.major * 1000 + int(ctx.version.split(".")[1]) * 100,
    }.get(name)
    if behaviour is None:
        return _Unsimulated(ctx, "", name)

    def function(*args: Any, **kwargs: Any) -> Any:
        ctx.calls.append(f"{name}({_format_args(args, kwargs)})")
        return behaviour(*args, **kwargs)

    function.__name__ = name
    return function


def _nptype(ctx: _Context) -> Callable[[Any], Any]:
    def nptype(trt_type: Any) -> Any:
        data_type = ctx.enums["DataType"]
        if isinstance(trt_type, data_type) and trt_type.name in _NUMPY_TYPES:
            return _NUMPY_TYPES[trt_type.name]
        raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")

    return nptype


def _volume(iterable: Any) -> int:
    return functools.reduce(lambda x, y: x * y, iterable, 1)


def _call_key(entry: str) -> str:
    cut = [i for i in (entry.find("("), entry.find("=")) if i >= 0]
    if not cut:
        return entry
    end = min(cut)
    return entry[: end + 1] if entry[end] == "=" else entry[:end]


def _format(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return value.name
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_format(v) for v in value)
        return f"({inner}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{memoryview(value).nbytes} bytes>"
    return type(value).__name__


def _format_args(args: Any, kwargs: dict[str, Any]) -> str:
    return ", ".join([_format(a) for a in args] + [f"{k}={_format(v)}" for k, v in kwargs.items()])


def _enum_arg(ctx: _Context, value: Any, enum_name: str, what: str) -> Any:
    """pybind11 refuses an argument of another type; so does the stand-in."""
    if not isinstance(value, ctx.enums[enum_name]):
        raise TypeError(f"{what}: incompatible function arguments: expected tensorrt.{enum_name}, got {value!r}")
    return value


def _instance_arg(ctx: _Context, value: Any, class_name: str, what: str) -> Any:
    if not isinstance(value, ctx.classes[class_name]):
        raise TypeError(f"{what}: incompatible function arguments: expected tensorrt.{class_name}, got {value!r}")
    return value


def _dims(value: Any) -> tuple[int, ...]:
    return tuple(operator.index(v) for v in value)


def _no_constructor(self: Any, *args: Any, **kwargs: Any) -> None:
    raise TypeError(f"tensorrt.{type(self).__name__}: No constructor defined!")


# -- behaviour: logging -------------------------------------------------------------------


class _ImplLogger:
    _readonly = frozenset()

    def __init__(self, min_severity: Any = None) -> None:
        _StandIn.__init__(self)
        severity = self._ctx.enums["ILogger.Severity"]
        self._min = (
            severity.WARNING
            if min_severity is None
            else _enum_arg(self._ctx, min_severity, "ILogger.Severity", "Logger")
        )

    def log(self, severity: Any, msg: str) -> None:
        if severity <= self._min:
            # pyCore.cpp: the bindings' Logger writes with std::cout, not std::cerr.
            print(f"[TRT] [{severity.name[0]}] {msg}", file=sys.stdout, flush=True)

    def _get_min(self) -> Any:
        return self._min

    def _set_min(self, value: Any) -> None:
        self._min = _enum_arg(self._ctx, value, "ILogger.Severity", "Logger.min_severity")

    min_severity = property(_get_min, _set_min)


# -- behaviour: building --------------------------------------------------------------------


class _ImplBuilder:
    _readonly = frozenset({"platform_has_fast_int8", "platform_has_fast_fp16", "platform_has_tf32", "num_DLA_cores"})

    def __init__(self, logger: Any) -> None:
        _StandIn.__init__(self)
        self._logger = _instance_arg(self._ctx, logger, "ILogger", "Builder")

    def create_network(self, flags: int = 0) -> Any:
        ctx = self._ctx
        flags = operator.index(flags)
        valid = sum(1 << int(m) for m in ctx.enums["NetworkDefinitionCreationFlag"])
        if flags & ~valid:
            return ctx.fail(self._logger, f"createNetworkV2: invalid NetworkDefinitionCreationFlags {flags:#x}")
        explicit = ctx.member("NetworkDefinitionCreationFlag", "EXPLICIT_BATCH")
        # TensorRT 8 builds implicit-batch networks unless asked; 10 ignores the flag (always explicit).
        implicit = ctx.major < 10 and not (explicit is not None and flags & (1 << int(explicit)))
        return ctx.new(
            "INetworkDefinition",
            logger=self._logger,
            flags=flags,
            implicit_batch=implicit,
            inputs=[],
            outputs=[],
            layers=[],
        )

    def create_builder_config(self) -> Any:
        return self._ctx.new(
            "IBuilderConfig",
            flags=0,
            pools={},
            profiles=[],
            calibrator=None,
            calibration_profile=None,
            timing_cache=None,
            dla_core=-1,
            device_type=self._ctx.enums["DeviceType"].GPU,
        )

    def create_optimization_profile(self) -> Any:
        return self._ctx.new("IOptimizationProfile", shapes={}, logger=self._logger)

    platform_has_fast_int8 = property(lambda self: True)
    platform_has_fast_fp16 = property(lambda self: True)
    platform_has_tf32 = property(lambda self: False)
    num_DLA_cores = property(lambda self: 2)

    def build_serialized_network(self, network: Any, config: Any) -> Any:
        ctx = self._ctx
        _instance_arg(ctx, network, "INetworkDefinition", "build_serialized_network")
        _instance_arg(ctx, config, "IBuilderConfig", "build_serialized_network")
        return _build(ctx, self._logger, network, config)


class _ImplNetwork:
    __init__ = _no_constructor
    _readonly = frozenset({"num_inputs", "num_outputs", "num_layers", "has_implicit_batch_dimension", "flags"})
    num_inputs = property(lambda self: len(self._inputs))
    num_outputs = property(lambda self: len(self._outputs))
    num_layers = property(lambda self: len(self._layers))

    def get_layer(self, index: int) -> Any:
        return self._layers[index] if 0 <= index < len(self._layers) else None

    has_implicit_batch_dimension = property(lambda self: self._implicit_batch)
    flags = property(lambda self: self._flags)

    def get_input(self, index: int) -> Any:
        return self._inputs[index] if 0 <= index < len(self._inputs) else None

    def get_output(self, index: int) -> Any:
        return self._outputs[index] if 0 <= index < len(self._outputs) else None

    def get_flag(self, flag: Any) -> bool:
        return bool(self._flags & (1 << int(_enum_arg(self._ctx, flag, "NetworkDefinitionCreationFlag", "get_flag"))))


class _ImplTensor:
    __init__ = _no_constructor
    name = property(lambda self: self._name)
    shape = property(lambda self: self._shape)
    dtype = property(lambda self: self._dtype)
    is_network_input = property(lambda self: self._is_input)
    is_network_output = property(lambda self: self._is_output)


class _ImplLayer:
    """One layer per ONNX node (the real parser sometimes makes several): its type, its
    tensors, and the precision constraints a builder may set on it."""

    __init__ = _no_constructor
    _readonly = frozenset({"type", "num_inputs", "num_outputs", "precision_is_set"})
    name = property(lambda self: self._name)
    type = property(lambda self: self._type)
    num_inputs = property(lambda self: len(self._tensors_in))
    num_outputs = property(lambda self: len(self._tensors_out))
    precision_is_set = property(lambda self: self._precision_set)

    def get_input(self, index: int) -> Any:
        return self._tensors_in[index] if 0 <= index < len(self._tensors_in) else None

    def get_output(self, index: int) -> Any:
        return self._tensors_out[index] if 0 <= index < len(self._tensors_out) else None

    def _set_precision(self, value: Any) -> None:
        self._precision = _enum_arg(self._ctx, value, "DataType", "precision")
        self._precision_set = True

    precision = property(lambda self: self._precision, _set_precision)

    def set_output_type(self, index: int, dtype: Any) -> None:
        _enum_arg(self._ctx, dtype, "DataType", "set_output_type")
        if not 0 <= index < len(self._tensors_out):
            raise IndexError(f"set_output_type: layer {self._name} has no output {index}")
        self._output_types[index] = dtype


# The LayerType the ONNX parser gives each op's layer; the rest become IDENTITY here.
_LAYER_TYPES = {
    "Conv": "CONVOLUTION",
    "ConvTranspose": "DECONVOLUTION",
    "MatMul": "MATRIX_MULTIPLY",
    "Gemm": "MATRIX_MULTIPLY",
    "Concat": "CONCATENATION",
    "Shape": "SHAPE",
    "Relu": "ACTIVATION",
    "Sigmoid": "ACTIVATION",
    "LeakyRelu": "ACTIVATION",
    "Add": "ELEMENTWISE",
    "Sub": "ELEMENTWISE",
    "Mul": "ELEMENTWISE",
    "Div": "ELEMENTWISE",
    "Reshape": "SHUFFLE",
    "Transpose": "SHUFFLE",
    "Flatten": "SHUFFLE",
    "Unsqueeze": "SHUFFLE",
    "Slice": "SLICE",
    "Split": "SLICE",
    "Softmax": "SOFTMAX",
    "MaxPool": "POOLING",
    "Resize": "RESIZE",
    "Gather": "GATHER",
    "Cast": "CAST",
    "QuantizeLinear": "QUANTIZE",
    "DequantizeLinear": "DEQUANTIZE",
}


def _layers(ctx: _Context, model: Any, tensors: dict[str, Any]) -> list[Any]:
    """The network's layers, wired by tensor name as the parser would wire them."""
    typed = onnx.shape_inference.infer_shapes(model)
    kinds = {info.name: info.type.tensor_type.elem_type for info in typed.graph.value_info}
    constants = {init.name for init in model.graph.initializer}
    layers = []
    for node in model.graph.node:
        outputs = []
        for name in node.output:
            if name not in tensors:
                wanted = _ONNX_TYPES.get(kinds.get(name, onnx.TensorProto.FLOAT), "FLOAT")
                # TensorRT 8 has no INT64: its parser casts 64-bit integers down to INT32.
                dtype = ctx.member("DataType", wanted) or ctx.member("DataType", "INT32")
                tensors[name] = ctx.new("ITensor", name=name, shape=(), dtype=dtype, is_input=False, is_output=False)
            outputs.append(tensors[name])
        kind = ctx.member("LayerType", _LAYER_TYPES.get(node.op_type, "IDENTITY"))
        layers.append(
            ctx.new(
                "ILayer",
                name=node.name or f"node_of_{node.output[0]}",
                type=kind,
                tensors_in=[tensors[name] for name in node.input if name in tensors and name not in constants],
                tensors_out=outputs,
                precision=ctx.member("DataType", "FLOAT"),
                precision_set=False,
                output_types={},
            )
        )
    return layers


class _ImplOnnxParser:
    _readonly = frozenset({"num_errors"})

    def __init__(self, network: Any, logger: Any) -> None:
        _StandIn.__init__(self)
        self._network = _instance_arg(self._ctx, network, "INetworkDefinition", "OnnxParser")
        self._logger = _instance_arg(self._ctx, logger, "ILogger", "OnnxParser")
        self._errors: list[Any] = []

    num_errors = property(lambda self: len(self._errors))

    def get_error(self, index: int) -> Any:
        return self._errors[index] if 0 <= index < len(self._errors) else None

    def clear_errors(self) -> None:
        self._errors.clear()

    def parse(self, model: Any, path: str | None = None) -> bool:
        return _parse(self, bytes(memoryview(model)))

    def parse_from_file(self, model: str) -> bool:
        try:
            data = Path(model).read_bytes()
        except OSError as exc:
            self._error("MODEL_DESERIALIZE_FAILED", f"Failed to open file: {model} ({exc})")
            self._error("INVALID_GRAPH", f"Failed to parse ONNX model from file: {model}")
            return False
        return _parse(self, data)

    def _error(self, code: str, desc: str, node: int = -1, node_name: str = "", op: str = "") -> None:
        error = self._ctx.new("ParserError", code=code, desc=desc, node=node, node_name=node_name, op=op)
        self._errors.append(error)
        self._ctx.emit(self._logger, "ERROR", str(error))


class _ImplParserError:
    __init__ = _no_constructor

    def desc(self) -> str:
        return self._desc

    def code(self) -> Any:
        return self._ctx.enums["ErrorCode"][self._code]

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._node_name

    def node_operator(self) -> str:
        return self._op

    def file(self) -> str:
        return "ModelImporter.cpp"

    def func(self) -> str:
        return "parse"

    def line(self) -> int:
        return 0

    def __str__(self) -> str:
        return f"In node {self._node} ({self._op or 'parse'}): {self._code}: {self._desc}"

    __repr__ = __str__


def _parse(parser: Any, data: bytes) -> bool:
    ctx: _Context = parser._ctx
    network = parser._network
    if network._implicit_batch:
        parser._error(
            "INVALID_GRAPH",
            'Assertion failed: !mImporterCtx.network()->hasImplicitBatchDimension() && "This version of the ONNX '
            "parser only supports TensorRT INetworkDefinitions with an explicit batch dimension. Please ensure the "
            'network was initialized with an explicit batch dimension"',
        )
        return False
    before = len(parser._errors)
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        parser._error("MODEL_DESERIALIZE_FAILED", f"Failed to parse ONNX model: {exc}")
        parser._error("INVALID_GRAPH", "The ONNX model holds no graph to import")
        return False
    # One error per node TensorRT has no importer for, as the parser reports them all. An op
    # it has no importer for is looked up as a plugin; the 8.x parser registers TensorRT's
    # own plugins itself, 10.0 and later only find them after init_libnvinfer_plugins.
    if ctx.major < 10:
        ctx.plugins_registered = True
    plugins = []
    for index, node in enumerate(model.graph.node):
        if onnx.defs.has(node.op_type, node.domain):
            continue
        if node.op_type in PLUGIN_OPS and ctx.plugins_registered:
            plugins.append(node.op_type)
            continue
        parser._error(
            "UNSUPPORTED_NODE",
            f"No importer registered for op: {node.op_type}. Attempting to import as plugin. Assertion failed: "
            'creator && "Plugin not found, are the plugin name, version, and namespace correct?"',
            index,
            node.name,
            node.op_type,
        )
    # Plugin layers are opaque to onnx's checker and to onnxruntime.
    if not plugins and len(parser._errors) == before:
        try:
            onnx.checker.check_model(model)
        except Exception as exc:  # noqa: BLE001
            parser._error("INVALID_GRAPH", f"ONNX checker: {exc}")
        try:
            _ort_session(data)
        except Exception as exc:  # noqa: BLE001
            parser._error("INVALID_NODE", f"Model cannot be imported: {exc}")
    if len(parser._errors) > before:
        return False
    initializers = {init.name for init in model.graph.initializer}
    tensors: list[list[Any]] = [[], []]
    for is_input, infos in (
        (True, [i for i in model.graph.input if i.name not in initializers]),
        (False, model.graph.output),
    ):
        for info in infos:
            tensor_type = info.type.tensor_type
            dtype_name = _ONNX_TYPES.get(tensor_type.elem_type)
            dtype = ctx.member("DataType", dtype_name) if dtype_name else None
            if dtype is None:
                parser._error("UNSUPPORTED_GRAPH", f"{info.name}: ONNX type {tensor_type.elem_type} is not simulated")
                continue
            shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim)
            tensors[not is_input].append(
                ctx.new("ITensor", name=info.name, shape=shape, dtype=dtype, is_input=is_input, is_output=not is_input)
            )
    if len(parser._errors) > before:
        return False
    network._inputs[:], network._outputs[:] = tensors
    network._layers = _layers(ctx, model, {t.name: t for t in tensors[0] + tensors[1]})
    network._model = data
    network._has_qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)
    network._plugins = sorted(set(plugins))
    return True


class _ImplConfig:
    __init__ = _no_constructor
    _readonly = frozenset({"num_optimization_profiles"})

    def set_flag(self, flag: Any) -> None:
        self._flags |= 1 << int(_enum_arg(self._ctx, flag, "BuilderFlag", "set_flag"))

    def clear_flag(self, flag: Any) -> None:
        self._flags &= ~(1 << int(_enum_arg(self._ctx, flag, "BuilderFlag", "clear_flag")))

    def get_flag(self, flag: Any) -> bool:
        return bool(self._flags & (1 << int(_enum_arg(self._ctx, flag, "BuilderFlag", "get_flag"))))

    def _set_flags(self, value: int) -> None:
        self._flags = operator.index(value)

    flags = property(lambda self: self._flags, _set_flags)

    def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
        self._pools[_enum_arg(self._ctx, pool, "MemoryPoolType", "set_memory_pool_limit").name] = operator.index(
            pool_size
        )

    def get_memory_pool_limit(self, pool: Any) -> int:
        name = _enum_arg(self._ctx, pool, "MemoryPoolType", "get_memory_pool_limit").name
        # Unset, the workspace is the device's whole memory (8 GiB here).
        return self._pools.get(name, 8 << 30 if name == "WORKSPACE" else 0)

    def _set_workspace(self, value: int) -> None:
        self._pools["WORKSPACE"] = operator.index(value)

    # TensorRT 8's deprecated alias of the WORKSPACE pool limit.
    max_workspace_size = property(lambda self: self._pools.get("WORKSPACE", 8 << 30), _set_workspace)

    def _set_calibrator(self, value: Any) -> None:
        if value is not None:
            _instance_arg(self._ctx, value, "IInt8Calibrator", "int8_calibrator")
        self._calibrator = value

    int8_calibrator = property(lambda self: self._calibrator, _set_calibrator)

    def add_optimization_profile(self, profile: Any) -> int:
        self._profiles.append(_instance_arg(self._ctx, profile, "IOptimizationProfile", "add_optimization_profile"))
        return len(self._profiles) - 1

    num_optimization_profiles = property(lambda self: len(self._profiles))

    def set_calibration_profile(self, profile: Any) -> bool:
        self._calibration_profile = _instance_arg(self._ctx, profile, "IOptimizationProfile", "set_calibration_profile")
        return True

    def get_calibration_profile(self) -> Any:
        return self._calibration_profile

    def create_timing_cache(self, serialized_timing_cache: Any) -> Any:
        blob = bytes(memoryview(serialized_timing_cache))
        entries: list[str] = []
        if blob:
            try:
                if not blob.startswith(TIMING_MAGIC):
                    raise ValueError("bad magic")
                loaded = json.loads(blob[len(TIMING_MAGIC) :])
                if loaded["trt"] != self._ctx.full_version:
                    raise ValueError(f"made by TensorRT {loaded['trt']}")
                entries = list(loaded["entries"])
            except (ValueError, KeyError) as exc:
                # The stand-in has no logger here; the build's log says the cache started empty.
                self._ctx.log.append(("WARNING", f"timing cache blob ignored ({exc}); starting an empty cache"))
        return self._ctx.new("ITimingCache", entries=entries)

    def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
        self._timing_cache = _instance_arg(self._ctx, cache, "ITimingCache", "set_timing_cache")
        return True

    def get_timing_cache(self) -> Any:
        return self._timing_cache

    def _set_dla_core(self, value: int) -> None:
        self._dla_core = operator.index(value)

    DLA_core = property(lambda self: self._dla_core, _set_dla_core)

    def _set_device_type(self, value: Any) -> None:
        self._device_type = _enum_arg(self._ctx, value, "DeviceType", "default_device_type")

    default_device_type = property(lambda self: self._device_type, _set_device_type)

    def set_device_type(self, layer: Any, device_type: Any) -> None:
        _enum_arg(self._ctx, device_type, "DeviceType", "set_device_type")


class _ImplProfile:
    __init__ = _no_constructor

    def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:  # TensorRT's parameter names
        shapes = {"min": _dims(min), "opt": _dims(opt), "max": _dims(max)}
        previous: tuple[int, ...] | None = None
        for which, dims in shapes.items():
            # Checked in TensorRT's order: each of min, opt, max against the one before.
            bad = any(d < 0 for d in dims) or (
                previous is not None and (len(dims) != len(previous) or any(a < b for a, b in zip(dims, previous)))  # noqa: B905
            )
            if bad:
                message = f"{which} input provided to optimization profile is invalid"
                self._ctx.emit(
                    self._logger,
                    "ERROR",
                    f"{input}: {message}: min {shapes['min']} opt {shapes['opt']} max {shapes['max']}",
                )
                raise RuntimeError(message)
            previous = dims
        self._shapes[input] = [shapes["min"], shapes["opt"], shapes["max"]]

    def get_shape(self, input: str) -> list[tuple[int, ...]]:
        return list(self._shapes.get(input, []))

    def __bool__(self) -> bool:
        return True


class _ImplTimingCache:
    __init__ = _no_constructor

    def serialize(self) -> Any:
        data = {"trt": self._ctx.full_version, "entries": self._entries}
        return _host_memory(self._ctx, TIMING_MAGIC + json.dumps(data).encode())

    def reset(self) -> bool:
        self._entries.clear()
        return True


class _ImplCalibrator:
    """The bases' own methods; get_batch & co. stay unsimulated (pure virtual in TensorRT)."""

    def get_algorithm(self) -> Any:
        name = {
            "IInt8EntropyCalibrator": "ENTROPY_CALIBRATION",
            "IInt8EntropyCalibrator2": "ENTROPY_CALIBRATION_2",
            "IInt8MinMaxCalibrator": "MINMAX_CALIBRATION",
            "IInt8LegacyCalibrator": "LEGACY_CALIBRATION",
        }.get(_owner(type(self)).__name__)
        if name is None:
            raise NotImplementedError("Tried to call pure virtual function IInt8Calibrator::getAlgorithm")
        return self._ctx.enums["CalibrationAlgoType"][name]


class _ImplHostMemory:
    """bytes underneath (Python 3.8 can only offer the buffer protocol that way), bytes' API hidden."""

    __init__ = _no_constructor
    _readonly = frozenset({"dtype", "nbytes"})
    dtype = property(lambda self: self._ctx.enums["DataType"].UINT8)
    nbytes = property(lambda self: bytes.__len__(self))

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_") and name not in type(self)._surface:
            raise AttributeError(_missing(type(self), name))
        return object.__getattribute__(self, name)

    def __len__(self) -> int:
        raise TypeError("object of type 'IHostMemory' has no len(); use .nbytes")

    def __iter__(self) -> Any:
        raise TypeError("'IHostMemory' object is not iterable; use bytes(memory)")

    def __getitem__(self, key: Any) -> Any:
        raise TypeError("'IHostMemory' object is not subscriptable; use bytes(memory)")

    def __eq__(self, other: Any) -> bool:
        return self is other  # a pybind11 object compares by identity

    def __ne__(self, other: Any) -> bool:
        return self is not other

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"<tensorrt.IHostMemory object, {bytes.__len__(self)} bytes>"


def _host_memory(ctx: _Context, data: bytes) -> Any:
    cls = ctx.classes["IHostMemory"]
    return bytes.__new__(cls, data)


def _build(ctx: _Context, logger: Any, network: Any, config: Any) -> Any:
    inputs, outputs = network._inputs, network._outputs
    if not outputs or not hasattr(network, "_model"):
        return ctx.fail(logger, "Network must have at least one output (was the ONNX model parsed?)")
    flag_names = {m.name for m in ctx.enums["BuilderFlag"] if config._flags & (1 << int(m))}
    typed = ctx.member("NetworkDefinitionCreationFlag", "STRONGLY_TYPED")
    strongly_typed = typed is not None and bool(network._flags & (1 << int(typed)))
    if strongly_typed and flag_names & _TYPED_PRECISION_FLAGS:
        return ctx.fail(
            logger,
            f"Error Code 3: API Usage Error (BuilderFlag {sorted(flag_names & _TYPED_PRECISION_FLAGS)} "
            "cannot be set for a strongly typed network; its types come from the model)",
        )
    static = {t.name: t.shape for t in inputs}
    profiles: list[dict[str, list[tuple[int, ...]]]] = []
    if any(-1 in shape for shape in static.values()) and not config._profiles:
        return ctx.fail(logger, "Network has dynamic or shape inputs, but no optimization profile has been defined.")
    for index, profile in enumerate(config._profiles or [None]):
        resolved, problem = _resolve_profile(static, profile._shapes if profile is not None else {}, index)
        if problem:
            return ctx.fail(logger, problem)
        profiles.append(resolved)
    calibration: dict[str, Any] | None = None
    if "INT8" in flag_names:
        if config._calibrator is not None:
            calibration = _calibrate(ctx, logger, network, config, profiles)
            if calibration is None:
                return None
        elif not network._has_qdq:
            ctx.emit(
                logger,
                "WARNING",
                "Calibrator is not being used. Users must provide dynamic range for all tensors that are not Int32 "
                "or Bool.",
            )
            return ctx.fail(logger, "Error Code 4: Internal Error (" + _NO_CALIBRATION + ")")
    # Layer precisions bind only under a precision-constraints flag; without one TensorRT warns and ignores them.
    constrained = {layer.name: layer.precision.name for layer in network._layers if layer._precision_set}
    floating = {"FLOAT", "HALF", "BF16"}
    obey = "OBEY_PRECISION_CONSTRAINTS" in flag_names
    for layer in network._layers:
        integer = [t.name for t in layer._tensors_out if t.dtype.name not in floating]
        if obey and layer._precision_set and layer.precision.name in floating and integer:
            return ctx.fail(
                logger,
                f"Error Code 4: Internal Error ({layer.name}: could not find any implementation for node "
                f"{layer.name} with precision {layer.precision.name}: its output {integer[0]} is not floating point)",
            )
    if constrained and not flag_names & {"OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS"}:
        ctx.emit(
            logger,
            "WARNING",
            "Layer precisions were set but neither OBEY_PRECISION_CONSTRAINTS nor PREFER_PRECISION_CONSTRAINTS "
            "is set; the precisions are ignored.",
        )
        constrained = {}
    on_dla = config._device_type.name == "DLA"
    if on_dla and not 0 <= config._dla_core < 2:
        return ctx.fail(logger, f"DLA core {config._dla_core} requested; this device has 2")
    # The timing cache keeps one entry per (model, flags): a rebuild shows it was reused.
    key = hashlib.sha256(network._model + str(sorted(flag_names)).encode()).hexdigest()[:16]
    cache = config._timing_cache
    reused = False
    if cache is not None and "DISABLE_TIMING_CACHE" not in flag_names:
        reused = key in cache._entries
        if not reused:
            cache._entries.append(key)
    engine = {
        "trt": ctx.full_version,
        "inputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype.name} for t in inputs],
        "outputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype.name} for t in outputs],
        "profiles": [{name: [list(s) for s in shapes] for name, shapes in p.items()} for p in profiles],
        "flags": sorted(flag_names),
        "strongly_typed": strongly_typed,
        "has_qdq": network._has_qdq,
        "plugins": network._plugins,
        "calibration": calibration,
        "timing_cache_reused": reused,
        "precision_constraints": constrained,
        "device": "DLA" if on_dla else "GPU",
        "dla_core": config._dla_core if on_dla else -1,
        "workspace": config._pools.get("WORKSPACE"),
        "onnx": base64.b64encode(network._model).decode(),
    }
    return _host_memory(ctx, ENGINE_MAGIC + json.dumps(engine).encode())


def _resolve_profile(
    static: dict[str, tuple[int, ...]], shapes: dict[str, list[tuple[int, ...]]], index: int
) -> tuple[dict[str, list[tuple[int, ...]]], str]:
    resolved: dict[str, list[tuple[int, ...]]] = {}
    unknown = sorted(set(shapes) - set(static))
    if unknown:
        return resolved, f"Optimization profile {index} sets shapes of {unknown}, which are not network inputs"
    for name, shape in static.items():
        given = shapes.get(name)
        if given is None:
            if -1 in shape:
                return resolved, f"{name}: dynamic input is missing dimensions in profile {index}."
            given = [shape, shape, shape]
        for dims in given:
            if len(dims) != len(shape) or any(d != -1 and d != s for d, s in zip(shape, dims)):  # noqa: B905
                return resolved, (
                    f"{name}: profile {index} dimensions {list(dims)} do not match the network definition {list(shape)}"
                )
        resolved[name] = list(given)
    return resolved, ""


def _calibrate(
    ctx: _Context, logger: Any, network: Any, config: Any, profiles: list[dict[str, list[tuple[int, ...]]]]
) -> dict[str, Any] | None:
    """TensorRT's calibration protocol, with per-tensor absmax standing in for the histograms."""
    calibrator = config._calibrator
    algorithm = ctx.callback(calibrator, "get_algorithm")
    cache = ctx.callback(calibrator, "read_calibration_cache")
    if cache is not None:
        try:
            cache = bytes(memoryview(cache))
        except TypeError as exc:
            print(f"[ERROR] Exception caught in read_calibration_cache(): {exc}", file=sys.stderr)
            ctx.log.append(("STDERR", f"Exception caught in read_calibration_cache(): {exc}"))
            cache = None
    if cache:
        return {"source": "cache", "batches": 0, "cache_sha256": hashlib.sha256(cache).hexdigest()}
    ctx.callback(calibrator, "get_batch_size", default=-1)
    # Batches have the calibration profile's OPT shape (profile 0 when none was set).
    shapes = {name: dims[1] for name, dims in profiles[0].items()}
    chosen = config._calibration_profile
    if chosen is not None:
        shapes = {name: chosen._shapes.get(name, [dims] * 3)[1] for name, dims in shapes.items()}
    elif any(-1 in t.shape for t in network._inputs):
        ctx.emit(logger, "WARNING", "Calibration Profile is not defined. Calibrating with Profile 0")
    names = [t.name for t in network._inputs]
    absmax = {name: 0.0 for name in names}
    # Digests of every image TensorRT read, to tell how many distinct images calibrated it.
    seen: dict[str, set[str]] = {name: set() for name in names}
    batches = 0
    while True:
        result = ctx.callback(calibrator, "get_batch", names)
        if result is None or len(result) == 0:
            break
        try:
            pointers = [operator.index(p) for p in result]
        except TypeError as exc:
            print(f"[ERROR] Exception caught in get_batch(): {exc}", file=sys.stderr)
            ctx.log.append(("STDERR", f"Exception caught in get_batch(): {exc}"))
            break
        if len(pointers) != len(names):
            return ctx.fail(logger, f"get_batch returned {len(pointers)} pointers for the {len(names)} inputs {names}")
        for tensor, pointer in zip(network._inputs, pointers):  # noqa: B905
            dtype = np.dtype(_NUMPY_TYPES[tensor.dtype.name])
            shape = shapes[tensor.name]
            nbytes = _volume(shape) * dtype.itemsize
            try:
                raw = ctx.cuda.read(pointer, nbytes)
            except (TypeError, ValueError, RuntimeError) as exc:
                return ctx.fail(
                    logger,
                    f"Calibration batch for {tensor.name!r} ({nbytes} bytes, shape {list(shape)}) cannot be read at "
                    f"{pointer:#x}: {exc}. Calibration input data size must match the calibration profile's OPT shape.",
                )
            values = np.frombuffer(raw, dtype=dtype)
            absmax[tensor.name] = max(absmax[tensor.name], float(np.max(np.abs(values))) if values.size else 0.0)
            for image in values.reshape(shape):
                seen[tensor.name].add(hashlib.sha256(image.tobytes()).hexdigest())
        batches += 1
    if batches == 0:
        return ctx.fail(logger, "Error Code 4: Internal Error (" + _NO_CALIBRATION + ")")
    algorithm_name = algorithm.name if isinstance(algorithm, enum.Enum) else str(algorithm)
    table = {"trt": ctx.full_version, "algorithm": algorithm_name, "absmax": absmax}
    ctx.callback(
        calibrator, "write_calibration_cache", memoryview(CALIB_MAGIC + json.dumps(table, sort_keys=True).encode())
    )
    return {
        "source": "batches",
        "batches": batches,
        "batch_shape": {name: list(shapes[name]) for name in names},
        "images": len(seen[names[0]]),
        "absmax": absmax,
    }


# -- behaviour: runtime and execution ---------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _ort_session(model: bytes) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # TensorRT's INT8 is exact integer arithmetic; onnxruntime's fused x86 kernels may saturate.
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    return onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


class _ImplRuntime:
    def __init__(self, logger: Any) -> None:
        _StandIn.__init__(self)
        self._logger = _instance_arg(self._ctx, logger, "ILogger", "Runtime")
        self._dla_core = -1
        if os.environ.get("CUDA_MODULE_LOADING") != "LAZY":
            # What TensorRT 8.5 and later say on every runtime a process makes.
            self._ctx.emit(self._logger, "WARNING", _LAZY_LOADING)

    def deserialize_cuda_engine(self, serialized_engine: Any) -> Any:
        ctx = self._ctx
        data = bytes(memoryview(serialized_engine))
        try:
            info = read_engine(data)
        except ValueError:
            return ctx.fail(
                self._logger,
                "1: [stdArchiveReader.cpp::StdArchiveReader::32] Error Code 1: Serialization (Serialization "
                "assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match)",
            )
        if info.get("trt") != ctx.full_version:
            return ctx.fail(
                self._logger,
                "The engine plan file is not compatible with this version of TensorRT, expecting library version "
                f"{ctx.full_version} got {info.get('trt')}, please rebuild.",
            )
        if info.get("plugins") and not ctx.plugins_registered:
            return ctx.fail(
                self._logger,
                "[pluginV2Runner.cpp::load::303] Error Code 1: Serialization (Serialization assertion creator "
                "failed.Cannot deserialize plugin since corresponding IPluginCreator not found in Plugin Registry)",
            )
        tensors = {t["name"]: dict(t, mode="INPUT") for t in info["inputs"]}
        tensors.update({t["name"]: dict(t, mode="OUTPUT") for t in info["outputs"]})
        # A DLA engine runs on the runtime's core; the runtime's default, -1, means core 0.
        dla_core = max(self._dla_core, 0) if info.get("device") == "DLA" else -1
        return ctx.new(
            "ICudaEngine", info=info, data=data, tensors=tensors, logger=self._logger, resolved={}, dla_core=dla_core
        )

    def _set_dla_core(self, value: int) -> None:
        self._dla_core = operator.index(value)

    DLA_core = property(lambda self: self._dla_core, _set_dla_core)


class _ImplEngine:
    __init__ = _no_constructor
    _readonly = frozenset({"num_io_tensors", "num_optimization_profiles"})
    num_io_tensors = property(lambda self: len(self._tensors))
    num_optimization_profiles = property(lambda self: len(self._info["profiles"]))

    def get_tensor_name(self, index: int) -> Any:
        names = list(self._tensors)
        if not 0 <= index < len(names):
            return self._ctx.fail(self._logger, f"getIOTensorName: index {index} out of range [0, {len(names)})")
        return names[index]

    def _tensor(self, name: str, what: str) -> dict[str, Any] | None:
        tensor = self._tensors.get(name)
        if tensor is None:
            self._ctx.emit(self._logger, "ERROR", f"{what}: Error Code 3: API Usage Error (no tensor named {name!r})")
        return tensor

    def get_tensor_mode(self, name: str) -> Any:
        tensor = self._tensor(name, "getTensorIOMode")
        return self._ctx.enums["TensorIOMode"][tensor["mode"] if tensor else "NONE"]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        tensor = self._tensor(name, "getTensorShape")
        return tuple(tensor["shape"]) if tensor else ()

    def get_tensor_dtype(self, name: str) -> Any:
        tensor = self._tensor(name, "getTensorDataType")
        return self._ctx.enums["DataType"][tensor["dtype"] if tensor else "FLOAT"]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
        tensor = self._tensor(name, "getProfileShape")
        if tensor is None or tensor["mode"] != "INPUT" or not 0 <= profile_index < len(self._info["profiles"]):
            self._ctx.emit(self._logger, "ERROR", f"getProfileShape: no profile {profile_index} shapes for {name!r}")
            return []
        return [tuple(dims) for dims in self._info["profiles"][profile_index][name]]

    def create_execution_context(self) -> Any:
        return self._ctx.new("IExecutionContext", engine=self, shapes={}, addresses={})

    def serialize(self) -> Any:
        return _host_memory(self._ctx, self._data)

    def _run_shapes(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """Output shapes for these input shapes, found by running the model on zeros once."""
        key = tuple(sorted(shapes.items()))
        if key not in self._resolved:
            model = base64.b64decode(self._info["onnx"])
            feeds = {
                t["name"]: np.zeros(shapes[t["name"]], dtype=_NUMPY_TYPES[t["dtype"]]) for t in self._info["inputs"]
            }
            names = [t["name"] for t in self._info["outputs"]]
            results = _ort_session(model).run(names, feeds)
            self._resolved[key] = {name: tuple(result.shape) for name, result in zip(names, results)}  # noqa: B905
        return self._resolved[key]


class _ImplContext:
    __init__ = _no_constructor
    _readonly = frozenset({"engine", "all_binding_shapes_specified"})
    engine = property(lambda self: self._engine)

    def _input_shapes(self) -> dict[str, tuple[int, ...]] | None:
        shapes = {}
        for tensor in self._engine._info["inputs"]:
            shape = self._shapes.get(tensor["name"], tuple(tensor["shape"]))
            if -1 in shape:
                return None
            shapes[tensor["name"]] = shape
        return shapes

    all_binding_shapes_specified = property(lambda self: self._input_shapes() is not None)

    def set_input_shape(self, name: str, shape: Any) -> bool:
        engine, logger = self._engine, self._engine._logger
        tensor = engine._tensors.get(name)
        if tensor is None or tensor["mode"] != "INPUT":
            return bool(self._ctx.fail(logger, f"setInputShape: {name!r} is not an input tensor"))
        dims = _dims(shape)
        low, _, high = engine._info["profiles"][0][name]
        declared = tensor["shape"]
        if len(dims) != len(declared) or any(d != -1 and d != s for d, s in zip(declared, dims)):  # noqa: B905
            return bool(
                self._ctx.fail(
                    logger, f"setInputShape: static dimension mismatch for {name}: {list(dims)} vs {declared}"
                )
            )
        if any(not lo <= s <= hi for lo, s, hi in zip(low, dims, high)):  # noqa: B905
            return bool(
                self._ctx.fail(
                    logger, f"setInputShape: {name} {list(dims)} is outside the profile [{list(low)}, {list(high)}]"
                )
            )
        self._shapes[name] = dims
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        tensor = self._engine._tensors.get(name)
        if tensor is None:
            self._ctx.emit(self._engine._logger, "ERROR", f"getTensorShape: no tensor named {name!r}")
            return ()
        if tensor["mode"] == "INPUT":
            return self._shapes.get(name, tuple(tensor["shape"]))
        shapes = self._input_shapes()
        if shapes is None:
            return tuple(tensor["shape"])
        # Inputs have only a dynamic batch, so any other unknown output dimension depends on
        # the data (NonZero, NMS): TensorRT reports it as -1 until an output allocator ran.
        resolved = self._engine._run_shapes(shapes)[name]
        return tuple(
            -1 if index > 0 and declared == -1 else size
            for index, (declared, size) in enumerate(zip(tensor["shape"], resolved))  # noqa: B905
        )

    def set_tensor_address(self, name: str, memory: int) -> bool:
        if name not in self._engine._tensors:
            return bool(self._ctx.fail(self._engine._logger, f"setTensorAddress: no tensor named {name!r}"))
        self._addresses[name] = operator.index(memory)
        return True

    def get_tensor_address(self, name: str) -> int:
        return self._addresses.get(name, 0)

    def execute_async_v3(self, stream_handle: int) -> bool:
        ctx, engine = self._ctx, self._engine
        handle = operator.index(stream_handle)  # a stream object, not its handle, is a TypeError
        shapes = self._input_shapes()
        if shapes is None:
            return bool(ctx.fail(engine._logger, "enqueueV3: not all input shapes are specified (set_input_shape)"))
        for name, tensor in engine._tensors.items():
            if name not in self._addresses:
                return bool(
                    ctx.fail(
                        engine._logger,
                        "IExecutionContext::enqueueV3: Error Code 3: API Usage Error (Neither address or allocator "
                        f"is set for {tensor['mode'].lower()} tensor {name}. Call setTensorAddress before "
                        "enqueue/execute.)",
                    )
                )
        output_shapes = engine._run_shapes(shapes)
        plan = []
        for name, tensor in engine._tensors.items():
            shape = shapes[name] if tensor["mode"] == "INPUT" else output_shapes[name]
            dtype = np.dtype(_NUMPY_TYPES[tensor["dtype"]])
            nbytes = _volume(shape) * dtype.itemsize
            size = ctx.cuda.allocation_size(self._addresses[name])
            if nbytes > size:
                raise ValueError(f"execute_async_v3: {name} needs {nbytes} bytes, its buffer has {size}")
            plan.append((name, tensor["mode"], self._addresses[name], shape, dtype, nbytes))
        model = base64.b64decode(engine._info["onnx"])

        def run() -> None:
            feeds = {
                name: np.frombuffer(ctx.cuda.read(ptr, nbytes), dtype=dtype).reshape(shape)
                for name, mode, ptr, shape, dtype, nbytes in plan
                if mode == "INPUT"
            }
            outputs = [p for p in plan if p[1] == "OUTPUT"]
            results = _ort_session(model).run([p[0] for p in outputs], feeds)
            for (_, _, ptr, _, dtype, _), result in zip(outputs, results):  # noqa: B905
                ctx.cuda.write(ptr, np.ascontiguousarray(result, dtype=dtype).tobytes())

        inputs = tuple(p[2] for p in plan if p[1] == "INPUT")
        outputs = tuple(p[2] for p in plan if p[1] == "OUTPUT")
        ctx.cuda.enqueue(handle, "execute_async_v3", run, writes=outputs, reads=inputs)
        return True


# Behaviour per class name; a name is copied onto a release's class only if its surface has it.
_IMPLS: dict[str, type] = {
    "Logger": _ImplLogger,
    "Builder": _ImplBuilder,
    "INetworkDefinition": _ImplNetwork,
    "ITensor": _ImplTensor,
    "ILayer": _ImplLayer,
    "OnnxParser": _ImplOnnxParser,
    "ParserError": _ImplParserError,
    "IBuilderConfig": _ImplConfig,
    "IOptimizationProfile": _ImplProfile,
    "ITimingCache": _ImplTimingCache,
    "IInt8Calibrator": _ImplCalibrator,
    "IInt8EntropyCalibrator": _ImplCalibrator,
    "IInt8EntropyCalibrator2": _ImplCalibrator,
    "IInt8MinMaxCalibrator": _ImplCalibrator,
    "IInt8LegacyCalibrator": _ImplCalibrator,
    "IHostMemory": _ImplHostMemory,
    "Runtime": _ImplRuntime,
    "ICudaEngine": _ImplEngine,
    "IExecutionContext": _ImplContext,
}
# Python bases for classes without surface bases; IHostMemory is a buffer.
_IMPL_BASES: dict[str, tuple[type, ...]] = {"IHostMemory": (_StandIn, bytes)}
