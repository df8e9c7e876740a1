"""From device facts to a device profile: detection, or a checked ``--profile`` override.

Detection trusts what the device says about itself in this order: the module id in its
device tree (pXXXX-YYYY), then its SoC, L4T release and TensorRT major version. A device
that matches nothing is refused with what was found and the closest profiles, because a
guessed profile means a wrong engine or a build that dies twenty minutes in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgekit.profiles import Profile, ProfileError, closest_names, version_tuple

if TYPE_CHECKING:
    from edgekit.device.facts import DeviceFacts


class UnrecognisedDevice(ProfileError):
    pass


@dataclass(frozen=True)
class DeviceIdentity:
    """The facts that tell Jetsons apart, as the agent reported them."""

    model: str | None
    soc: str | None
    entries: tuple[str, ...]
    board_ids: tuple[str, ...]
    l4t: str | None
    tensorrt: str | None
    memory_mib: int | None

    @classmethod
    def from_facts(cls, facts: DeviceFacts) -> DeviceIdentity:
        jetson, total = facts.jetson, facts.memory.total_bytes
        return cls(
            model=jetson.model,
            soc=jetson.soc,
            entries=tuple(jetson.module_entries),
            board_ids=tuple(jetson.board_ids),
            l4t=jetson.l4t,
            tensorrt=facts.tensorrt.python or facts.tensorrt.package,
            memory_mib=None if total is None else total // 2**20,
        )

    def describe(self) -> str:
        parts = [self.soc or "no Jetson SoC"]
        if self.model:
            parts[0] += f" ({self.model})"
        parts.append(f"module {'/'.join(self.board_ids)}" if self.board_ids else "no module id")
        parts.append(f"L4T {self.l4t}" if self.l4t else "no L4T release")
        if self.tensorrt:
            parts.append(f"TensorRT {self.tensorrt}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Resolution:
    profile: Profile
    # "detected" or "requested" (``--profile``).
    how: str
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile.name, "how": self.how, "notes": list(self.notes)}


def l4t_in_line(profile: Profile, l4t: str | None) -> bool:
    """Whether an L4T release belongs to the profile's JetPack line (a newer patch does)."""
    if l4t is None:
        return False
    release = version_tuple(l4t)
    return any(release[:2] == version_tuple(known)[:2] for known in profile.software.l4t)


def _module_match(profile: Profile, device: DeviceIdentity) -> bool:
    return bool(set(profile.module.compatible) & set(device.entries))


def _tensorrt_agrees(profile: Profile, device: DeviceIdentity) -> bool:
    if device.tensorrt is None or profile.build.backend != "tensorrt":
        return True
    return version_tuple(device.tensorrt)[:1] == version_tuple(profile.software.tensorrt)[:1]


def _by_memory(profiles: list[Profile], device: DeviceIdentity) -> list[Profile]:
    """The profiles of the largest memory size the device has (a profile names its smallest variant).

    MemTotal is what the kernel keeps after carve-outs: an 8 GB module shows about 7.4 GiB.
    """
    if device.memory_mib is None:
        return []
    fitting = [p for p in profiles if 0.75 * p.module.memory_mib <= device.memory_mib]
    largest = max((p.module.memory_mib for p in fitting), default=None)
    return [p for p in fitting if p.module.memory_mib == largest]


def detect_profile(device: DeviceIdentity, profiles: list[Profile]) -> Resolution:
    line = [p for p in profiles if p.module.soc == device.soc and l4t_in_line(p, device.l4t)]
    line = [p for p in line if _tensorrt_agrees(p, device)]
    by_module = [p for p in line if _module_match(p, device)]
    notes: tuple[str, ...] = ()
    candidates = by_module
    if len(by_module) > 1:
        # A developer-kit module id can stand for several memory sizes: let memory decide.
        candidates = _by_memory(by_module, device) or by_module
    elif not by_module:
        # A custom carrier board may not name the module: fall back to SoC and memory size.
        candidates = _by_memory(line, device)
        notes = (f"the device names no known module; its profile was chosen by SoC and memory ({device.describe()})",)
    if len(candidates) == 1:
        return Resolution(candidates[0], "detected", notes)
    if candidates:
        names = ", ".join(p.name for p in candidates)
        raise UnrecognisedDevice(
            f"The device ({device.describe()}) matches several profiles ({names}); pick one with --profile."
        )
    raise UnrecognisedDevice(
        f"No device profile matches this device ({device.describe()}); closest: {_closest(device, profiles)}; "
        "pass --profile NAME if one of them fits, or add a profile in device_profiles/."
    )


def _closest(device: DeviceIdentity, profiles: list[Profile]) -> str:
    def score(profile: Profile) -> tuple[int, int, int, int]:
        return (
            _module_match(profile, device),
            profile.module.soc == device.soc,
            l4t_in_line(profile, device.l4t),
            _tensorrt_agrees(profile, device),
        )

    ranked = sorted(profiles, key=lambda p: score(p), reverse=True)[:3]
    return ", ".join(f"{p.name} ({_differences(p, device) or 'ambiguous'})" for p in ranked)


def _differences(profile: Profile, device: DeviceIdentity) -> str:
    """What a profile expects that the device does not show, as a short phrase."""
    found = []
    if profile.module.soc != device.soc:
        found.append(f"for {profile.module.soc}")
    elif not _module_match(profile, device):
        found.append(f"for module {'/'.join(c.split(',')[-1] for c in profile.module.compatible)}")
    if not l4t_in_line(profile, device.l4t):
        found.append(f"for L4T {_line(profile)}")
    if not _tensorrt_agrees(profile, device):
        found.append(f"for TensorRT {profile.software.tensorrt}")
    return ", ".join(found)


def _line(profile: Profile) -> str:
    releases = profile.software.l4t
    return releases[0] if len(releases) == 1 else f"{releases[0]}-{releases[-1]}"


def resolve_profile(device: DeviceIdentity, profiles: list[Profile], requested: str | None = None) -> Resolution:
    """The profile for this device: the detected one, or ``requested`` if the device can be it."""
    if requested is None:
        return detect_profile(device, profiles)
    by_name = {p.name: p for p in profiles}
    if requested not in by_name:
        close = closest_names(requested, list(by_name))
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise ProfileError(
            f"There is no device profile {requested!r}; {hint}`edgekit profiles list` shows the known ones."
        )
    profile = by_name[requested]
    if device.soc is None and device.l4t is None:
        note = "the device shows no Jetson identity (no device tree, no L4T), so --profile is taken as given"
        return Resolution(profile, "requested", (note,))
    refusals = []
    if device.soc != profile.module.soc:
        refusals.append(f"is for {profile.module.soc} ({profile.module.name}) but the device reports {device.soc}")
    if not l4t_in_line(profile, device.l4t):
        refusals.append(
            f"is for JetPack {profile.software.jetpack} (L4T {_line(profile)}) but the device runs L4T {device.l4t}"
        )
    if not _tensorrt_agrees(profile, device):
        refusals.append(f"expects TensorRT {profile.software.tensorrt} but the device has {device.tensorrt}")
    if refusals:
        try:
            hint = f"the device looks like {detect_profile(device, profiles).profile.name}"
        except UnrecognisedDevice:
            hint = f"the closest profiles are {_closest(device, profiles)}"
        raise ProfileError(
            f"--profile {requested} {' and '.join(refusals)} ({device.describe()}); {hint}, or leave --profile out."
        )
    notes: tuple[str, ...] = ()
    if not _module_match(profile, device):
        notes = (f"--profile {requested} names another module than the device ({device.describe()}); taken as given",)
    return Resolution(profile, "requested", notes)
