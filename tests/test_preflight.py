"""Preflight on fact sets built from real Jetson captures: refuse early, say the fix."""

from __future__ import annotations

from typing import Any

import pytest
from jetson_facts import facts

from edgekit.device.facts import DeviceFacts
from edgekit.errors import PreflightFailed
from edgekit.preflight import DISK_MARGIN_BYTES, Check, DiskNeed, PreflightInput, require, run_checks
from edgekit.profiles import load_profile
from edgekit.settings import merge_settings
from edgekit.source import SourceSpec

MIB = 2**20
SMALL_RELEASE = DiskNeed(release_bytes=20 * MIB, runtime_bytes=160 * MIB, model_bytes=10 * MIB)


def checks(
    data: dict[str, Any],
    profile: str,
    source: str = "csi://0",
    flags: dict[str, dict[str, Any]] | None = None,
    disk: DiskNeed = SMALL_RELEASE,
) -> dict[str, Check]:
    chosen = load_profile(profile)
    settings = merge_settings(chosen, flags or {})
    result = run_checks(PreflightInput(DeviceFacts.parse(data), chosen, settings, SourceSpec(source), disk))
    return {check.name: check for check in result}


def failures(found: dict[str, Check]) -> dict[str, str]:
    return {name: check.problem for name, check in found.items() if not check.ok}


def refusal(found: dict[str, Check]) -> str:
    with pytest.raises(PreflightFailed) as info:
        require(list(found.values()))
    message = str(info.value)
    assert "\n" not in message and message.endswith(".")
    return message


@pytest.mark.parametrize(
    ("fact_set", "profile"),
    [
        ("jp51-agx-orin-64gb", "agx-orin-64gb-jp51"),
        ("jp62-orin-nano", "orin-nano-8gb-jp62"),
        ("jp70-thor", "thor-jp70"),
    ],
)
def test_supported_devices_pass(fact_set: str, profile: str) -> None:
    found = checks(facts(fact_set), profile)
    assert failures(found) == {}
    assert list(found) == ["jetpack", "system", "precision", "runtime", "cuda", "opencv", "camera", "disk", "memory"]
    require(list(found.values()))


def test_jetpack_46_is_refused() -> None:
    found = checks(facts("jp46-nano"), "nano-jp46", flags={"build": {"precision": "fp16"}})
    assert set(failures(found)) == {"jetpack"}
    message = refusal(found)
    assert message.startswith("Jetson Nano is not supported")
    assert "JetPack 5.1" in message


def test_python_36_is_refused_even_on_a_supported_profile() -> None:
    problem = failures(checks(facts("jp62-orin-nano", python={"version": "3.6.9"}), "orin-nano-8gb-jp62"))["jetpack"]
    assert "Python 3.6.9" in problem and "3.8" in problem


def test_int8_on_a_nano_is_refused_and_suggests_fp16() -> None:
    found = checks(facts("jp46-nano"), "nano-jp46", flags={"build": {"precision": "int8"}})
    problem = failures(found)["precision"]
    assert "no fast INT8" in problem and "--precision fp16" in problem
    assert "Maxwell" in problem
    # Both problems are known; the message leads with one and counts the other.
    assert "(1 more problem: --check lists them)" in refusal(found)


def test_fp16_on_the_twin_is_refused() -> None:
    data = facts("jp62-orin-nano")
    problem = failures(checks(data, "twin", source="file:///clip.avi", flags={"build": {"precision": "fp16"}}))
    assert "--precision int8 or --precision fp32" in problem["precision"]


def test_dla_core_the_module_lacks_is_refused() -> None:
    assert (
        "no DLA"
        in failures(checks(facts("jp62-orin-nano"), "orin-nano-8gb-jp62", flags={"build": {"dla_core": 0}}))[
            "precision"
        ]
    )
    found = checks(facts("jp51-agx-orin-64gb"), "agx-orin-64gb-jp51", flags={"build": {"dla_core": 1}})
    assert found["precision"].ok and "DLA core 1" in found["precision"].detail
    bad = checks(facts("jp51-agx-orin-64gb"), "agx-orin-64gb-jp51", flags={"build": {"dla_core": 2}})
    assert "DLA cores 0-1" in failures(bad)["precision"]


