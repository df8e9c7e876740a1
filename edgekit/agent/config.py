"""The two files the camera service runs from, checked before anything is opened.

The site config (/etc/edgekit/camera.json) belongs to the device: camera, result files.
The release file (<release_dir>/release.json) ships with each model, so switching the
``current`` link swaps model, labels and preprocessing together.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, NamedTuple, Sequence, TypeVar

from .errors import AgentError
from .preprocess import PreprocessSpec

PRECISIONS = ("int8", "fp16", "fp32")
# How a build gets INT8: TensorRT's calibrator (8.5-10.x), an explicit Q/DQ model built
# strongly typed (TensorRT 11, onnxruntime), or not at all (no fast INT8 on the GPU).
INT8_PATHS = ("calibrator", "qdq", "none")
# How the TensorRT backend reaches CUDA: ctypes over libcudart, or pycuda where a device has it.
CUDA_SEAMS = ("cudart", "pycuda")
TASKS = ("classify", "detect", "pose", "segment", "raw")
# Tasks whose output is boxes (pose adds keypoints, segment a mask outline to each): they are
# gated on matched boxes and keep their head's decode out of INT8.
BOX_TASKS = ("detect", "pose", "segment")
DROP_POLICIES = ("latest", "every")
RTSP_DECODES = ("hardware", "software")
RTSP_CODECS = ("h264", "h265")
RELEASE_FILE = "release.json"
# One .npy array [N, ...] in the model input's dtype, which the builder memory-maps.
CALIBRATION_FILE = "calib.npy"
MAX_PORT = 65535
_REQUIRED = object()
T = TypeVar("T")


class SourceConfig(NamedTuple):
    uri: str
    loop: bool = False
    realtime: bool = False
    # "latest" keeps only the newest frame (cameras), "every" hands over each one (files);
    # None picks by source: live sources drop, files do not.
    drop: str | None = None
    # A read or open that takes longer counts as a lost source (cv2 can block for ever).
    read_timeout_s: float = 5.0
    codec: str = "h264"


class CameraConfig(NamedTuple):
    """The profile's camera settings, as merged by the host (see edgekit/profiles.py)."""

    csi_pipeline: str = ""
    rtsp_decode: str = "software"
    rtsp_decoder: str = ""
    width: int = 1280
    height: int = 720
    fps: int = 30


class ResultsConfig(NamedTuple):
    path: str
    max_bytes: int
    backups: int


class HttpSinkConfig(NamedTuple):
    url: str
    timeout_s: float = 5.0
    queue: int = 256


class MqttSinkConfig(NamedTuple):
    host: str
    port: int = 1883
    topic: str = "edgekit/results"
    client_id: str = "edgekit-camera"
    keepalive_s: int = 30
    queue: int = 256


class MetricsConfig(NamedTuple):
    # Loopback only: the metrics are for the device's own scraper or an SSH tunnel.
    port: int = 9464


class SamplesConfig(NamedTuple):
    """The ring of frames kept for recalibration (edgekit calibrate --from-device)."""

    dir: str = "/var/lib/edgekit/samples"
    every_s: float = 10.0
    keep: int = 200


class SiteConfig(NamedTuple):
    path: str
    release_dir: str
    source: SourceConfig
    camera: CameraConfig
    results: ResultsConfig
    topk: int
    http: HttpSinkConfig | None = None
    mqtt: MqttSinkConfig | None = None
    metrics: MetricsConfig | None = MetricsConfig()
    samples: SamplesConfig | None = SamplesConfig()


class BuildConfig(NamedTuple):
    """How the device turns the release's ONNX into an engine (the host's merged settings)."""

    int8: str
    workspace_mib: int
    dla_core: int | None
    cuda: str = "cudart"


