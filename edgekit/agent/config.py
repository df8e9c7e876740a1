"""The two files the camera service runs from, checked before anything is opened.

The site config (/etc/edgekit/camera.json) belongs to the device: camera, result files.
The release file (<release_dir>/release.json) ships with each model, so switching the
``current`` link swaps model, labels and preprocessing together.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple, Sequence

from .errors import AgentError
from .preprocess import PreprocessSpec

PRECISIONS = ("int8", "fp16", "fp32")
INT8_PATHS = ("calibrator", "qdq", "none")
TASKS = ("classify",)
RELEASE_FILE = "release.json"
_REQUIRED = object()


class SourceConfig(NamedTuple):
    uri: str
    loop: bool
    realtime: bool


class ResultsConfig(NamedTuple):
    path: str
    max_bytes: int
    backups: int


class SiteConfig(NamedTuple):
    path: str
    release_dir: str
    source: SourceConfig
    results: ResultsConfig
    topk: int


class BuildConfig(NamedTuple):
    """How the device turns the release's ONNX into an engine (the host's merged settings)."""

    int8: str
    workspace_mib: int
    dla_core: int | None


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

    @property
    def calibration_path(self) -> str:
        return os.path.join(self.release_dir, "calib.npz")


class _Reader:
    """Reads typed keys from one JSON object, naming the file and key in every error."""

    def __init__(self, path: str, data: dict[str, Any], prefix: str = "") -> None:
        self.path = path
        self.data = data
        self.prefix = prefix

    def fail(self, key: str, problem: str) -> AgentError:
        return AgentError("config", f"{self.path}: key {self.prefix + key!r} {problem}.")

    def value(self, key: str, kind: type, description: str, default: Any = _REQUIRED) -> Any:
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

    def integer(self, key: str, minimum: int) -> int:
        value: int = self.value(key, int, "an integer")
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum}, not {value}")
        return value

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
    reader = _load_json(path)
    source = reader.section("source")
    results = reader.section("results")
    return SiteConfig(
        path=path,
        release_dir=reader.text("release_dir"),
        source=SourceConfig(
            uri=source.text("uri"),
            loop=source.flag("loop", False),
            realtime=source.flag("realtime", False),
        ),
        results=ResultsConfig(
            path=results.text("path"),
            max_bytes=results.integer("max_bytes", 1),
            backups=results.integer("backups", 0),
        ),
        topk=reader.integer("topk", 1),
    )


def load_release(release_dir: str) -> Release:
    path = os.path.join(release_dir, RELEASE_FILE)
    reader = _load_json(path)
    labels = reader.value("labels", list, "a list of strings")
    if not all(isinstance(label, str) for label in labels):
        raise reader.fail("labels", "must hold only strings")
    build = reader.section("build")
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
        ),
        task=reader.choice("task", TASKS),
        labels=list(labels),
        preprocess=preprocess,
    )
