"""Device profiles: data in device_profiles/*.toml, validated on load and held to the JetPack matrix."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from edgekit.errors import EdgekitError
from edgekit.profiles import (
    PROFILES_DIR,
    Profile,
    ProfileError,
    available_profiles,
    closest_names,
    from_toml,
    load_profile,
    load_profiles,
    version_tuple,
)

EXPECTED = {
    "twin",
    "nano-jp46",
    "tx2-jp46",
    "xavier-nx-jp51",
    "agx-xavier-jp51",
    *(
        f"{module}-{line}"
        for module in (
            "orin-nano-4gb",
            "orin-nano-8gb",
            "orin-nx-8gb",
            "orin-nx-16gb",
            "agx-orin-32gb",
            "agx-orin-64gb",
        )
        for line in ("jp51", "jp60", "jp62")
    ),
    "thor-jp70",
    "thor-jp72",
    "thor-jp72-trt11",
}

# JetPack lines by L4T major.minor: (Ubuntu, default Python, CUDA, TensorRT a profile may name).
# Source: shared/reference/tensorrt-on-jetson.md 6.1. JetPack 4.6 (L4T 32.6.1) ships TensorRT 8.0.1
# and 4.6.1+ ship 8.2.1; the line is listed as 8.2. TensorRT 11.4.1 installs on JetPack 7.2.2+.
JP46 = ("18.04", "3.6", "10.2", ("8.2",))
JP51 = ("20.04", "3.8", "11.4", ("8.5",))
JP60 = ("22.04", "3.10", "12.2", ("8.6",))
JP62 = ("22.04", "3.10", "12.6", ("10.3",))
JP70 = ("24.04", "3.12", "13.0", ("10.13",))
JP72 = ("24.04", "3.12", "13.2", ("10.16", "11.4"))
MATRIX: dict[tuple[int, ...], tuple[str, str, str, tuple[str, ...]]] = {
    (32, 6): JP46,
    (32, 7): JP46,
    **{(35, minor): JP51 for minor in (2, 3, 4, 5, 6)},
    (36, 2): JP60,
    (36, 3): JP60,
    (36, 4): JP62,
    (36, 5): JP62,
    (38, 2): JP70,
    (38, 4): JP70,
    (39, 2): JP72,
}

# Device-tree SoC -> CUDA compute capability (jetson_stats CUDA_TABLE; Thor from the reference, 6.2).
SOC_CC = {"tegra210": "5.3", "tegra186": "6.2", "tegra194": "7.2", "tegra234": "8.7", "tegra264": "11.0"}

MODULE_ID = re.compile(r"^nvidia,p\d{4}-\d{4}$")

BASE = "orin-nano-8gb-jp62"
DEVICE_PROFILES = [name for name in available_profiles() if name != "twin"]


def _device_profiles() -> list[Profile]:
    return [load_profile(name) for name in DEVICE_PROFILES]


def _l4t_line(release: str) -> tuple[int, ...]:
    return version_tuple(release)[:2]


@pytest.mark.parametrize("name", available_profiles())
def test_shipped_profile_loads_under_its_own_name(name: str) -> None:
    profile = load_profile(name)
    assert isinstance(profile, Profile)
    assert profile.name == name == (PROFILES_DIR / f"{name}.toml").stem
    assert profile.description
    # to_dict() is plain data: it survives JSON and builds the same profile again.
    data = json.loads(json.dumps(profile.to_dict()))
    assert data["name"] == name
    assert data["software"]["l4t"] == list(profile.software.l4t)
    assert data["module"]["compatible"] == list(profile.module.compatible)
    assert from_toml(Profile, data) == profile


def test_the_expected_profiles_ship() -> None:
    assert set(available_profiles()) == EXPECTED
    assert [profile.name for profile in load_profiles()] == sorted(EXPECTED)


@pytest.mark.parametrize("name", DEVICE_PROFILES)
def test_software_agrees_with_the_jetpack_matrix(name: str) -> None:
    profile = load_profile(name)
    software = profile.software
    assert profile.build.backend == "tensorrt"
    lines = {_l4t_line(release) for release in software.l4t}
    assert lines <= MATRIX.keys(), f"{name}: L4T {software.l4t} outside the matrix"
    for line in lines:
        ubuntu, python, cuda, tensorrt = MATRIX[line]
        assert (software.ubuntu, software.python, software.cuda) == (ubuntu, python, cuda), f"{name}: L4T {line}"
        assert software.tensorrt in tensorrt, f"{name}: TensorRT {software.tensorrt} on L4T {line}"
    assert list(software.l4t) == sorted(software.l4t, key=version_tuple)
    assert len(set(software.l4t)) == len(software.l4t)


@pytest.mark.parametrize("name", DEVICE_PROFILES)
def test_module_facts(name: str) -> None:
    module = load_profile(name).module
    assert SOC_CC[module.soc] == module.compute_capability
    assert module.compatible
    assert all(MODULE_ID.match(entry) for entry in module.compatible), module.compatible
    assert module.memory_mib % 1024 == 0
    assert module.fast_fp16
    if module.soc in ("tegra210", "tegra186"):
        assert not module.fast_int8
    if module.soc == "tegra264" or name.startswith("orin-nano-"):
        assert module.dla_cores == 0


@pytest.mark.parametrize("name", DEVICE_PROFILES)
def test_int8_path_follows_tensorrt(name: str) -> None:
    profile = load_profile(name)
    tensorrt = version_tuple(profile.software.tensorrt)
    if not profile.module.fast_int8:
        expected = "none"
    elif tensorrt >= (11,):
        expected = "qdq"
    else:
        assert (8, 5) <= tensorrt < (11,)
        expected = "calibrator"
    assert profile.build.int8 == expected
    assert profile.build.precision == ("int8" if profile.module.fast_int8 else "fp16")


@pytest.mark.parametrize("name", DEVICE_PROFILES)
def test_build_fits_the_module(name: str) -> None:
    profile = load_profile(name)
    build, module = profile.build, profile.module
    # A quarter of the shared memory at most: the OS, the builder and the model need the rest.
    assert 0 < build.workspace_mib <= module.memory_mib // 4
    # With 8 GB or less the running service and the builder do not both fit.
    assert build.stop_service_during_build == (module.memory_mib <= 8 * 1024)


@pytest.mark.parametrize("name", DEVICE_PROFILES)
def test_rtsp_decoder_matches_the_jetpack_line(name: str) -> None:
    profile = load_profile(name)
    camera = profile.camera
    assert camera.rtsp_decode == "hardware"
    assert camera.rtsp_decoder.split()[0] == "nvv4l2decoder"
    jetpack7 = min(version_tuple(release) for release in profile.software.l4t) >= (38,)
    # JetPack 7's nvv4l2decoder has no enable-max-performance; naming it fails gst_parse_launch.
    assert ("enable-max-performance" in camera.rtsp_decoder) == (not jetpack7)
    assert camera.csi_pipeline.startswith("nvarguscamerasrc sensor-id={sensor} ")
    assert camera.csi_pipeline.endswith("appsink drop=true max-buffers=1 sync=false")
    for field in ("{width}", "{height}", "{fps}"):
        assert field in camera.csi_pipeline
    assert (camera.width, camera.height, camera.fps) == (1280, 720, 30)


def test_no_module_id_is_claimed_twice_for_one_release() -> None:
    # The same module on the same L4T release may only differ by the TensorRT major installed.
    owners: dict[tuple[str, str, int], str] = {}
    for profile in load_profiles():
        tensorrt_major = (version_tuple(profile.software.tensorrt) or (0,))[0]
        for entry in profile.module.compatible:
            for release in profile.software.l4t:
                key = (entry, release, tensorrt_major)
                assert key not in owners, f"{entry} on L4T {release}: {owners.get(key)} and {profile.name}"
                owners[key] = profile.name


def test_thor_on_jetpack_7_2_is_split_by_tensorrt_major() -> None:
    calibrator, qdq = load_profile("thor-jp72"), load_profile("thor-jp72-trt11")
    assert calibrator.module == qdq.module
    assert calibrator.software.l4t == qdq.software.l4t
    assert (calibrator.software.tensorrt, calibrator.build.int8) == ("10.16", "calibrator")
    assert (qdq.software.tensorrt, qdq.build.int8) == ("11.4", "qdq")


def test_only_nano_and_tx2_are_unsupported() -> None:
    unsupported = {profile.name: profile.unsupported for profile in load_profiles() if not profile.supported}
    assert set(unsupported) == {"nano-jp46", "tx2-jp46"}
    for name, reason in unsupported.items():
        assert "JetPack 5.1" in reason, name
        assert reason.endswith(".") and "\n" not in reason, name
    for profile in load_profiles():
        assert profile.supported == (profile.unsupported == "")


def _edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the base profile no longer holds {old!r} once"
    return text.replace(old, new)


MALFORMED = [
    ("syntax", ("fps = 30\n", "fps = 30\nthis is not toml\n"), "at line"),
    ("unknown-top-level-key", ("description = ", 'colour = "red"\ndescription = '), "'colour'"),
    ("unknown-module-key", ("[module]\n", "[module]\ncores = 4\n"), "'module.cores'"),
    ("missing-key", ("workspace_mib = 1024\n", ""), "'build.workspace_mib'"),
    ("renamed-table", ("[camera]\n", "[lens]\n"), "unknown key 'lens'"),
    ("dla-cores-string", ("dla_cores = 0\n", 'dla_cores = "two"\n'), "'module.dla_cores' must be int"),
    ("dla-cores-bool", ("dla_cores = 0\n", "dla_cores = true\n"), "'module.dla_cores' must be int"),
    ("fast-int8-int", ("fast_int8 = true\n", "fast_int8 = 1\n"), "'module.fast_int8' must be bool"),
    (
        "compatible-string",
        ('compatible = ["nvidia,p3767-0003", "nvidia,p3767-0005"]', 'compatible = "x"'),
        "'module.compatible' must be a list of strings",
    ),
    (
        "compatible-empty",
        ('compatible = ["nvidia,p3767-0003", "nvidia,p3767-0005"]', "compatible = []"),
        "'module.compatible'",
    ),
    ("int8-vocabulary", ('int8 = "calibrator"', 'int8 = "implicit"'), "'build.int8' is 'implicit'"),
    ("backend-vocabulary", ('backend = "tensorrt"', 'backend = "tflite"'), "'build.backend' is 'tflite'"),
    (
        "int8-none-with-fast-int8",
        ('int8 = "calibrator"', 'int8 = "none"'),
        "'build.int8' must be \"none\" exactly when 'module.fast_int8'",
    ),
    ("workspace-over-memory", ("workspace_mib = 1024\n", "workspace_mib = 16384\n"), "'build.workspace_mib'"),
    ("l4t-not-a-version", ('"36.4.0", ', '"R36.4.0", '), "'software.l4t'"),
    ("tensorrt-not-a-version", ('tensorrt = "10.3"', 'tensorrt = "ten"'), "'software.tensorrt'"),
]


@pytest.mark.parametrize(
    ("edit", "key"), [(edit, key) for _, edit, key in MALFORMED], ids=[case for case, _, _ in MALFORMED]
)
def test_malformed_profile_is_refused_naming_file_and_key(tmp_path: Path, edit: tuple[str, str], key: str) -> None:
    text = _edit((PROFILES_DIR / f"{BASE}.toml").read_text(), f'name = "{BASE}"', 'name = "broken"')
    path = tmp_path / "broken.toml"
    path.write_text(_edit(text, *edit))
    with pytest.raises(ProfileError) as info:
        load_profile("broken", tmp_path)
    message = str(info.value)
    assert str(path) in message
    assert key in message
    assert "malformed" in message
    assert "\n" not in message
    assert isinstance(info.value, EdgekitError)
    assert info.value.exit_code == 2


def test_base_profile_copy_loads(tmp_path: Path) -> None:
    # The malformed cases above start from this text: unedited, it loads.
    text = _edit((PROFILES_DIR / f"{BASE}.toml").read_text(), f'name = "{BASE}"', 'name = "broken"')
    (tmp_path / "broken.toml").write_text(text)
    (tmp_path / "README.md").write_text("not a profile")
    assert available_profiles(tmp_path) == ["broken"]
    assert load_profile("broken", tmp_path).module == load_profile(BASE).module


def test_file_name_must_match_profile_name(tmp_path: Path) -> None:
    path = tmp_path / "renamed.toml"
    shutil.copy(PROFILES_DIR / f"{BASE}.toml", path)
    with pytest.raises(ProfileError) as info:
        load_profile("renamed", tmp_path)
    message = str(info.value)
    assert str(path) in message
    assert f"names itself '{BASE}'" in message
    assert info.value.exit_code == 2


def test_unknown_profile_lists_known_ones_and_suggests_close_names() -> None:
    with pytest.raises(ProfileError) as info:
        load_profile("orin-nano-8gb-jp6")
    message = str(info.value)
    assert "'orin-nano-8gb-jp6'" in message
    assert "did you mean orin-nano-8gb-jp62" in message
    known = message.split("known profiles: ", 1)[1]
    for name in available_profiles():
        assert name in known
    assert isinstance(info.value, EdgekitError)
    assert info.value.exit_code == 2


def test_unknown_profile_without_close_names() -> None:
    assert closest_names("raspberry-pi", available_profiles()) == []
    with pytest.raises(ProfileError) as info:
        load_profile("raspberry-pi")
    assert "did you mean" not in str(info.value)
    assert "known profiles: " in str(info.value)


def test_close_names_rank_the_nearest_first() -> None:
    assert closest_names("orin-nano-8gb-jp6", available_profiles())[0] == "orin-nano-8gb-jp62"
    assert closest_names("xavier-jp51", available_profiles())[0] == "xavier-nx-jp51"


@pytest.mark.parametrize(
    "call",
    [available_profiles, load_profiles, lambda directory: load_profile("anything", directory)],
    ids=["available_profiles", "load_profiles", "load_profile"],
)
@pytest.mark.parametrize("folder", ["empty", "no-toml", "missing"])
def test_an_empty_profile_set_is_an_error_naming_the_folder(
    tmp_path: Path, call: Callable[[Path], object], folder: str
) -> None:
    # What `edgekit profiles list` shows from an install that lost its profiles: an error, not an empty table.
    directory = tmp_path / folder
    if folder != "missing":
        directory.mkdir()
    if folder == "no-toml":
        (directory / "README.md").write_text("not a profile")
    with pytest.raises(ProfileError) as info:
        call(directory)
    message = str(info.value)
    assert message == (
        f"There are no device profiles (*.toml) in {directory}; reinstall edgekit or restore that folder."
    )
    assert info.value.exit_code == 2
