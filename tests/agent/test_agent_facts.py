"""The agent's facts module, fed the real strings public Jetson captures show.

The captures live in tests/data/jetson/<capture>/ and are described, with their sources,
in tests/data/jetson/SOURCES.md. Where a test needs text no capture shows, it says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fake_cudart import build_fake_cudart

from edgekit.agent import facts as facts_module
from edgekit.agent.facts import (
    collect_facts,
    cudart_candidates,
    describe_jetson,
    module_entries,
    parse_board_ids,
    parse_cuda_version,
    parse_device_tree_strings,
    parse_dpkg,
    parse_gstreamer,
    parse_meminfo,
    parse_soc,
    parse_tegra_release,
    probe_cuda_runtime,
    version_prefix,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "jetson"
CAPTURES = sorted(path.name for path in DATA.iterdir() if path.is_dir())
APT_CACHE_CAPTURES = ["jp512-agx-orin-devkit", "jp62-agx-orin-devkit", "jp621-agx-orin-devkit"]
DPKG_LIST_CAPTURES = ["jp464-nano", "jp466-nano", "jp60-orin-dpkg", "jp62-agx-orin-32gb", "jp621-orin-dpkg"]
JETSON_KEYS = {
    "nv_tegra_release",
    "l4t",
    "l4t_source",
    "jetpack",
    "model",
    "compatible",
    "soc",
    "board_ids",
    "module_entries",
}
# Documented in board_ids.md (anduril/jetpack-nixos PR #488, Adafruit PR #379), not printed
# by any capture: the first compatible entry of an Orin Nano Super developer kit.
ORIN_NANO_SUPER_COMPATIBLE = b"nvidia,p3768-0000+p3767-0005-super\0"


def captured(capture: str, name: str) -> bytes:
    return (DATA / capture / name).read_bytes()


def captured_text(capture: str, name: str) -> str:
    return captured(capture, name).decode()


def restore_nuls(printed: bytes) -> bytes:
    """/proc/device-tree/compatible as it is on disk, from a capture that printed it.

    On disk every entry ends in a NUL; the printed captures lost them, which glued the
    entries together ("...+p3834-0008nvidia,p3834-0008nvidia,tegra264"). Every entry
    starts with "nvidia,", so a NUL goes before each "nvidia," but the first, and one
    at the end.
    """
    return printed.strip().replace(b"nvidia,", b"\0nvidia,").lstrip(b"\0") + b"\0"


def describe_capture(capture: str, **overrides: object) -> dict:
    """describe_jetson on what one capture holds; a file it lacks reads as absent."""
    directory = DATA / capture
    release = directory / "nv_tegra_release"
    model = directory / "model"
    compatible = directory / "compatible"
    dpkg = directory / "dpkg.txt"
    arguments = {
        "release_text": release.read_text() if release.is_file() else None,
        "model": model.read_bytes() if model.is_file() else None,
        "compatible": restore_nuls(compatible.read_bytes()) if compatible.is_file() else b"",
        "boardids": b"",
        "packages": parse_dpkg(dpkg.read_text()) if dpkg.is_file() else {},
    }
    arguments.update(overrides)
    return describe_jetson(**arguments)


# --- the NUL helper and device-tree strings ---------------------------------------------


def test_restore_nuls_gives_the_on_disk_form():
    thor = captured("jp70-thor-agx-devkit", "compatible")
    assert b"\0" not in thor
    assert restore_nuls(thor) == b"nvidia,p4071-0000+p3834-0008\0nvidia,p3834-0008\0nvidia,tegra264\0"
    assert restore_nuls(b"nvidia,p3737-0000+p3701-0000\n") == b"nvidia,p3737-0000+p3701-0000\0"


def test_device_tree_strings_split_on_nuls():
    thor = restore_nuls(captured("jp70-thor-agx-devkit", "compatible"))
    assert parse_device_tree_strings(thor) == ["nvidia,p4071-0000+p3834-0008", "nvidia,p3834-0008", "nvidia,tegra264"]
    assert parse_device_tree_strings(b"") == []
    assert parse_device_tree_strings(b"\0\0") == []


# --- /etc/nv_tegra_release ----------------------------------------------------------------

RELEASES = {
    "jp463-nano-emmc": "32.7.3",  # JetPack 4.6.3
    "jp466-nano": "32.7.6",  # JetPack 4.6.6
    "jp512-agx-orin-devkit": "35.4.1",  # JetPack 5.1.2
    "jp512-xavier-nx": "35.4.1",  # JetPack 5.1.2, BOARD: t186ref on a Xavier
    "jp62-agx-orin-devkit": "36.4.3",  # JetPack 6.2, 4 lines
    "jp621-agx-orin-devkit": "36.4.4",  # JetPack 6.2.1
    "jp621-orin-nano-super": "36.4.7",  # JetPack 6.2.1
    "jp70-thor-agx-devkit": "38.2.0",  # JetPack 7.0, one line printed
    "jp70-thor-r38.2.0-multiline": "38.2.0",  # JetPack 7.0, 5 lines ending in INSTALL_TYPE=
    "jp72-agx-orin-devkit": "39.2.0",  # JetPack 7.2, DATE on a 12-hour clock with PM
}


def test_every_captured_release_file_is_checked():
    with_release = {name for name in CAPTURES if (DATA / name / "nv_tegra_release").is_file()}
    assert with_release == set(RELEASES)


@pytest.mark.parametrize(("capture", "l4t"), sorted(RELEASES.items()))
def test_tegra_release_gives_the_l4t_version(capture, l4t):
    assert parse_tegra_release(captured_text(capture, "nv_tegra_release")) == l4t


def test_the_release_captures_cover_the_format_changes():
    # The variants the parametrized test above relies on, so that it keeps covering them.
    multiline = captured_text("jp70-thor-r38.2.0-multiline", "nv_tegra_release").splitlines()
    assert len(multiline) == 5
    assert multiline[-1] == "INSTALL_TYPE="
    assert len(captured_text("jp70-thor-agx-devkit", "nv_tegra_release").splitlines()) == 1
    assert " PM UTC " in captured_text("jp72-agx-orin-devkit", "nv_tegra_release")


@pytest.mark.parametrize("text", ["", "Ubuntu 22.04.4 LTS\n", "# R36 (release)\n", "TARGET_USERSPACE_LIB_DIR=nvidia\n"])
def test_text_that_is_no_release_file_gives_none(text):
    assert parse_tegra_release(text) is None


# --- describe_jetson on whole captures ----------------------------------------------------


def test_thor_devkit():
    jetson = describe_capture("jp70-thor-agx-devkit")
    assert set(jetson) == JETSON_KEYS
    assert jetson["soc"] == "tegra264"
    assert jetson["board_ids"] == ["p4071-0000", "p3834-0008"]
    assert jetson["compatible"] == ["nvidia,p4071-0000+p3834-0008", "nvidia,p3834-0008", "nvidia,tegra264"]
    assert "nvidia,p3834-0008" in jetson["module_entries"]
    assert "nvidia,p4071-0000" in jetson["module_entries"]
    assert jetson["model"] == "NVIDIA Jetson AGX Thor Developer Kit"
    assert jetson["l4t"] == "38.2.0"
    assert jetson["l4t_source"] == "nv_tegra_release"
    assert jetson["nv_tegra_release"] == captured_text("jp70-thor-agx-devkit", "nv_tegra_release").strip()
    assert jetson["jetpack"] is None


def test_a_multiline_release_file_reports_its_first_line():
    jetson = describe_capture("jp70-thor-r38.2.0-multiline")
    assert jetson["nv_tegra_release"].startswith("# R38 (release), REVISION: 2.0, GCID: 41844464,")
    assert "INSTALL_TYPE" not in jetson["nv_tegra_release"]
    assert jetson["l4t"] == "38.2.0"


def test_agx_orin_64gb_soc_is_tegra234_not_the_last_entry():
    jetson = describe_capture("unknown-jp-agx-orin-64gb")
    assert jetson["compatible"][-1] == "nvidia,tegra23x"
    assert jetson["soc"] == "tegra234"
    assert jetson["board_ids"] == ["p3737-0000", "p3701-0005"]
    assert "nvidia,p3701-0005" in jetson["module_entries"]
    assert jetson["l4t"] is None
    assert jetson["l4t_source"] is None
    assert jetson["model"] is None


def test_jp72_agx_orin_with_a_truncated_compatible():
    # The capture's compatible stops at the first NUL: no SoC entry, but the module id is there.
    jetson = describe_capture("jp72-agx-orin-devkit")
    assert jetson["compatible"] == ["nvidia,p3737-0000+p3701-0000"]
    assert jetson["soc"] is None
    assert "p3701-0000" in jetson["board_ids"]
    assert "nvidia,p3701-0000" in jetson["module_entries"]
    assert jetson["model"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert jetson["l4t"] == "39.2.0"


def test_orin_nano_super_entry_is_split_into_module_ids():
    jetson = describe_capture("jp621-orin-nano-super", compatible=ORIN_NANO_SUPER_COMPATIBLE)
    assert jetson["board_ids"] == ["p3768-0000", "p3767-0005"]
    assert jetson["module_entries"][0] == "nvidia,p3768-0000+p3767-0005-super"
    assert {"nvidia,p3768-0000", "nvidia,p3767-0005-super", "nvidia,p3767-0005"} <= set(jetson["module_entries"])
    assert jetson["model"] == "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"
    assert jetson["l4t"] == "36.4.7"


def test_module_entries_keep_order_and_drop_duplicates():
    entries = parse_device_tree_strings(restore_nuls(captured("jp70-thor-agx-devkit", "compatible")))
    assert module_entries(entries, parse_board_ids(entries)) == [
        "nvidia,p4071-0000+p3834-0008",
        "nvidia,p4071-0000",
        "nvidia,p3834-0008",
        "nvidia,tegra264",
    ]


def test_module_entries_strip_a_suffix_from_a_joined_module_id():
    # Without board ids, so the suffix stripping alone has to yield "nvidia,p3767-0005".
    entries = parse_device_tree_strings(ORIN_NANO_SUPER_COMPATIBLE)
    assert module_entries(entries, []) == [
        "nvidia,p3768-0000+p3767-0005-super",
        "nvidia,p3768-0000",
        "nvidia,p3767-0005-super",
        "nvidia,p3767-0005",
    ]


@pytest.mark.parametrize("capture", [name for name in CAPTURES if (DATA / name / "model").is_file()])
def test_model_loses_its_trailing_nul(capture):
    printed = captured(capture, "model")
    on_disk = printed.strip() + b"\0"
    jetson = describe_capture(capture, model=on_disk)
    assert jetson["model"] == printed.decode().strip()
    assert "\0" not in jetson["model"]


def test_soc_takes_the_first_tegra_number():
    assert parse_soc(["nvidia,tegra23x"]) is None
    assert parse_soc(["nvidia,p3701-0005", "nvidia,tegra234", "nvidia,tegra23x"]) == "tegra234"
    assert parse_soc(["nvidia,tegra264x"]) is None
    assert parse_soc([]) is None


# --- L4T from dpkg when the release file is missing -----------------------------------------


def test_l4t_falls_back_to_the_l4t_core_package():
    packages = parse_dpkg(captured_text("jp60-orin-dpkg", "dpkg.txt"))
    jetson = describe_jetson(None, None, b"", b"", packages)
    assert jetson["nv_tegra_release"] is None
    assert jetson["l4t"] == "36.3.0"
    assert jetson["l4t_source"] == "dpkg"


def test_l4t_falls_back_when_the_release_file_does_not_parse():
    packages = parse_dpkg(captured_text("jp60-orin-dpkg", "dpkg.txt"))
    jetson = describe_jetson("TARGET_USERSPACE_LIB_DIR=nvidia\n", None, b"", b"", packages)
    assert (jetson["l4t"], jetson["l4t_source"]) == ("36.3.0", "dpkg")


def test_the_release_file_wins_over_dpkg():
    packages = parse_dpkg(captured_text("jp60-orin-dpkg", "dpkg.txt"))
    jetson = describe_jetson(captured_text("jp62-agx-orin-devkit", "nv_tegra_release"), None, b"", b"", packages)
    assert jetson["l4t"] == "36.4.3"
    assert jetson["l4t_source"] == "nv_tegra_release"


def test_jetpack_comes_from_the_jetpack_package():
    # No capture has a dpkg row for nvidia-jetpack; the version is the one apt-cache shows
    # in jp62-agx-orin-devkit/dpkg.txt.
    assert "Version: 6.2+b77" in captured_text("jp62-agx-orin-devkit", "dpkg.txt")
    jetson = describe_jetson(None, None, b"", b"", {"nvidia-jetpack": "6.2+b77"})
    assert jetson["jetpack"] == "6.2"
    assert jetson["l4t"] is None


# --- nvidia,boardids ----------------------------------------------------------------------


def test_boardids_in_the_documented_older_form():
    # "3448:0000:B00" is the nvidia,boardids form board_ids.md documents for older L4T;
    # no capture printed that file, so this is the documented form, not a capture.
    assert parse_board_ids([], "3448:0000:B00") == ["p3448-0000"]
    assert parse_board_ids([], "") == []
    jetson = describe_jetson(None, None, b"", b"3448:0000:B00\0", {})
    assert jetson["board_ids"] == ["p3448-0000"]
    assert jetson["module_entries"] == ["nvidia,p3448-0000"]


def test_boardids_add_to_compatible_ids_without_duplicates():
    entries = parse_device_tree_strings(restore_nuls(captured("jp72-agx-orin-devkit", "compatible")))
    assert parse_board_ids(entries, "3701:0000:B00") == ["p3737-0000", "p3701-0000"]
    assert parse_board_ids(entries, "3701:0001:B00") == ["p3737-0000", "p3701-0000", "p3701-0001"]


# --- dpkg ---------------------------------------------------------------------------------


def test_every_captured_dpkg_file_is_checked():
    with_dpkg = {name for name in CAPTURES if (DATA / name / "dpkg.txt").is_file()}
    assert with_dpkg == set(APT_CACHE_CAPTURES) | set(DPKG_LIST_CAPTURES)


@pytest.mark.parametrize("capture", DPKG_LIST_CAPTURES)
def test_every_dpkg_l_row_parses(capture):
    rows = captured_text(capture, "dpkg.txt").splitlines()
    assert all(row.startswith("ii  ") for row in rows)
    packages = parse_dpkg("\n".join(rows))
    assert len(packages) == len(rows)
    assert all(":" not in name for name in packages)


def test_jp464_nano_packages():
    packages = parse_dpkg(captured_text("jp464-nano", "dpkg.txt"))
    assert len(packages) == 83
    assert packages["libnvinfer8"] == "8.2.1-1+cuda10.2"
    assert packages["cuda-cudart-10-2"] == "10.2.300-1"
    assert packages["tensorrt"] == "8.2.1.9-1+cuda10.2"
    assert packages["nvidia-l4t-core"] == "32.7.4-20230608212426"
    # "libnvidia-container0:arm64" in the capture: the architecture is dropped.
    assert packages["libnvidia-container0"] == "0.10.0+jetpack"
    # The kernel package does not start with the L4T version.
    assert version_prefix(packages["nvidia-l4t-kernel"]) == "4.9.337"


def test_jp466_nano_packages():
    assert parse_dpkg(captured_text("jp466-nano", "dpkg.txt")) == {"libnvinfer8": "8.2.1-1+cuda10.2"}


def test_jp621_orin_packages():
    packages = parse_dpkg(captured_text("jp621-orin-dpkg", "dpkg.txt"))
    assert packages["libnvinfer10"] == "10.3.0.30-1+cuda12.5"
    assert packages["nvidia-l4t-cuda"] == "36.4.7-20250918154033"
    assert packages["nvidia-tensorrt"] == "6.2.1+b38"
    assert "nvidia-l4t-core" not in packages


def test_jp62_agx_orin_32gb_packages():
    packages = parse_dpkg(captured_text("jp62-agx-orin-32gb", "dpkg.txt"))
    assert packages == {"nvidia-l4t-core": "36.4.3-20250107174145"}
    assert version_prefix(packages["nvidia-l4t-core"]) == "36.4.3"


def test_dpkg_l_header_and_rows_not_installed_are_skipped():
    # The header is the one `dpkg -l` prints on any Debian system; the "rc" (removed,
    # config files left) row is synthetic, in the captured rows' layout.
    header = (
        "Desired=Unknown/Install/Remove/Purge/Hold\n"
        "| Status=Not/Inst/Conf-files/Unpacked/halF-conf/Half-inst/trig-aWait/Trig-pend\n"
        "|/ Err?=(none)/Reinst-required (Status,Err: uppercase=bad)\n"
        "||/ Name           Version      Architecture Description\n"
        "+++-==============-============-============-=================================\n"
    )
    removed = "rc  libnvinfer7                 7.1.3-1+cuda10.2                 arm64        TensorRT\n"
    text = header + removed + captured_text("jp466-nano", "dpkg.txt")
    assert parse_dpkg(text) == {"libnvinfer8": "8.2.1-1+cuda10.2"}


def test_dpkg_query_rows_in_the_format_the_agent_asks_for():
    # dpkg-query -W -f '${db:Status-Abbrev}\t${binary:Package}\t${Version}\n', versions from
    # the captures. With a pattern, dpkg-query also lists packages it knows but has not
    # installed ("un", empty version) and removed ones ("rc"): synthetic rows, as dpkg-query
    # prints them.
    text = (
        "ii \tnvidia-l4t-core\t36.4.3-20250107174145\n"
        "ii \tlibnvidia-container0:arm64\t0.10.0+jetpack\n"
        "un \tlibnvinfer7\t\n"
        "rc \tlibnvinfer8\t8.2.1-1+cuda10.2\n"
        "ii \tlibnvinfer10\t10.3.0.30-1+cuda12.5\n"
    )
    assert parse_dpkg(text) == {
        "nvidia-l4t-core": "36.4.3-20250107174145",
        "libnvidia-container0": "0.10.0+jetpack",
        "libnvinfer10": "10.3.0.30-1+cuda12.5",
    }
    assert parse_dpkg("un \tlibnvinfer7\t\n") == {}


def test_dpkg_query_show_rows():
    # `dpkg-query --show` prints "name\tversion"; a known package that is not installed
    # has an empty version. Synthetic rows with captured versions.
    text = "nvidia-l4t-core\t36.3.0-20240719161631\nlibnvinfer7\t\n"
    assert parse_dpkg(text) == {"nvidia-l4t-core": "36.3.0-20240719161631"}


@pytest.mark.parametrize("capture", APT_CACHE_CAPTURES)
def test_apt_cache_stanzas_are_not_package_rows(capture):
    text = captured_text(capture, "dpkg.txt")
    assert text.startswith("Package: nvidia-jetpack\n")
    assert "\nVersion: " in text
    assert parse_dpkg(text) == {}


# --- versions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        ("10.3.0.30-1+cuda12.5", "10.3.0.30"),
        ("36.4.3-20250107174145", "36.4.3"),
        ("6.2+b77", "6.2"),
        ("5.1.2-b104", "5.1.2"),
        ("1:2.3", "2.3"),
        ("8.2.1-1+cuda10.2", "8.2.1"),
        ("abc", None),
        ("", None),
        (None, None),
    ],
)
def test_version_prefix(text, prefix):
    assert version_prefix(text) == prefix


def test_cuda_version_from_version_json():
    # The layout of /usr/local/cuda/version.json (JetPack 5+), trimmed: no capture exists.
    text = json.dumps({"cuda": {"name": "CUDA SDK", "version": "12.6.68"}, "cuda_cudart": {"version": "12.6.68"}})
    assert parse_cuda_version(text) == "12.6.68"


def test_cuda_version_from_version_txt():
    # Synthetic: the one line /usr/local/cuda/version.txt holds on JetPack 4; no capture exists.
    assert parse_cuda_version("CUDA Version 10.2.300\n") == "10.2.300"


@pytest.mark.parametrize(
    "text",
    ["", "garbage", "[1, 2]", '{"cuda": "12.6"}', '{"cuda": {"name": "CUDA SDK"}}', '{"cuda": {"version": 12}}'],
)
def test_cuda_version_of_anything_else_is_none(text):
    assert parse_cuda_version(text) is None


# --- OpenCV and memory --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capture", "gstreamer"),
    [("jp51-orin-nano-donkeycar", True), ("jp51-orin-nano-pip-opencv", False)],
)
def test_gstreamer_from_captured_build_information(capture, gstreamer):
    assert parse_gstreamer(captured_text(capture, "cv2_build.txt")) is gstreamer


def test_gstreamer_line_missing_reads_as_false():
    assert parse_gstreamer("  Video I/O:\n    FFMPEG:                      YES\n") is False


def test_meminfo_is_converted_to_bytes():
    # Synthetic /proc/meminfo text: no Jetson meminfo capture exists (see SOURCES.md).
    text = "MemTotal:        7995012 kB\nMemFree:          123 kB\nMemAvailable:    5000000 kB\n"
    assert parse_meminfo(text) == {"total_bytes": 7995012 * 1024, "available_bytes": 5000000 * 1024}
    assert parse_meminfo("MemTotal: 4 kB\n") == {"total_bytes": 4096, "available_bytes": None}
    assert parse_meminfo("") == {"total_bytes": None, "available_bytes": None}


# --- collecting on this machine -----------------------------------------------------------


def check_facts(facts, state_dir_parent):
    assert set(facts) == {
        "python",
        "platform",
        "jetson",
        "packages",
        "tensorrt",
        "cuda",
        "cuda_runtime",
        "gpu_nodes",
        "cv2",
        "gstreamer_elements",
        "numpy",
        "onnxruntime",
        "pycuda",
        "systemd",
        "disk",
        "memory",
        "cameras",
        "hostname",
    }
    assert isinstance(facts["python"]["version"], str)
    assert set(facts["platform"]) == {"machine", "system", "glibc"}
    assert facts["platform"]["system"] == "Linux"
    assert set(facts["jetson"]) == JETSON_KEYS
    assert isinstance(facts["jetson"]["compatible"], list)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in facts["packages"].items())
    assert set(facts["tensorrt"]) == {"python", "package"}
    assert facts["disk"]["path"] == str(state_dir_parent)
    assert 0 < facts["disk"]["free_bytes"] <= facts["disk"]["total_bytes"]
    assert 0 < facts["memory"]["available_bytes"] <= facts["memory"]["total_bytes"]
    assert set(facts["cameras"]) == {"video", "by_id"}
    assert facts["cameras"]["video"] == sorted(facts["cameras"]["video"])
    assert isinstance(facts["cameras"]["by_id"], dict)
    assert isinstance(facts["systemd"], bool)
    assert isinstance(facts["hostname"], str)
    assert set(facts["cuda_runtime"]) == {"library", "tried", "version", "devices", "compute_capability", "error"}
    assert all(set(node) == {"path", "group", "mode"} for node in facts["gpu_nodes"])


def test_collect_facts_on_this_machine(tmp_path):
    facts = collect_facts(str(tmp_path / "not" / "yet"))
    assert json.loads(json.dumps(facts)) == facts
    check_facts(facts, tmp_path)
    assert facts["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    # The test environment has these installed; on a bare device they read as None.
    assert isinstance(facts["cv2"]["version"], str)
    assert isinstance(facts["cv2"]["gstreamer"], bool)
    assert isinstance(facts["numpy"], str)
    assert isinstance(facts["onnxruntime"], str)


def test_running_the_source_as_the_host_does(tmp_path):
    source = Path(facts_module.__file__).read_text()
    done = subprocess.run(
        [sys.executable, "-c", source, str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    facts = json.loads(lines[0])
    assert isinstance(facts, dict)
    check_facts(facts, tmp_path)


# --- CUDA, asked the way the TensorRT backend will ask -------------------------------------


@pytest.fixture(scope="module")
def fake_cudart(tmp_path_factory):
    return build_fake_cudart(tmp_path_factory.getbasetemp() / "fake-cudart")


def test_cuda_runtime_reports_the_gpu(fake_cudart, monkeypatch):
    monkeypatch.setenv("FAKE_CUDART_CC", "7.2")
    monkeypatch.delenv("FAKE_CUDART_DEVICES", raising=False)
    found = probe_cuda_runtime(["libcudart.so.99", str(fake_cudart)])
    assert found == {
        "library": str(fake_cudart),
        "tried": 2,
        "version": "12.6",
        "devices": 1,
        "compute_capability": "7.2",
        "error": None,
    }


def test_cuda_runtime_without_a_gpu_says_what_cuda_said(fake_cudart, monkeypatch):
    monkeypatch.setenv("FAKE_CUDART_DEVICES", "0")
    found = probe_cuda_runtime([str(fake_cudart)])
    assert found["devices"] is None and found["compute_capability"] is None
    assert found["error"] == "cudaErrorNoDevice: no CUDA-capable device is detected"


def test_cuda_runtime_missing(tmp_path):
    found = probe_cuda_runtime([str(tmp_path / "libcudart.so.12"), "libcudart.so.0-not-here"])
    assert found["library"] is None and found["tried"] == 2 and found["error"] is None


def test_cudart_is_searched_by_soname_first_then_in_cuda_directories(tmp_path):
    candidates = cudart_candidates([str(tmp_path)])
    assert candidates[0] == "libcudart.so.13"
    sonames = [c for c in candidates if "/" not in c]
    assert sonames == ["libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0"]
    twelve = candidates.index("libcudart.so.12")
    assert candidates[twelve + 1] == "/usr/local/cuda/lib64/libcudart.so.12"
    assert str(tmp_path / "nvidia" / "cuda_runtime" / "lib" / "libcudart.so.12") in candidates
