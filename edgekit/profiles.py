"""Device profiles: one TOML file per Jetson module x JetPack line, in device_profiles/.

A profile is data, not code: everything edgekit decides per device (precision it can
run, TensorRT's INT8 path, builder workspace, camera pipeline) is read from it. Files
are validated against the dataclasses below on load, so a typo is an error naming the
file and the key rather than a default silently taking its place.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from edgekit.agent.config import CUDA_SEAMS, INT8_PATHS, PRECISIONS, RTSP_DECODES
from edgekit.data import data_dir
from edgekit.errors import UsageError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

PROFILES_DIR = data_dir("device_profiles")

BACKENDS = ("tensorrt", "onnxruntime")
# The other vocabularies (precisions, INT8 paths, CUDA seams, RTSP decodes) are the agent's,
# which reads them back from release.json and camera.json.
_VERSION_RE = re.compile(r"^\d+(\.\d+)*$")


class ProfileError(UsageError):
    pass


@dataclass(frozen=True)
class Module:
    name: str
    soc: str
    gpu: str
    compute_capability: str
    fast_int8: bool
    fast_fp16: bool
    dla_cores: int
    memory_mib: int
    # Device-tree compatible entries that name this module (any one identifies it).
    compatible: tuple[str, ...]


@dataclass(frozen=True)
class Software:
    jetpack: str
    # Known L4T releases of this JetPack line; a newer patch of the same line also matches.
    l4t: tuple[str, ...]
    ubuntu: str
    python: str
    cuda: str
    tensorrt: str


@dataclass(frozen=True)
class Build:
    backend: str
    precision: str
    int8: str
    workspace_mib: int
    stop_service_during_build: bool
    # ctypes over libcudart, which every JetPack has; "pycuda" for devices that ship it.
    cuda: str = "cudart"


@dataclass(frozen=True)
class Camera:
    # A GStreamer pipeline ending in appsink, with {sensor}, {width}, {height}, {fps}.
    csi_pipeline: str
    rtsp_decode: str
    rtsp_decoder: str
    width: int
    height: int
    fps: int


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    module: Module
    software: Software
    build: Build
    camera: Camera
    # Why edgekit refuses this device; empty for a supported one.
    unsupported: str = ""

    @property
    def supported(self) -> bool:
        return not self.unsupported

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def available_profiles(directory: Path = PROFILES_DIR) -> list[str]:
    names = sorted(path.stem for path in directory.glob("*.toml"))
    # Without profiles no device can be matched: a listing that shows none would hide a broken install.
    if not names:
        raise ProfileError(
            f"There are no device profiles (*.toml) in {directory}; reinstall edgekit or restore that folder."
        )
    return names


def load_profile(name: str, directory: Path = PROFILES_DIR) -> Profile:
    path = directory / f"{name}.toml"
    if not path.is_file():
        known = available_profiles(directory)
        raise ProfileError(
            f"There is no device profile {name!r}; {_suggest(name, known)}known profiles: {', '.join(known)}."
        )
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"The profile file {path} is malformed ({exc}); fix or remove it.") from exc
    try:
        profile = from_toml(Profile, data)
        _check(profile)
    except ValueError as exc:
        raise ProfileError(f"The profile file {path} is malformed: {exc}; fix or remove it.") from exc
    if profile.name != name:
        raise ProfileError(f"The profile file {path} names itself {profile.name!r}; rename the file or the profile.")
    return profile


def load_profiles(directory: Path = PROFILES_DIR) -> list[Profile]:
    return [load_profile(name, directory) for name in available_profiles(directory)]


def closest_names(name: str, known: list[str]) -> list[str]:
    return difflib.get_close_matches(name, known, n=3, cutoff=0.5)


def _suggest(name: str, known: list[str]) -> str:
    close = closest_names(name, known)
    return f"did you mean {' or '.join(close)}? " if close else ""


def from_toml(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from parsed TOML, refusing unknown, missing or mistyped keys."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'the file'} must be a table")
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown key {_key(where, unknown[0])!r} (known: {', '.join(fields)})")
    hints = _type_hints(cls)
    values: dict[str, Any] = {}
    for key, field in fields.items():
        if key not in data:
            if field.default is dataclasses.MISSING:
                raise ValueError(f"missing key {_key(where, key)!r}")
            continue
        values[key] = _value(hints[key], data[key], _key(where, key))
    return cls(**values)


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    # Resolving the string annotations is most of the cost of loading 26 profiles.
    return typing.get_type_hints(cls)


def _value(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return from_toml(hint, value, key)  # type: ignore[arg-type]
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"{key!r} must be a list of strings")
        return tuple(value)
    if origin in (typing.Union, types.UnionType):
        options = [option for option in typing.get_args(hint) if option is not type(None)]
        return _value(options[0], value, key)
    # bool is an int in Python; TOML keeps them apart and so do we.
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ValueError(f"{key!r} must be {hint.__name__}, not {type(value).__name__}")
    return value


def _key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _check(profile: Profile) -> None:
    """What the types cannot say: closed vocabularies and combinations that must agree."""
    build, module, software = profile.build, profile.module, profile.software
    choices = {
        "build.backend": (build.backend, BACKENDS),
        "build.int8": (build.int8, INT8_PATHS),
        "build.precision": (build.precision, PRECISIONS),
        "build.cuda": (build.cuda, CUDA_SEAMS),
        "camera.rtsp_decode": (profile.camera.rtsp_decode, RTSP_DECODES),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ValueError(f"{key!r} is {value!r}, not one of {', '.join(allowed)}")
    if not software.l4t or not all(_VERSION_RE.match(release) for release in software.l4t):
        raise ValueError("'software.l4t' must list L4T releases such as \"36.4.3\"")
    if (build.int8 == "none") == module.fast_int8:
        raise ValueError("'build.int8' must be \"none\" exactly when 'module.fast_int8' is false")
    if build.backend == "tensorrt":
        for key, value in (
            ("software.tensorrt", software.tensorrt),
            ("module.compute_capability", module.compute_capability),
        ):
            if not _VERSION_RE.match(value):
                raise ValueError(f"{key!r} must be a version for the tensorrt backend, not {value!r}")
    if build.workspace_mib < 0 or build.workspace_mib > module.memory_mib:
        raise ValueError("'build.workspace_mib' must fit in 'module.memory_mib'")
    if not module.compatible:
        raise ValueError("'module.compatible' must name at least one device-tree entry")


def version_tuple(text: str) -> tuple[int, ...]:
    """ "36.4.3" -> (36, 4, 3); a suffix such as "-20250107" or "+b77" ends the version."""
    match = re.match(r"\d+(\.\d+)*", text.strip())
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()
