"""The camera pipeline benchmark behind scripts/bench-camera.

It answers one question: how much of the backend's own speed does the camera service keep
once frames have to be decoded, preprocessed and postprocessed around it? Three modes run on
the same machine, model and frames:

* raw: ``backend.infer`` alone on tensors preprocessed beforehand, the ceiling;
* naive: one thread that reads, preprocesses, infers and postprocesses each frame in turn;
* pipelined: the service's own Grabber and Pipeline, the number that matters.

The target is pipelined >= 0.95 x raw. The run always exits 0 when it measured something,
because missing the target is a result, not an error.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekit.agent.backends.onnxruntime import OnnxRuntimeBackend, load
from edgekit.agent.config import BuildConfig, CameraConfig, Release, SourceConfig
from edgekit.agent.errors import AgentError
from edgekit.agent.grabber import Grabber
from edgekit.agent.pipeline import Pipeline, SourceEnded
from edgekit.agent.postprocess import Postprocess, make_postprocess
from edgekit.agent.preprocess import PreprocessSpec, preprocess
from edgekit.agent.sources import open_source

SEED = 0
# Bumped whenever the model or scene generator changes, so stale cache entries are not reused.
GENERATOR_VERSION = 1
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
FPS = 30
TOPK = 5
TARGET = 0.95
WARMUP_RUNS = 5
POLL_S = 0.5
# The pipeline waits on a file, never on a camera; this long without a result means it is stuck.
STALL_S = 60.0
MODES = ("raw", "naive", "pipelined")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
THREADS_WHY_DEFAULT = (
    "on a Jetson the engine runs on the GPU and leaves the CPU cores to capture and preprocessing; "
    "on this CPU-only machine one inference thread plays the GPU's part and the other core(s) do the rest, "
    "so the ratios mean what they would on the device (--infer-threads N shows the all-CPU case)"
)
THREADS_WHY_ALL_CPU = (
    "the all-CPU case: inference competes with decoding and preprocessing for the same cores, "
    "which a Jetson's GPU engine does not"
)


class ModelShape(NamedTuple):
    """A ResNet-18 layout; the defaults are ResNet-18 itself, smaller values make a quick test model."""

    input_size: int = 224
    channels: tuple[int, ...] = (64, 128, 256, 512)
    classes: int = 1000

    @property
    def key(self) -> str:
        widths = "-".join(str(c) for c in self.channels)
        return f"resnet18-{self.input_size}px-{widths}-{self.classes}cls-seed{SEED}-v{GENERATOR_VERSION}"


class VideoShape(NamedTuple):
    width: int
    height: int
    frames: int
    fps: int = FPS

    def key(self, codec: str) -> str:
        size = f"{self.width}x{self.height}"
        return f"scene-{size}-{self.fps}fps-{self.frames}f-{codec}-seed{SEED}-v{GENERATOR_VERSION}"


class Video(NamedTuple):
    path: Path
    shape: VideoShape
    codec: str
    description: str


class Run(NamedTuple):
    mode: str
    frames: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class Bench(NamedTuple):
    """Everything the three modes share, so they differ only in how frames flow."""

    backend: OnnxRuntimeBackend
    spec: PreprocessSpec
    postprocess: Postprocess
    video: Video

    def infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        return self.backend.infer({self.spec.input_name: tensor})


# ---------------------------------------------------------------------------------------------
# Cache


def cache_dir() -> Path:
    root = os.environ.get("EDGEKIT_CACHE") or str(Path.home() / ".cache" / "edgekit")
    path = Path(root) / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def partial_path(final: Path) -> Path:
    # Same folder and suffix as the final file: os.replace must not cross filesystems, and
    # ffmpeg and OpenCV pick the container from the suffix.
    return final.with_name(f".{final.stem}.{os.getpid()}.partial{final.suffix}")


def write_cached(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through ``write(partial)`` then a rename, so a cache never holds half a file."""
    partial = partial_path(path)
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def progress(message: str) -> None:
    # stderr, so that --json leaves stdout holding only the JSON object.
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Model


