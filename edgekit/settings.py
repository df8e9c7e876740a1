"""The settings a provision runs with: profile defaults < user config < command-line flags.

One pure merge decides every profile-dependent value, so ``--check`` and a real
provision see the same numbers and a test can pin the precedence down.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgekit.agent.config import CUDA_SEAMS, PRECISIONS
from edgekit.errors import UsageError
from edgekit.profiles import Camera, Profile, from_toml


class ConfigError(UsageError):
    pass


@dataclass(frozen=True)
class BuildSettings:
    backend: str
    precision: str
    int8: str
    workspace_mib: int
    # A DLA core to build for, with GPU fallback for layers DLA cannot run; None: GPU only.
    dla_core: int | None
    stop_service_during_build: bool
    cuda: str


@dataclass(frozen=True)
class Settings:
    profile: str
    build: BuildSettings
    # The camera keys are the profile's own; they merge like the build keys.
    camera: Camera

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BuildOverrides:
    precision: str | None = None
    workspace_mib: int | None = None
    dla_core: int | None = None
    stop_service_during_build: bool | None = None
    cuda: str | None = None


@dataclass(frozen=True)
class CameraOverrides:
    csi_pipeline: str | None = None
    rtsp_decode: str | None = None
    rtsp_decoder: str | None = None
    width: int | None = None
    height: int | None = None
    fps: int | None = None


@dataclass(frozen=True)
class UserConfig:
    """~/.config/edgekit/config.toml: the deployer's standing choices for every device."""

    profile: str | None = None
    build: BuildOverrides = BuildOverrides()
    camera: CameraOverrides = CameraOverrides()

    def layer(self) -> dict[str, dict[str, Any]]:
        return {"build": asdict(self.build), "camera": asdict(self.camera)}


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "edgekit" / "config.toml"


def load_user_config(path: Path | None = None) -> UserConfig:
    """The user's config; a missing default file is an empty config, a missing named one an error."""
    chosen = path or default_config_path()
    if not chosen.is_file():
        if path is not None:
            raise ConfigError(f"The config file {path} does not exist; create it or drop --config.")
        return UserConfig()
    try:
        config = from_toml(UserConfig, tomllib.loads(chosen.read_text()))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"The config file {chosen} is malformed: {exc}; fix it.") from exc
    if config.build.precision is not None and config.build.precision not in PRECISIONS:
        raise ConfigError(
            f"The config file {chosen} sets build.precision = {config.build.precision!r}; "
            f"use one of {', '.join(PRECISIONS)}."
        )
    if config.build.cuda is not None and config.build.cuda not in CUDA_SEAMS:
        raise ConfigError(
            f"The config file {chosen} sets build.cuda = {config.build.cuda!r}; use one of {', '.join(CUDA_SEAMS)}."
        )
    return config


def profile_layer(profile: Profile) -> dict[str, dict[str, Any]]:
    return {
        "build": {**asdict(profile.build), "dla_core": None},
        "camera": asdict(profile.camera),
    }


def merge_settings(profile: Profile, *overrides: dict[str, dict[str, Any]]) -> Settings:
    """Profile values, each later layer's non-None values on top (user config, then flags)."""
    merged = profile_layer(profile)
    # The backend and INT8 path follow from the device's TensorRT: only the profile sets them.
    settable = {"build": asdict(BuildOverrides()), "camera": asdict(CameraOverrides())}
    for layer in overrides:
        for section, values in layer.items():
            if section not in settable:
                raise ConfigError(f"There is no settings section {section!r}; use build or camera.")
            for key, value in values.items():
                if key not in settable[section]:
                    raise ConfigError(
                        f"{section}.{key} cannot be set; settable: {', '.join(settable[section])} (in [{section}])."
                    )
                if value is not None:
                    merged[section][key] = value
    return Settings(
        profile=profile.name,
        build=BuildSettings(**merged["build"]),
        camera=Camera(**merged["camera"]),
    )