class DetectConfig(NamedTuple):
    """How a detection head is decoded; from the model's metadata, so it ships with the model."""

    head: str
    conf: float = 0.25
    iou: float = 0.45
    max_det: int = 100
    # Pose: keypoints per box and values per keypoint (x, y and, with 3, a visibility score),
    # Ultralytics' kpt_shape; they follow the class scores in each column.
    kpt_shape: tuple[int, int] | None = None
    # Segment: mask coefficients per box, one per prototype in the model's second output.
    masks: int = 0

    @property
    def extra(self) -> int:
        """Values each column carries after its class scores."""
        keypoints = self.kpt_shape[0] * self.kpt_shape[1] if self.kpt_shape else 0
        return keypoints + self.masks


class Release(NamedTuple):
    path: str
    release_dir: str
    release: str
    backend: str
    model_path: str
    precision: str
    build: BuildConfig
    task: str
    labels: list[str]
    preprocess: PreprocessSpec
    detect: DetectConfig | None = None
    # Nodes --mixed-precision auto kept out of INT8: TensorRT's calibrator path builds them at FP16.
    half_layers: tuple[str, ...] = ()

    @property
    def calibration_path(self) -> str:
        return os.path.join(self.release_dir, CALIBRATION_FILE)


class _Reader:
    """Reads typed keys from one JSON object, naming the file and key in every error."""

    def __init__(self, path: str, data: dict[str, Any], prefix: str = "") -> None:
        self.path = path
        self.data = data
        self.prefix = prefix

    def fail(self, key: str, problem: str) -> AgentError:
        return AgentError("config", f"{self.path}: key {self.prefix + key!r} {problem}.")

    def value(self, key: str, kind: type | tuple[type, ...], description: str, default: Any = _REQUIRED) -> Any:
        if key not in self.data:
            if default is _REQUIRED:
                raise self.fail(key, "is missing")
            return default
        value = self.data[key]
        # bool is an int subclass, but a JSON true where a count belongs is a mistake.
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.fail(key, f"must be {description}, not {json.dumps(value)}")
        return value

    def text(self, key: str) -> str:
        value: str = self.value(key, str, "a string")
        if not value:
            raise self.fail(key, "must not be empty")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value: bool = self.value(key, bool, "true or false", default)
        return value

    def integer(self, key: str, minimum: int, maximum: int | None = None) -> int:
        value: int = self.value(key, int, "an integer")
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise self.fail(key, f"must be {bounds}, not {value}")
        return value

    def number(self, key: str, minimum: float, default: float, maximum: float | None = None) -> float:
        value = self.value(key, (int, float), "a number", default)
        # json.load accepts NaN and Infinity, which pass every comparison below.
        if not math.isfinite(value):
            raise self.fail(key, f"must be a finite number, not {value}")
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise self.fail(key, f"must be {bounds}, not {value}")
        return float(value)

    def integer_or(self, key: str, minimum: int, default: int, maximum: int | None = None) -> int:
        return default if key not in self.data else self.integer(key, minimum, maximum)

    def text_or(self, key: str, default: str) -> str:
        return default if key not in self.data else self.text(key)

    def choice_or(self, key: str, choices: Sequence[str], default: str | None) -> str | None:
        return default if self.data.get(key) is None else self.choice(key, choices)

    def only(self, known: Sequence[str]) -> _Reader:
        """Refuses a key this section does not have: a misspelt one would silently be a default."""
        for key in self.data:
            if key not in known:
                raise self.fail(key, f"is not a known key (known: {', '.join(known)})")
        return self

    def optional_section(self, key: str) -> _Reader | None:
        return None if self.data.get(key) is None else self.section(key)

    def optional_integer(self, key: str, minimum: int) -> int | None:
        if self.data.get(key) is None:
            return None
        return self.integer(key, minimum)

    def choice(self, key: str, choices: Sequence[str]) -> str:
        value = self.text(key)
        if value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    def section(self, key: str) -> _Reader:
        data: dict[str, Any] = self.value(key, dict, "an object")
        return _Reader(self.path, data, self.prefix + key + ".")