class _GraphBuilder:
    """Appends Conv/Relu/Add nodes with random weights; BN is folded away, so every conv has a bias."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def _name(self, prefix: str) -> str:
        return f"{prefix}{len(self.nodes)}"

    def weight(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def conv(self, x: str, cin: int, cout: int, kernel: int, stride: int, gain: float = 1.0) -> str:
        out = self._name("conv")
        # He initialisation keeps activations in a normal range through the depth of the net.
        std = gain * np.sqrt(2.0 / (cin * kernel * kernel))
        w = self.weight(out + ".w", self.rng.normal(0.0, std, size=(cout, cin, kernel, kernel)))
        b = self.weight(out + ".b", self.rng.normal(0.0, 0.01, size=(cout,)))
        pad = kernel // 2
        self.nodes.append(
            helper.make_node(
                "Conv", [x, w, b], [out], kernel_shape=[kernel, kernel], pads=[pad] * 4, strides=[stride, stride]
            )
        )
        return out

    def op(self, kind: str, inputs: list[str], **attributes: Any) -> str:
        out = self._name(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [out], **attributes))
        return out

    def basic_block(self, x: str, cin: int, cout: int, stride: int) -> str:
        y = self.op("Relu", [self.conv(x, cin, cout, 3, stride)])
        # A damped residual branch stands in for the zero-ish last BN of trained nets, so eight
        # residual sums do not blow the activations up.
        y = self.conv(y, cout, cout, 3, 1, gain=0.5)
        shortcut = x if stride == 1 and cin == cout else self.conv(x, cin, cout, 1, stride)
        return self.op("Relu", [self.op("Add", [y, shortcut])])


def build_model(shape: ModelShape) -> onnx.ModelProto:
    """ResNet-18: conv7x7/2, maxpool, 4 stages of 2 basic blocks, global average pool, Gemm."""
    graph = _GraphBuilder(np.random.default_rng(SEED))
    x = graph.op("Relu", [graph.conv(INPUT_NAME, 3, shape.channels[0], 7, 2)])
    x = graph.op("MaxPool", [x], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2])
    cin = shape.channels[0]
    for stage, cout in enumerate(shape.channels):
        x = graph.basic_block(x, cin, cout, 1 if stage == 0 else 2)
        x = graph.basic_block(x, cout, cout, 1)
        cin = cout
    x = graph.op("Flatten", [graph.op("GlobalAveragePool", [x])], axis=1)
    fc_w = graph.weight("fc.w", graph.rng.normal(0.0, np.sqrt(1.0 / cin), size=(shape.classes, cin)))
    fc_b = graph.weight("fc.b", np.zeros(shape.classes))
    graph.nodes.append(helper.make_node("Gemm", [x, fc_w, fc_b], [OUTPUT_NAME], transB=1))
    size = shape.input_size
    onnx_graph = helper.make_graph(
        graph.nodes,
        "edgekit_bench_resnet18",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, shape.classes])],
        initializer=graph.initializers,
    )
    # ir_version 8, as the sample model: loadable by the onnxruntime and TensorRT on JetPack 5.
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    model.producer_name = "edgekit-bench"
    model.doc_string = "ResNet-18-sized classifier with random weights, for timing only (scripts/bench-camera)."
    onnx.checker.check_model(model)
    return model


def count_params(model: onnx.ModelProto) -> int:
    return sum(int(np.prod(tensor.dims)) for tensor in model.graph.initializer)


def ensure_model(shape: ModelShape) -> tuple[Path, int]:
    """The cached model for ``shape`` (built on first use) and its parameter count."""
    path = cache_dir() / f"{shape.key}.onnx"
    if path.is_file():
        model = onnx.load(str(path))
    else:
        progress(f"building the model {path.name}")
        model = build_model(shape)
        write_cached(path, lambda partial: onnx.save(model, str(partial)))
    return path, count_params(model)


# ---------------------------------------------------------------------------------------------
# Video


def scene_frames(shape: VideoShape) -> Iterator[np.ndarray]:
    """A panning textured backdrop with moving shapes: detail and motion for the encoder, like a camera."""
    rng = np.random.default_rng(SEED)
    h, w = shape.height, shape.width
    # A flat or static scene would encode to almost nothing and decode unrealistically fast.
    noise = rng.integers(0, 256, size=(h, 2 * w, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(noise, (0, 0), 2.0).astype(np.float32)
    # Blurring averages the noise towards grey; stretching it back gives the encoder real contrast.
    backdrop = ((blurred - blurred.min()) * (255.0 / max(1.0, float(np.ptp(blurred))))).astype(np.uint8)
    colours = [tuple(int(c) for c in rng.integers(0, 256, size=3)) for _ in range(6)]
    for index in range(shape.frames):
        offset = (index * 6) % w
        frame = np.ascontiguousarray(backdrop[:, offset : offset + w])
        t = index / shape.fps
        for k, colour in enumerate(colours):
            cx = int(w * (0.5 + 0.4 * np.sin(t * (0.7 + 0.2 * k) + k)))
            cy = int(h * (0.5 + 0.35 * np.cos(t * (0.5 + 0.3 * k) + 2 * k)))
            cv2.circle(frame, (cx, cy), max(4, h // (8 + k)), colour, -1)
        cv2.putText(frame, f"frame {index}", (20, h // 12), cv2.FONT_HERSHEY_SIMPLEX, h / 600, (255, 255, 255), 2)
        yield frame


def encode_h264(shape: VideoShape, path: Path, ffmpeg: str) -> None:
    command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24"]
    command += ["-s", f"{shape.width}x{shape.height}", "-r", str(shape.fps), "-i", "-"]
    command += ["-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)]
    # A file, not a pipe, for ffmpeg's messages: a full stderr pipe would stall it while we write.
    with tempfile.TemporaryFile() as errors:
        encoder = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=errors)
        assert encoder.stdin is not None
        try:
            for frame in scene_frames(shape):
                encoder.stdin.write(frame.tobytes())
        except BrokenPipeError:
            pass
        finally:
            encoder.stdin.close()
        if encoder.wait() != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()
            raise RuntimeError(f"ffmpeg could not encode the benchmark video: {message}")


def encode_mp4v(shape: VideoShape, path: Path) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), shape.fps, (shape.width, shape.height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4v to {path}")
    try:
        for frame in scene_frames(shape):
            writer.write(frame)
    finally:
        writer.release()


def ensure_video(shape: VideoShape) -> Video:
    """The cached H.264 video, encoded on first use; OpenCV's mp4v only when there is no ffmpeg."""
    folder = cache_dir()
    h264 = folder / f"{shape.key('h264')}.mp4"
    ffmpeg = shutil.which("ffmpeg")
    if h264.is_file() or ffmpeg is not None:
        if not h264.is_file():
            assert ffmpeg is not None
            progress(f"encoding the video {h264.name}")
            write_cached(h264, lambda partial: encode_h264(shape, partial, ffmpeg))
        return Video(h264, shape, "h264", "H.264 (libx264, yuv420p)")
    mp4v = folder / f"{shape.key('mp4v')}.mp4"
    if not mp4v.is_file():
        progress(f"ffmpeg not found; encoding {mp4v.name} with OpenCV's mp4v writer instead")
        write_cached(mp4v, lambda partial: encode_mp4v(shape, partial))
    return Video(mp4v, shape, "mp4v", "MPEG-4 Part 2 (OpenCV mp4v: ffmpeg not found, so not the H.264 a camera sends)")