def test_full_disk_is_refused_with_how_much_to_free() -> None:
    need = SMALL_RELEASE.total("tensorrt")
    assert need == 2 * 20 * MIB + 2 * 160 * MIB + 3 * 10 * MIB + DISK_MARGIN_BYTES
    exactly = facts("jp62-orin-nano", disk={"free_bytes": need})
    assert checks(exactly, "orin-nano-8gb-jp62")["disk"].ok
    full = facts("jp62-orin-nano", disk={"free_bytes": need - 5 * MIB, "path": "/var/lib"})
    problem = failures(checks(full, "orin-nano-8gb-jp62"))["disk"]
    assert f"has {need // MIB - 5} MiB free at /var/lib" in problem
    assert f"needs {need // MIB} MiB" in problem and "free 6 MiB" in problem


def test_no_engine_build_needs_less_disk() -> None:
    assert SMALL_RELEASE.total("onnxruntime") == SMALL_RELEASE.total("tensorrt") - 3 * 10 * MIB


def test_missing_tensorrt_is_refused() -> None:
    data = facts("jp62-orin-nano", tensorrt={"python": None, "package": None})
    problem = failures(checks(data, "orin-nano-8gb-jp62"))["runtime"]
    assert "TensorRT is not installed" in problem and "python3-libnvinfer" in problem
    broken = facts("jp62-orin-nano", tensorrt={"python": None, "package": "10.3.0.30"})
    assert "TensorRT 10.3.0.30 is installed but" in failures(checks(broken, "orin-nano-8gb-jp62"))["runtime"]


def test_tensorrt_of_another_line_is_refused() -> None:
    data = facts("jp62-orin-nano", tensorrt={"python": "8.6.2.3"})
    problem = failures(checks(data, "orin-nano-8gb-jp62"))["runtime"]
    assert "TensorRT 8.6.2.3" in problem and "expects 10.3" in problem


def test_tensorrt_needs_no_pycuda() -> None:
    # The default CUDA seam is ctypes over libcudart: a device without pycuda is fine.
    found = checks(facts("jp62-orin-nano", pycuda=None), "orin-nano-8gb-jp62")
    assert "runtime" not in failures(found) and "cuda" not in failures(found)
    assert found["cuda"].detail == "CUDA 12.6 (/usr/local/cuda/lib64/libcudart.so.12), 1 GPU(s), compute 8.7"


def runtime(**changes: Any) -> dict[str, Any]:
    base = facts("jp62-orin-nano")["cuda_runtime"]
    return dict(base, **changes)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        (
            {"cuda_runtime": runtime(library=None, tried=45)},
            "no CUDA runtime library (libcudart.so.13, .12 or .11.0 in 45",
        ),
        (
            {"cuda_runtime": runtime(devices=None, error="cudaErrorNoDevice: no CUDA-capable device is detected")},
            "found no usable GPU (cudaErrorNoDevice: no CUDA-capable device is detected); check that the SSH user is "
            "in the video group",
        ),
        ({"cuda_runtime": runtime(devices=0)}, "found no usable GPU (no GPU)"),
        ({"cuda_runtime": runtime(compute_capability="7.2")}, "compute capability 7.2, but profile orin-nano-8gb-jp62"),
        (
            {"gpu_nodes": [{"path": "/dev/nvmap", "group": "root", "mode": "0600"}]},
            "/dev/nvmap cannot be opened by the video group the service runs in",
        ),
    ],
)
def test_cuda_is_checked_for_real(changes: dict[str, Any], words: str) -> None:
    found = checks(facts("jp62-orin-nano", **changes), "orin-nano-8gb-jp62")
    assert words in failures(found)["cuda"]
    message = refusal(found)
    assert "nvidia-l4t" in message or "--profile" in message


def test_a_world_open_gpu_node_is_fine() -> None:
    data = facts("jp62-orin-nano", gpu_nodes=[{"path": "/dev/nvidia0", "group": "root", "mode": "0666"}])
    assert "cuda" not in failures(checks(data, "orin-nano-8gb-jp62"))


def test_the_pycuda_seam_needs_a_working_pycuda_driver() -> None:
    flags = {"build": {"cuda": "pycuda"}}
    problem = failures(checks(facts("jp62-orin-nano", pycuda=None), "orin-nano-8gb-jp62", flags=flags))["cuda"]
    assert "cannot import pycuda.driver" in problem and 'drop build.cuda = "pycuda"' in problem
    broken = {"version": "2024.1.2", "error": "cuInit failed: no CUDA-capable device is detected"}
    problem = failures(checks(facts("jp62-orin-nano", pycuda=broken), "orin-nano-8gb-jp62", flags=flags))["cuda"]
    assert "has a pycuda that fails: cuInit failed" in problem
    working = {"version": "2024.1.2", "error": None}
    found = checks(facts("jp62-orin-nano", pycuda=working), "orin-nano-8gb-jp62", flags=flags)
    assert found["cuda"].ok and found["cuda"].detail.endswith("through pycuda")


