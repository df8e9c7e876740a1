"""Profile resolution from device facts captured on real Jetsons, and the --profile override."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from jetson_facts import FACT_SETS, facts

from edgekit.agent.facts import describe_jetson
from edgekit.device.facts import DeviceFacts
from edgekit.profiles import Profile, ProfileError, load_profile, load_profiles
from edgekit.resolve import DeviceIdentity, UnrecognisedDevice, l4t_in_line, resolve_profile
from edgekit.twin.machine import twin_identity

PROFILES = load_profiles()
NO_MEMORY = {"total_bytes": None, "available_bytes": None}
NO_TENSORRT = {"python": None, "package": None}


def device(data: dict[str, Any]) -> DeviceIdentity:
    return DeviceIdentity.from_facts(DeviceFacts.parse(data))


def plain_linux() -> dict[str, Any]:
    """What the agent reports on a Linux box that is no Jetson: no release file, no device tree."""
    return facts(
        "jp62-orin-nano", jetson=describe_jetson(None, None, b"", b"", {}), tensorrt=NO_TENSORRT, memory=NO_MEMORY
    )


@pytest.mark.parametrize(
    ("fact_set", "expected"),
    [
        ("jp46-nano", "nano-jp46"),
        ("jp51-agx-orin-64gb", "agx-orin-64gb-jp51"),
        ("jp62-orin-nano", "orin-nano-8gb-jp62"),
        ("jp70-thor", "thor-jp70"),
    ],
)
def test_captured_devices_are_detected(fact_set: str, expected: str) -> None:
    resolution = resolve_profile(device(FACT_SETS[fact_set]), PROFILES)
    assert resolution.profile.name == expected
    assert resolution.how == "detected"
    assert resolution.notes == ()


def test_identity_is_read_from_the_facts() -> None:
    identity = device(FACT_SETS["jp70-thor"])
    assert identity.soc == "tegra264"
    assert identity.l4t == "38.2.0"
    assert "nvidia,p3834-0008" in identity.entries
    assert identity.model == "NVIDIA Jetson AGX Thor Developer Kit"
    assert identity.tensorrt == "10.13.3"
    assert identity.memory_mib is not None and 100_000 < identity.memory_mib < 131_072
    assert "tegra264" in identity.describe() and "L4T 38.2.0" in identity.describe()


def test_tensorrt_from_the_package_when_python_cannot_import_it() -> None:
    identity = device(facts("jp62-orin-nano", tensorrt={"python": None, "package": "10.3.0.30"}))
    assert identity.tensorrt == "10.3.0.30"


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_every_profile_is_detected_from_its_own_identity(profile: Profile) -> None:
    """A twin of any profile, or a real device with the same identity, resolves to it."""
    release, model, compatible = twin_identity(profile)
    jetson = describe_jetson(release, model.encode(), b"\0".join(c.encode() for c in compatible), b"", {})
    tensorrt = None if profile.build.backend != "tensorrt" else profile.software.tensorrt + ".0"
    identity = device(
        facts(
            "jp62-orin-nano",
            jetson=jetson,
            tensorrt={"python": tensorrt, "package": None},
            memory={"total_bytes": int(profile.module.memory_mib * 0.93) * 2**20},
        )
    )
    assert resolve_profile(identity, PROFILES).profile.name == profile.name


def test_unrecognised_device_lists_what_was_found_and_the_closest_profiles() -> None:
    # The JetPack 7.2 AGX Orin capture: no profile covers Orin on L4T 39.
    identity = device(FACT_SETS["jp72-agx-orin"])
    with pytest.raises(UnrecognisedDevice) as info:
        resolve_profile(identity, PROFILES)
    message = str(info.value)
    assert "L4T 39.2.0" in message and "p3701-0000" in message
    assert "closest: agx-orin-" in message
    assert "--profile" in message
    assert info.value.exit_code == 2


def test_a_plain_linux_box_is_unrecognised() -> None:
    identity = device(plain_linux())
    with pytest.raises(UnrecognisedDevice, match="no Jetson SoC, no module id, no L4T release"):
        resolve_profile(identity, PROFILES)


def test_unknown_module_falls_back_to_soc_and_memory_with_a_note() -> None:
    # A custom carrier board whose device tree names only itself.
    data = facts("jp62-orin-nano", memory={"total_bytes": int(15.3 * 2**30)})
    data["jetson"] = data["jetson"] | {"module_entries": ["acme,camera-board", "nvidia,tegra234"], "board_ids": []}
    resolution = resolve_profile(device(data), PROFILES)
    assert resolution.profile.name == "orin-nx-16gb-jp62"
    assert "SoC and memory" in resolution.notes[0]


def test_module_and_line_match_but_memory_picks_among_several() -> None:
    # A developer-kit module id (p3701-0000) that stands for two memory sizes.
    shared = ("nvidia,p3701-0000",)
    profiles = [
        replace(p, module=replace(p.module, compatible=shared))
        for p in (load_profile("agx-orin-32gb-jp62"), load_profile("agx-orin-64gb-jp62"))
    ]
    data = facts("jp62-orin-nano")
    data["jetson"] = data["jetson"] | {"module_entries": ["nvidia,p3701-0000", "nvidia,tegra234"]}
    for total_gib, expected in ((29.5, "agx-orin-32gb-jp62"), (61.0, "agx-orin-64gb-jp62")):
        data["memory"] = {"total_bytes": int(total_gib * 2**30)}
        assert resolve_profile(device(data), profiles).profile.name == expected


def test_tensorrt_major_separates_lines_with_the_same_l4t() -> None:
    thor = load_profile("thor-jp72")
    release, model, compatible = twin_identity(thor)
    jetson = describe_jetson(release, model.encode(), b"\0".join(c.encode() for c in compatible), b"", {})
    for version, expected in (("10.16.2", "thor-jp72"), ("11.4.1", "thor-jp72-trt11")):
        identity = device(facts("jp62-orin-nano", jetson=jetson, tensorrt={"python": version}, memory=NO_MEMORY))
        assert resolve_profile(identity, PROFILES).profile.name == expected
    unknown = device(facts("jp62-orin-nano", jetson=jetson, tensorrt=NO_TENSORRT, memory=NO_MEMORY))
    with pytest.raises(UnrecognisedDevice, match="several profiles"):
        resolve_profile(unknown, PROFILES)


def test_a_newer_patch_of_a_known_line_matches() -> None:
    profile = load_profile("orin-nano-8gb-jp62")
    assert l4t_in_line(profile, "36.4.9")
    assert not l4t_in_line(profile, "36.3.0")
    assert not l4t_in_line(profile, "35.4.1")
    assert not l4t_in_line(profile, None)


def test_requested_profile_that_fits_is_used() -> None:
    resolution = resolve_profile(device(FACT_SETS["jp62-orin-nano"]), PROFILES, "orin-nano-8gb-jp62")
    assert (resolution.profile.name, resolution.how, resolution.notes) == ("orin-nano-8gb-jp62", "requested", ())


def test_requested_profile_of_another_soc_is_explained() -> None:
    with pytest.raises(ProfileError) as info:
        resolve_profile(device(FACT_SETS["jp51-agx-orin-64gb"]), PROFILES, "xavier-nx-jp51")
    message = str(info.value)
    assert "--profile xavier-nx-jp51 is for tegra194" in message
    assert "the device reports tegra234" in message
    assert "looks like agx-orin-64gb-jp51" in message


def test_requested_profile_of_another_jetpack_is_explained() -> None:
    with pytest.raises(ProfileError) as info:
        resolve_profile(device(FACT_SETS["jp62-orin-nano"]), PROFILES, "orin-nano-8gb-jp51")
    message = str(info.value)
    assert "is for JetPack 5.1" in message and "the device runs L4T 36.4.7" in message
    assert "looks like orin-nano-8gb-jp62" in message


def test_requested_profile_of_another_module_of_the_same_soc_is_taken_with_a_note() -> None:
    resolution = resolve_profile(device(FACT_SETS["jp62-orin-nano"]), PROFILES, "orin-nx-16gb-jp62")
    assert resolution.profile.name == "orin-nx-16gb-jp62"
    assert "another module" in resolution.notes[0]


def test_requested_profile_on_a_device_without_identity_is_taken_as_given() -> None:
    identity = device(plain_linux())
    resolution = resolve_profile(identity, PROFILES, "orin-nano-8gb-jp62")
    assert resolution.how == "requested" and "no Jetson identity" in resolution.notes[0]


def test_unknown_requested_profile_suggests_close_names() -> None:
    with pytest.raises(ProfileError, match="did you mean orin-nx-16gb-jp62"):
        resolve_profile(device(FACT_SETS["jp62-orin-nano"]), PROFILES, "orin-nx-16gb-jp6")
