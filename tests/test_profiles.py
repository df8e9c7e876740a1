"""Device profiles: data in device_profiles/*.toml, validated on load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgekit.errors import EdgekitError
from edgekit.profiles import (
    PROFILES_DIR,
    Identity,
    Profile,
    ProfileError,
    available_profiles,
    load_profile,
    match_profile,
)

ORIN_MODEL = "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"

GOOD = """\
name = "{name}"
description = "Test board"
module = "Test module"
soc = "tegra234"
jetpack = "6.1"
l4t = "{l4t}"
ubuntu = "22.04"
python = "3.10"
cuda = "12.6"
tensorrt = "10.3"

[identity]
nv_tegra_release = "# R36 (release), REVISION: 4.0"
model = "{model}"
compatible = ["nvidia,test", "nvidia,tegra234"]
"""


def test_orin_nano_profile() -> None:
    profile = load_profile("orin-nano-8gb-jp62")
    assert isinstance(profile, Profile)
    assert profile.name == "orin-nano-8gb-jp62"
    assert profile.module == "Jetson Orin Nano 8GB"
    assert profile.soc == "tegra234"
    assert profile.jetpack == "6.2"
    assert profile.l4t == "36.4.3"
    assert profile.ubuntu == "22.04"
    assert profile.python == "3.10"
    assert profile.cuda == "12.6"
    assert profile.tensorrt == "10.3"
    assert profile.identity == Identity(
        nv_tegra_release=profile.identity.nv_tegra_release,
        model=ORIN_MODEL,
        compatible=("nvidia,p3768-0000+p3767-0005-super", "nvidia,p3767-0005", "nvidia,tegra234"),
    )
    assert profile.identity.nv_tegra_release.startswith("# R36 (release), REVISION: 4.3")


def test_every_shipped_profile_loads_and_names_itself() -> None:
    names = available_profiles()
    assert "orin-nano-8gb-jp62" in names
    assert names == sorted(names)
    for name in names:
        profile = load_profile(name)
        assert profile.name == name
        assert profile.identity.compatible


def test_unknown_profile_lists_known_ones() -> None:
    with pytest.raises(ProfileError) as info:
        load_profile("xavier-nx-jp46")
    message = str(info.value)
    assert "'xavier-nx-jp46'" in message
    for name in available_profiles():
        assert name in message
    assert isinstance(info.value, EdgekitError)
    assert info.value.exit_code == 2


def test_unknown_profile_in_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="known profiles: none"):
        load_profile("anything", tmp_path)


def test_profile_from_another_directory(tmp_path: Path) -> None:
    (tmp_path / "board-a.toml").write_text(GOOD.format(name="board-a", l4t="36.4.0", model="Board A"))
    (tmp_path / "board-b.toml").write_text(GOOD.format(name="board-b", l4t="35.6.0", model="Board B"))
    (tmp_path / "README.md").write_text("not a profile")
    assert available_profiles(tmp_path) == ["board-a", "board-b"]
    profile = load_profile("board-b", tmp_path)
    assert profile.l4t == "35.6.0"
    assert profile.identity.compatible == ("nvidia,test", "nvidia,tegra234")


@pytest.mark.parametrize(
    "text",
    [
        'name = "broken"\nthis is not toml\n',
        GOOD.format(name="broken", l4t="36.4.0", model="M").replace("[identity]\n", ""),
        GOOD.format(name="broken", l4t="36.4.0", model="M").split("[identity]")[0],
        GOOD.format(name="broken", l4t="36.4.0", model="M").replace('cuda = "12.6"\n', ""),
        GOOD.format(name="broken", l4t="36.4.0", model="M").replace('cuda = "12.6"\n', 'cuda = "12.6"\nextra = 1\n'),
        GOOD.format(name="broken", l4t="36.4.0", model="M").replace('model = "M"\n', ""),
    ],
    ids=["syntax", "identity-fields-at-top", "no-identity", "missing-field", "unknown-field", "identity-no-model"],
)
def test_malformed_profile_names_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(ProfileError) as info:
        load_profile("broken", tmp_path)
    assert str(path) in str(info.value)
    assert "malformed" in str(info.value)


def test_match_profile() -> None:
    assert match_profile(ORIN_MODEL, "36.4.3") == "orin-nano-8gb-jp62"
    assert match_profile(ORIN_MODEL, "36.4.0") is None
    assert match_profile("NVIDIA Jetson AGX Orin", "36.4.3") is None
    assert match_profile(None, None) is None
    assert match_profile(ORIN_MODEL, None) is None


def test_match_profile_in_directory(tmp_path: Path) -> None:
    shutil.copy(PROFILES_DIR / "orin-nano-8gb-jp62.toml", tmp_path)
    (tmp_path / "board-a.toml").write_text(GOOD.format(name="board-a", l4t="35.6.0", model=ORIN_MODEL))
    assert match_profile(ORIN_MODEL, "35.6.0", tmp_path) == "board-a"
    assert match_profile(ORIN_MODEL, "36.4.3", tmp_path) == "orin-nano-8gb-jp62"
    assert match_profile("Board A", "35.6.0", tmp_path) is None
