from __future__ import annotations

import json

from edgekit.agent.facts import (
    collect_facts,
    parse_gstreamer,
    parse_meminfo,
    parse_tegra_release,
)

JP6 = (
    "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025"
)
JP5 = (
    "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023"
)


def test_tegra_release_gives_the_l4t_version():
    assert parse_tegra_release(JP6) == "36.4.3"
    assert parse_tegra_release(JP5) == "35.4.1"
    assert parse_tegra_release(JP5 + "\n# KERNEL_VARIANT: oot\n") == "35.4.1"
    assert parse_tegra_release("Ubuntu 22.04") is None


def test_meminfo_is_converted_to_bytes():
    text = "MemTotal:        7995012 kB\nMemFree:          123 kB\nMemAvailable:    5000000 kB\n"
    assert parse_meminfo(text) == {"total_bytes": 7995012 * 1024, "available_bytes": 5120000000}
    assert parse_meminfo("MemTotal: 4 kB\n") == {"total_bytes": 4096, "available_bytes": None}


def test_gstreamer_support_is_read_from_the_build_information():
    jetson = "  Video I/O:\n    FFMPEG:                      YES\n    GStreamer:                   YES (1.20.3)\n"
    pip_wheel = "  Video I/O:\n    GStreamer:                   NO\n"
    assert parse_gstreamer(jetson) is True
    assert parse_gstreamer(pip_wheel) is False
    assert parse_gstreamer("  Video I/O:\n    FFMPEG: YES\n") is False


def test_collect_facts_on_this_machine(tmp_path):
    facts = collect_facts(str(tmp_path / "not" / "yet"))
    assert json.loads(json.dumps(facts)) == facts
    assert isinstance(facts["python"]["version"], str)
    assert isinstance(facts["python"]["executable"], str)
    assert set(facts["platform"]) == {"machine", "system", "glibc"}
    assert facts["platform"]["system"] == "Linux"
    assert set(facts["jetson"]) == {"nv_tegra_release", "l4t", "model", "compatible"}
    assert isinstance(facts["jetson"]["compatible"], list)
    assert isinstance(facts["cv2"]["version"], str)
    assert isinstance(facts["cv2"]["gstreamer"], bool)
    assert isinstance(facts["numpy"], str)
    assert isinstance(facts["onnxruntime"], str)
    assert facts["tensorrt"] is None or isinstance(facts["tensorrt"], str)
    assert isinstance(facts["systemd"], bool)
    assert facts["disk"]["path"] == str(tmp_path)
    assert 0 < facts["disk"]["free_bytes"] <= facts["disk"]["total_bytes"]
    assert 0 < facts["memory"]["available_bytes"] <= facts["memory"]["total_bytes"]
    assert facts["cameras"] == sorted(facts["cameras"])
    assert isinstance(facts["hostname"], str)