def test_cuda_is_not_asked_of_an_onnxruntime_device() -> None:
    data = facts("jp62-orin-nano", cuda_runtime={"library": None, "tried": 3})
    assert checks(data, "twin")["cuda"].ok


def test_csi_camera_needs_the_node_gstreamer_and_argus() -> None:
    no_camera = facts("jp62-orin-nano", cameras={"video": [], "by_id": {}})
    assert "no /dev/video0 for csi://0" in failures(checks(no_camera, "orin-nano-8gb-jp62"))["camera"]
    assert "/dev/video1" in failures(checks(facts("jp62-orin-nano"), "orin-nano-8gb-jp62", source="csi://1"))["camera"]
    pip_opencv = facts("jp62-orin-nano", cv2={"version": "4.8.0", "gstreamer": False})
    assert "has no GStreamer" in failures(checks(pip_opencv, "orin-nano-8gb-jp62"))["opencv"]
    no_argus = facts("jp62-orin-nano", gstreamer_elements={"nvarguscamerasrc": False, "nvv4l2decoder": True})
    assert "no nvarguscamerasrc" in failures(checks(no_argus, "orin-nano-8gb-jp62"))["opencv"]


def test_rtsp_needs_gstreamer_only_for_hardware_decoding() -> None:
    pip_opencv = facts("jp62-orin-nano", cv2={"version": "4.8.0", "gstreamer": False}, cameras={"video": []})
    hardware = checks(pip_opencv, "orin-nano-8gb-jp62", source="rtsp://cam/stream")
    assert set(failures(hardware)) == {"opencv"}
    software = checks(
        pip_opencv, "orin-nano-8gb-jp62", source="rtsp://cam/stream", flags={"camera": {"rtsp_decode": "software"}}
    )
    assert failures(software) == {}


def test_v4l2_source_must_exist_on_the_device() -> None:
    by_id = "/dev/v4l/by-id/usb-Logitech_C920-video-index0"
    data = facts("jp62-orin-nano", cameras={"video": ["/dev/video0"], "by_id": {by_id: "/dev/video0"}})
    assert checks(data, "orin-nano-8gb-jp62", source=by_id)["camera"].ok
    assert checks(data, "orin-nano-8gb-jp62", source="v4l2:///dev/video0")["camera"].ok
    problem = failures(checks(data, "orin-nano-8gb-jp62", source="/dev/video2"))["camera"]
    assert "no /dev/video2" in problem and by_id in problem


def test_file_sources_need_no_camera_or_gstreamer() -> None:
    data = facts("jp62-orin-nano", cameras={"video": []}, cv2={"version": "4.8.0", "gstreamer": False})
    assert failures(checks(data, "orin-nano-8gb-jp62", source="file:///opt/clip.mp4")) == {}


def test_no_systemd_no_glibc_no_cv2() -> None:
    assert "systemd" in failures(checks(facts("jp62-orin-nano", systemd=False), "orin-nano-8gb-jp62"))["system"]
    no_glibc = facts("jp62-orin-nano", platform={"glibc": None})
    assert "glibc" in failures(checks(no_glibc, "orin-nano-8gb-jp62"))["system"]
    assert "python3-opencv" in failures(checks(facts("jp62-orin-nano", cv2=None), "orin-nano-8gb-jp62"))["opencv"]


def test_workspace_that_does_not_fit_in_memory_is_refused() -> None:
    data = facts("jp62-orin-nano", memory={"available_bytes": 800 * MIB})
    problem = failures(checks(data, "orin-nano-8gb-jp62"))["memory"]
    assert "800 MiB available" in problem and "1024 MiB" in problem and "workspace_mib" in problem
    assert checks(data, "orin-nano-8gb-jp62", flags={"build": {"workspace_mib": 512}})["memory"].ok


def test_require_passes_when_all_pass_and_counts_the_rest() -> None:
    require([Check("a", True, "fine")])
    failed = [
        Check("a", False, "x", "First problem; fix it."),
        Check("b", False, "y", "Second."),
        Check("c", False, "z", "Third."),
    ]
    with pytest.raises(PreflightFailed, match=r"^First problem; fix it \(2 more problems: --check lists them\)\.$"):
        require(failed)


def test_require_after_the_checks_were_listed_names_them_all() -> None:
    failed = [Check("runtime", False, "x", "One."), Check("camera", False, "y", "Two."), Check("disk", True, "z")]
    with pytest.raises(PreflightFailed, match=r"^Preflight found 2 problems \(runtime, camera\); fix them as listed"):
        require(failed, listed=True)
    require([Check("disk", True, "z")], listed=True)