def _load_json(path: str) -> _Reader:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise AgentError("config", f"The config file {path} does not exist.") from None
    except OSError as exc:
        raise AgentError("config", f"Could not read {path}: {exc.strerror}.") from None
    except ValueError as exc:
        raise AgentError("config", f"{path} is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise AgentError("config", f"{path} must hold a JSON object.")
    return _Reader(path, data)


def load_site_config(path: str) -> SiteConfig:
    reader = _load_json(path).only(SiteConfig._fields[1:])
    source = reader.section("source").only(SourceConfig._fields)
    results = reader.section("results").only(ResultsConfig._fields)
    camera = reader.optional_section("camera")
    return SiteConfig(
        path=path,
        release_dir=reader.text("release_dir"),
        source=SourceConfig(
            uri=source.text("uri"),
            loop=source.flag("loop", False),
            realtime=source.flag("realtime", False),
            drop=source.choice_or("drop", DROP_POLICIES, None),
            read_timeout_s=source.number("read_timeout_s", 0.1, SourceConfig(uri="").read_timeout_s),
            codec=source.choice_or("codec", RTSP_CODECS, "h264") or "h264",
        ),
        camera=_camera(camera) if camera is not None else CameraConfig(),
        results=ResultsConfig(
            path=results.text("path"),
            max_bytes=results.integer("max_bytes", 1),
            backups=results.integer("backups", 0),
        ),
        topk=reader.integer("topk", 1),
        http=_optional(reader, "http", _http),
        mqtt=_optional(reader, "mqtt", _mqtt),
        metrics=_optional(reader, "metrics", _metrics, MetricsConfig()),
        samples=_optional(reader, "samples", _samples, SamplesConfig()),
    )


def _optional(reader: _Reader, key: str, parse: Callable[[_Reader], T], default: T | None = None) -> T | None:
    """A section that may be absent (the default) or null (switched off)."""
    if key not in reader.data:
        return default
    section = reader.optional_section(key)
    return None if section is None else parse(section)


def _camera(section: _Reader) -> CameraConfig:
    section.only(CameraConfig._fields)
    defaults = CameraConfig()
    return CameraConfig(
        csi_pipeline=section.text_or("csi_pipeline", defaults.csi_pipeline),
        rtsp_decode=section.choice_or("rtsp_decode", RTSP_DECODES, defaults.rtsp_decode) or defaults.rtsp_decode,
        rtsp_decoder=section.text_or("rtsp_decoder", defaults.rtsp_decoder),
        width=section.integer_or("width", 1, defaults.width),
        height=section.integer_or("height", 1, defaults.height),
        fps=section.integer_or("fps", 1, defaults.fps),
    )


def _http(section: _Reader) -> HttpSinkConfig:
    section.only(HttpSinkConfig._fields)
    defaults = HttpSinkConfig(url="")
    url = section.text("url")
    if not url.startswith(("http://", "https://")):
        raise section.fail("url", f"must be an http:// or https:// URL, not {url!r}")
    return HttpSinkConfig(
        url=url,
        timeout_s=section.number("timeout_s", 0.1, defaults.timeout_s),
        queue=section.integer_or("queue", 1, defaults.queue),
    )


def _mqtt(section: _Reader) -> MqttSinkConfig:
    section.only(MqttSinkConfig._fields)
    defaults = MqttSinkConfig(host="")
    return MqttSinkConfig(
        host=section.text("host"),
        port=section.integer_or("port", 1, defaults.port, MAX_PORT),
        topic=section.text_or("topic", defaults.topic),
        client_id=section.text_or("client_id", defaults.client_id),
        # MQTT carries the keepalive in two bytes.
        keepalive_s=section.integer_or("keepalive_s", 0, defaults.keepalive_s, 65535),
        queue=section.integer_or("queue", 1, defaults.queue),
    )


def _metrics(section: _Reader) -> MetricsConfig:
    section.only(MetricsConfig._fields)
    return MetricsConfig(port=section.integer_or("port", 1, MetricsConfig().port, MAX_PORT))


def _samples(section: _Reader) -> SamplesConfig:
    section.only(SamplesConfig._fields)
    defaults = SamplesConfig()
    return SamplesConfig(
        dir=section.text_or("dir", defaults.dir),
        every_s=section.number("every_s", 0.0, defaults.every_s),
        keep=section.integer_or("keep", 1, defaults.keep),
    )


def _detect(section: _Reader) -> DetectConfig:
    from .detect import FORMATS

    defaults = DetectConfig(head="")
    kpt_shape = section.value("kpt_shape", (list, type(None)), "[keypoints, 2 or 3] or null", None)
    if kpt_shape is not None and not (
        len(kpt_shape) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in kpt_shape)
        and kpt_shape[0] >= 1
        and kpt_shape[1] in (2, 3)
    ):
        raise section.fail("kpt_shape", f"must be [keypoints, 2 or 3], not {json.dumps(kpt_shape)}")
    return DetectConfig(
        head=section.choice("head", FORMATS),
        conf=section.number("conf", 0.0, defaults.conf, 1.0),
        iou=section.number("iou", 0.0, defaults.iou, 1.0),
        max_det=section.integer_or("max_det", 1, defaults.max_det),
        kpt_shape=None if kpt_shape is None else (kpt_shape[0], kpt_shape[1]),
        masks=section.integer_or("masks", 0, defaults.masks),
    )