# ---------------------------------------------------------------------------------------------
# Backend and release


def preprocess_spec(input_size: int) -> PreprocessSpec:
    return PreprocessSpec(
        input_name=INPUT_NAME,
        height=input_size,
        width=input_size,
        channels=3,
        layout="NCHW",
        color="rgb",
        resize="stretch",
        scale=1.0 / 255.0,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )


def make_release(model_path: Path, shape: ModelShape) -> Release:
    return Release(
        path=str(model_path.with_suffix(".release.json")),
        release_dir=str(model_path.parent),
        release="bench",
        backend="onnxruntime",
        model_path=str(model_path),
        precision="fp32",
        build=BuildConfig(int8="none", workspace_mib=0, dla_core=None),
        task="classify",
        labels=[f"class{i}" for i in range(shape.classes)],
        preprocess=preprocess_spec(shape.input_size),
    )


def load_backend(model_path: Path, infer_threads: int) -> OnnxRuntimeBackend:
    """The agent's CPU backend, with its inference threads capped."""
    return load(str(model_path), threads=infer_threads)


# ---------------------------------------------------------------------------------------------
# The three modes


def decoded_tensors(bench: Bench) -> list[np.ndarray]:
    """Every frame of the video, preprocessed: the raw mode's input, made before its clock starts."""
    capture = cv2.VideoCapture(str(bench.video.path))
    tensors: list[np.ndarray] = []
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            tensors.append(preprocess(image, bench.spec))
    finally:
        capture.release()
    if len(tensors) != bench.video.shape.frames:
        raise RuntimeError(
            f"{bench.video.path} decodes to {len(tensors)} frames, not {bench.video.shape.frames}; "
            "delete it to have it encoded afresh"
        )
    return tensors


def warm_up(bench: Bench, tensor: np.ndarray) -> None:
    # The first runs allocate the arena and pick kernels; timing them would charge raw alone.
    for _ in range(WARMUP_RUNS):
        bench.infer(tensor)


def run_raw(bench: Bench, tensors: Sequence[np.ndarray]) -> Run:
    started = time.perf_counter()
    for tensor in tensors:
        bench.infer(tensor)
    return Run("raw", len(tensors), time.perf_counter() - started)


