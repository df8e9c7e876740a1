"""Settings: profile defaults < user config < command-line flags, as one pure merge."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.errors import UsageError
from edgekit.profiles import load_profile
from edgekit.settings import ConfigError, UserConfig, default_config_path, load_user_config, merge_settings

ORIN = load_profile("orin-nano-8gb-jp62")


def test_profile_alone_gives_the_profile_values() -> None:
    settings = merge_settings(ORIN)
    assert settings.profile == "orin-nano-8gb-jp62"
    assert settings.build.backend == "tensorrt"
    assert settings.build.precision == "int8"
    assert settings.build.int8 == "calibrator"
    assert settings.build.workspace_mib == 1024
    assert settings.build.dla_core is None
    assert settings.build.stop_service_during_build is True
    assert settings.camera.rtsp_decoder == ORIN.camera.rtsp_decoder
    assert (settings.camera.width, settings.camera.height, settings.camera.fps) == (1280, 720, 30)


def test_user_config_overrides_the_profile_and_flags_override_both() -> None:
    user = {"build": {"precision": "fp16", "workspace_mib": 2048}, "camera": {"width": 1920, "height": 1080}}
    flags = {"build": {"precision": "fp32", "workspace_mib": None}, "camera": {"height": 720}}
    settings = merge_settings(ORIN, user, flags)
    assert settings.build.precision == "fp32"  # flag beats config
    assert settings.build.workspace_mib == 2048  # an unset flag leaves the config's value
    assert settings.camera.width == 1920  # config beats profile
    assert settings.camera.height == 720  # flag beats config
    assert settings.camera.fps == 30  # profile where nobody said otherwise
    assert settings.build.int8 == "calibrator"  # only the profile decides the INT8 path


def test_merge_does_not_change_the_profile() -> None:
    merge_settings(ORIN, {"build": {"workspace_mib": 1}})
    assert load_profile("orin-nano-8gb-jp62").build.workspace_mib == ORIN.build.workspace_mib == 1024


@pytest.mark.parametrize(
    ("layer", "words"),
    [({"engine": {"x": 1}}, "section 'engine'"), ({"build": {"int8": "qdq"}}, "build.int8")],
)
def test_unknown_settings_are_refused(layer: dict[str, dict[str, object]], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        merge_settings(ORIN, layer)


def test_user_config_file_is_read_and_merged(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('profile = "orin-nano-8gb-jp62"\n[build]\nprecision = "fp16"\ndla_core = 0\n[camera]\nfps = 15\n')
    config = load_user_config(path)
    assert config.profile == "orin-nano-8gb-jp62"
    settings = merge_settings(ORIN, config.layer())
    assert (settings.build.precision, settings.build.dla_core, settings.camera.fps) == ("fp16", 0, 15)
    assert settings.build.workspace_mib == 1024


def test_missing_default_config_is_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_config_path() == tmp_path / "edgekit" / "config.toml"
    assert load_user_config() == UserConfig()
    (tmp_path / "edgekit").mkdir()
    (tmp_path / "edgekit" / "config.toml").write_text("[camera]\nwidth = 640\n")
    assert load_user_config().camera.width == 640


def test_missing_named_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_user_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[build\n", "malformed"),
        ("[build]\nworkspace = 1\n", "'build.workspace'"),
        ('[build]\nworkspace_mib = "big"\n', "'build.workspace_mib' must be int"),
        ("[camera]\nfps = true\n", "'camera.fps' must be int"),
        ('colour = "red"\n', "'colour'"),
        ('[build]\nprecision = "int4"\n', "int4"),
    ],
)
def test_malformed_config_names_the_file_and_key(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_user_config(path)
    assert str(path) in str(info.value) and words in str(info.value)
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2


def test_cuda_goes_through_libcudart_unless_a_device_is_set_to_pycuda(tmp_path: Path) -> None:
    # Every JetPack has libcudart; pycuda needs a build on the device, so it is opt-in.
    assert merge_settings(ORIN).build.cuda == "cudart"
    path = tmp_path / "config.toml"
    path.write_text('[build]\ncuda = "pycuda"\n')
    assert merge_settings(ORIN, load_user_config(path).layer()).build.cuda == "pycuda"
    assert merge_settings(ORIN, load_user_config(path).layer(), {"build": {"cuda": "cudart"}}).build.cuda == "cudart"
    path.write_text('[build]\ncuda = "cupy"\n')
    with pytest.raises(ConfigError, match="build.cuda = 'cupy'; use one of cudart, pycuda"):
        load_user_config(path)