def _half_layers(reader: _Reader) -> tuple[str, ...]:
    mixed = reader.optional_section("mixed_precision")
    if mixed is None:
        return ()
    nodes = mixed.value("nodes", list, "a list of node names")
    if not all(isinstance(node, str) and node for node in nodes):
        raise mixed.fail("nodes", "must hold only node names")
    return tuple(nodes)


def load_release(release_dir: str) -> Release:
    path = os.path.join(release_dir, RELEASE_FILE)
    reader = _load_json(path)
    labels = reader.value("labels", list, "a list of strings")
    if not all(isinstance(label, str) for label in labels):
        raise reader.fail("labels", "must hold only strings")
    build = reader.section("build")
    task = reader.choice("task", TASKS)
    detect = reader.optional_section("detect")
    if task in BOX_TASKS and detect is None:
        raise reader.fail("detect", "is missing; a detection release names its head (yolov5 or yolov8)")
    preprocess_data = reader.value("preprocess", dict, "an object")
    try:
        preprocess = PreprocessSpec.from_dict(preprocess_data)
    except (TypeError, ValueError) as exc:
        raise reader.fail("preprocess", f"is invalid: {exc}") from None
    return Release(
        path=path,
        release_dir=release_dir,
        release=reader.text("release"),
        backend=reader.text("backend"),
        # Relative to the release so a release folder can be moved or linked as a whole.
        model_path=os.path.join(release_dir, reader.text("model")),
        precision=reader.choice("precision", PRECISIONS),
        build=BuildConfig(
            int8=build.choice("int8", INT8_PATHS),
            workspace_mib=build.integer("workspace_mib", 0),
            dla_core=build.optional_integer("dla_core", 0),
            cuda=build.choice_or("cuda", CUDA_SEAMS, "cudart") or "cudart",
        ),
        task=task,
        labels=list(labels),
        preprocess=preprocess,
        detect=_box_head(task, detect, reader),
        half_layers=_half_layers(reader),
    )


def _box_head(task: str, section: _Reader | None, reader: _Reader) -> DetectConfig | None:
    if task not in BOX_TASKS or section is None:
        return None
    head = _detect(section)
    if task == "pose" and (head.kpt_shape is None or head.head != "yolov8"):
        raise reader.fail("detect", "must name a yolov8 head and its kpt_shape for a pose release")
    if task == "segment" and (head.masks < 1 or head.head != "yolov8"):
        raise reader.fail("detect", "must name a yolov8 head and its masks for a segment release")
    return head