def run_naive(bench: Bench) -> Run:
    started = time.perf_counter()
    capture = cv2.VideoCapture(str(bench.video.path))
    frames = 0
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            outputs = bench.infer(preprocess(image, bench.spec))
            bench.postprocess(outputs, image.shape[:2])
            frames += 1
    finally:
        capture.release()
    return Run("naive", frames, time.perf_counter() - started)


def run_pipelined(bench: Bench) -> Run:
    """The service's capture thread and pipeline, opened and driven the way service.py does."""
    source = SourceConfig(uri=bench.video.path.as_uri(), loop=False, realtime=False, drop="every")
    camera = CameraConfig()
    events: list[str] = []
    counts: collections.Counter[str] = collections.Counter()

    def count(name: str) -> None:
        counts[name] += 1

    started = time.perf_counter()
    first = open_source(source, camera)
    grabber = Grabber(lambda: open_source(source, camera), "every", source.read_timeout_s, events.append, count)
    grabber.start(first)
    pipeline = Pipeline(grabber, lambda image: preprocess(image, bench.spec), bench.infer)
    pipeline.start()
    try:
        frames = _drain(pipeline, bench.postprocess)
        seconds = time.perf_counter() - started
    finally:
        pipeline.close()
    if counts["source_reconnects"]:
        # A reconnect reopens the file from its start, so the frame count and timing are void.
        raise RuntimeError("the grabber reconnected during the run: " + "; ".join(events))
    return Run("pipelined", frames, seconds)


def _drain(pipeline: Pipeline, postprocess_fn: Postprocess) -> int:
    """Postprocess results in this thread, as the service's loop does, until the file ends."""
    frames = 0
    idle_since = time.monotonic()
    while True:
        try:
            inferred = pipeline.next(POLL_S)
        except SourceEnded:
            return frames
        if inferred is None:
            if time.monotonic() - idle_since > STALL_S:
                raise RuntimeError(f"the pipeline gave no result for {STALL_S:g} s after {frames} frames")
            continue
        postprocess_fn(inferred.outputs, inferred.frame.image.shape[:2])
        frames += 1
        idle_since = time.monotonic()


def measure(bench: Bench, repeat: int) -> list[Run]:
    """The best run of each mode; the modes take turns so that drift in the machine hits all alike."""
    tensors = decoded_tensors(bench)
    warm_up(bench, tensors[0])
    best: dict[str, Run] = {}
    for attempt in range(repeat):
        if repeat > 1:
            progress(f"round {attempt + 1} of {repeat}")
        for run in (run_raw(bench, tensors), run_naive(bench), run_pipelined(bench)):
            if run.mode not in best or run.seconds < best[run.mode].seconds:
                best[run.mode] = run
    return [best[mode] for mode in MODES]


# ---------------------------------------------------------------------------------------------
# Report


def cpu_name() -> str:
    # platform.processor() is empty on most Linux systems; the kernel's model name says more.
    name = platform.processor()
    if name and name != platform.machine():
        return name
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return name or platform.machine()


def ratio(value: float, reference: float) -> float:
    return round(value / reference, 3) if reference > 0 else 0.0


def build_report(
    runs: list[Run], model: ModelShape, params: int, video: Video, infer_threads: int, repeat: int
) -> dict[str, Any]:
    by_mode = {run.mode: run for run in runs}
    raw_fps, naive_fps = by_mode["raw"].fps, by_mode["naive"].fps
    rows = [
        {
            "mode": run.mode,
            "frames": run.frames,
            # Significant digits: a tiny model's raw run takes under a millisecond.
            "seconds": float(f"{run.seconds:.4g}"),
            "fps": round(run.fps, 2),
            "vs_raw": ratio(run.fps, raw_fps),
            "vs_naive": ratio(run.fps, naive_fps),
        }
        for run in runs
    ]
    achieved = ratio(by_mode["pipelined"].fps, raw_fps)
    size = model.input_size
    return {
        "machine": {"cpus": os.cpu_count() or 0, "processor": cpu_name(), "arch": platform.machine()},
        "model": {
            "name": "resnet18" if model == ModelShape() else "resnet18-shaped",
            "params": params,
            "input": [1, 3, size, size],
        },
        "video": {
            "width": video.shape.width,
            "height": video.shape.height,
            "fps": video.shape.fps,
            "frames": video.shape.frames,
            "codec": video.codec,
            "codec_description": video.description,
            "path": str(video.path),
        },
        "infer_threads": infer_threads,
        "infer_threads_why": THREADS_WHY_DEFAULT if infer_threads == 1 else THREADS_WHY_ALL_CPU,
        "repeat": repeat,
        "modes": rows,
        "target": {"mode": "pipelined", "min_vs_raw": TARGET, "achieved_vs_raw": achieved, "met": achieved >= TARGET},
    }


