"""The device's facts answer, read once at the edge into ``DeviceFacts``."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from jetson_facts import FACT_SETS, facts

from edgekit.agent.facts import collect_facts
from edgekit.device.facts import DeviceFacts, GpuNode, read_facts
from edgekit.errors import DeviceError, PreflightFailed
from edgekit.testing import FakeConnection, Reply


def wire(data: dict[str, Any]) -> dict[str, Any]:
    """As the host receives it: through JSON, so tuples are lists and keys strings."""
    return json.loads(json.dumps(data))


@pytest.mark.parametrize("name", FACT_SETS)
def test_every_captured_fact_set_reads_and_gives_back_what_the_agent_wrote(name: str) -> None:
    parsed = DeviceFacts.parse(facts(name))
    assert parsed.to_dict() == facts(name)
    assert parsed.jetson.soc == FACT_SETS[name]["jetson"]["soc"]
    assert parsed.python.version == FACT_SETS[name]["python"]["version"]


def test_this_machines_own_facts_read() -> None:
    # The agent's real collector, on a machine that is no Jetson: every optional part is None here.
    answer = wire(collect_facts())
    parsed = DeviceFacts.parse(answer)
    assert parsed.to_dict() == answer
    assert parsed.jetson.soc is None and parsed.disk.free_bytes > 0


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda data: data.pop("disk"), "has disk = None, not a dict"),
        (lambda data: data["disk"].update(free_bytes="lots"), "has disk.free_bytes = 'lots', not an int"),
        (lambda data: data["disk"].update(free_bytes=True), "has disk.free_bytes = True, not an int"),
        (lambda data: data["cameras"]["video"].append(7), "has cameras.video[1] = 7, not a str"),
        (lambda data: data["gpu_nodes"][0].pop("mode"), "has gpu_nodes[0].mode = None, not a str"),
        (lambda data: data.update(systemd="yes"), "has systemd = 'yes', not a bool"),
    ],
)
def test_a_malformed_answer_is_one_sentence_naming_the_key(change: Any, words: str) -> None:
    data = copy.deepcopy(facts("jp62-orin-nano"))
    change(data)
    with pytest.raises(DeviceError) as info:
        DeviceFacts.parse(data)
    message = str(info.value)
    assert message.startswith("The device's facts answer " + words) and message.endswith("re-run edgekit provision.")


def test_optional_parts_may_be_absent() -> None:
    parsed = DeviceFacts.parse(facts("jp62-orin-nano", cv2=None, gstreamer_elements=None, pycuda=None))
    assert parsed.cv2 is None and parsed.gstreamer_elements is None and parsed.pycuda is None


@pytest.mark.parametrize(
    ("group", "mode", "open_to_video"),
    [("video", "0660", True), ("video", "0640", False), ("root", "0600", False), ("root", "0666", True)],
)
def test_a_gpu_node_is_open_to_a_group_by_its_mode(group: str, mode: str, open_to_video: bool) -> None:
    assert GpuNode("/dev/nvmap", group, mode).open_to("video") is open_to_video


def test_read_facts_sends_the_agent_module_and_parses_its_answer(fake_connection: FakeConnection) -> None:
    fake_connection.on(["python3", "-c"], Reply(json.dumps(facts("jp70-thor")) + "\n"))
    found = read_facts(fake_connection)
    assert found.jetson.soc == "tegra264"
    (run,) = fake_connection.runs
    assert "def collect_facts" in run.argv[2] and not run.sudo


def test_read_facts_without_python3_names_the_jetpack_to_flash(fake_connection: FakeConnection) -> None:
    fake_connection.on(["python3", "-c"], Reply(stderr="sh: python3: not found\n", exit_code=127))
    with pytest.raises(PreflightFailed, match="has no python3; flash JetPack 5.1 or later"):
        read_facts(fake_connection)


def test_read_facts_that_fail_name_the_last_line_of_stderr(fake_connection: FakeConnection) -> None:
    fake_connection.on(["python3", "-c"], Reply(stderr="Traceback\nMemoryError\n", exit_code=1))
    with pytest.raises(DeviceError, match=r"could not describe itself with python3 \(MemoryError\); check"):
        read_facts(fake_connection)
