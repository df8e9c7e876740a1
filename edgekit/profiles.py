"""Device profiles: one TOML file per Jetson module x JetPack line, in device_profiles/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tomllib

from edgekit.errors import EdgekitError

PROFILES_DIR = Path(__file__).resolve().parent.parent / "device_profiles"


class ProfileError(EdgekitError):
    exit_code = 2


@dataclass(frozen=True)
class Identity:
    """What a device of this profile shows: the files that detection reads."""

    nv_tegra_release: str
    model: str
    compatible: tuple[str, ...]


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    module: str
    soc: str
    jetpack: str
    l4t: str
    ubuntu: str
    python: str
    cuda: str
    tensorrt: str
    identity: Identity


def available_profiles(directory: Path = PROFILES_DIR) -> list[str]:
    return sorted(path.stem for path in directory.glob("*.toml"))


def load_profile(name: str, directory: Path = PROFILES_DIR) -> Profile:
    path = directory / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(available_profiles(directory)) or "none"
        raise ProfileError(f"There is no device profile {name!r}; known profiles: {known}.")
    try:
        data = tomllib.loads(path.read_text())
        identity = data.pop("identity")
        return Profile(
            **data,
            identity=Identity(
                nv_tegra_release=identity["nv_tegra_release"],
                model=identity["model"],
                compatible=tuple(identity["compatible"]),
            ),
        )
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ProfileError(f"The profile file {path} is malformed ({exc}); fix or remove it.") from exc


def match_profile(model: str | None, l4t: str | None, directory: Path = PROFILES_DIR) -> str | None:
    """The profile whose identity matches a device's model string and L4T release."""
    for name in available_profiles(directory):
        profile = load_profile(name, directory)
        if profile.identity.model == model and profile.l4t == l4t:
            return profile.name
    return None