def format_report(report: dict[str, Any]) -> str:
    machine, model, video = report["machine"], report["model"], report["video"]
    input_shape = "x".join(str(d) for d in model["input"])
    header = (
        f"machine: {machine['cpus']} CPUs, {machine['processor']} ({machine['arch']}) | "
        f"model: {model['name']}, {model['params'] / 1e6:.2f} M params, input {input_shape} | "
        f"video: {video['width']}x{video['height']} {video['codec_description']}, "
        f"{video['frames']} frames @ {video['fps']} fps | infer threads: {report['infer_threads']}"
    )
    lines = [header, f"infer threads {report['infer_threads']}: {report['infer_threads_why']}"]
    if report["repeat"] > 1:
        lines.append(f"best of {report['repeat']} runs per mode")
    lines += ["", *format_table(report["modes"]), ""]
    target = report["target"]
    verdict = "met" if target["met"] else "NOT met"
    lines.append(
        f"target: pipelined >= {target['min_vs_raw']:.2f} x raw: {verdict} "
        f"(pipelined = {target['achieved_vs_raw']:.3f} x raw)"
    )
    return "\n".join(lines)


def format_table(rows: list[dict[str, Any]]) -> list[str]:
    columns = ("mode", "frames", "seconds", "fps", "vs raw", "vs naive")
    cells = [
        [row["mode"], str(row["frames"]), f"{row['seconds']:.3f}", f"{row['fps']:.2f}"]
        + [f"{row['vs_raw']:.3f}x", f"{row['vs_naive']:.3f}x"]
        for row in rows
    ]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        # The mode is text and reads best flush left; the numbers line up on the right.
        first = values[0].ljust(widths[0])
        return "  ".join([first, *(value.rjust(width) for value, width in zip(values[1:], widths[1:], strict=True))])

    return [line(columns), line(["-" * width for width in widths]), *(line(values) for values in cells)]


# ---------------------------------------------------------------------------------------------
# Command line


def video_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 1920x1080")
    width, height = int(match.group(1)), int(match.group(2))
    # yuv420p halves both dimensions for its chroma planes.
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be even and at least 16")
    return width, height


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def channel_list(text: str) -> tuple[int, ...]:
    try:
        channels = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not four comma-separated integers") from None
    if len(channels) != 4 or min(channels) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must name four positive stage widths, e.g. 64,128,256,512")
    return channels


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench-camera",
        description="Measure the camera pipeline against the backend's own throughput (raw, naive, pipelined).",
    )
    parser.add_argument("--frames", type=positive, default=300, help="frames in the video (default 300)")
    parser.add_argument("--size", type=video_size, default=(1280, 720), help="video WIDTHxHEIGHT (default 1280x720)")
    parser.add_argument(
        "--infer-threads", type=positive, default=1, help="onnxruntime intra-op threads (default 1: the GPU's stand-in)"
    )
    parser.add_argument("--repeat", type=positive, default=1, help="runs per mode; the best counts (default 1)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    # Smaller models for tests and quick checks; the defaults are ResNet-18 at 224x224.
    parser.add_argument("--input-size", type=positive, default=224, help=argparse.SUPPRESS)
    parser.add_argument("--channels", type=channel_list, default=ModelShape().channels, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    shape = ModelShape(input_size=args.input_size, channels=args.channels)
    model_path, params = ensure_model(shape)
    video = ensure_video(VideoShape(width=args.size[0], height=args.size[1], frames=args.frames))
    release = make_release(model_path, shape)
    backend = load_backend(model_path, args.infer_threads)
    try:
        postprocess_fn = make_postprocess(release, backend.output_names, TOPK)
        bench = Bench(backend, release.preprocess, postprocess_fn, video)
        progress(f"measuring {len(MODES)} modes on {video.shape.frames} frames")
        runs = measure(bench, args.repeat)
    finally:
        backend.close()
    return build_report(runs, shape, params, video, args.infer_threads, args.repeat)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except AgentError as exc:
        print(f"bench-camera: {exc.message}", file=sys.stderr)
        return 1
    except (RuntimeError, OSError, onnx.checker.ValidationError) as exc:
        print(f"bench-camera: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report) if args.json else format_report(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
