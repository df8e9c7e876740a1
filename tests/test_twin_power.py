"""twin_power_off without root: a stand-in for systemd-nspawn and its container's init."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from edgekit.errors import TwinError
from edgekit.twin import TwinInfo, machine, twin_boot, twin_power_off, twin_status


@pytest.fixture
def state_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(machine, "STATE_ROOT", tmp_path)
    return tmp_path


def _fake_twin(state_root: Path, name: str) -> tuple[subprocess.Popen[bytes], int]:
    """A process named systemd-nspawn whose child plays the container's init."""
    nspawn = subprocess.Popen(["bash", "-c", "exec -a systemd-nspawn bash -c 'sleep 300 & wait'"])
    deadline = time.monotonic() + 10
    children: list[str] = []
    while time.monotonic() < deadline and not children:
        if machine._is_nspawn(nspawn.pid):
            children = Path(f"/proc/{nspawn.pid}/task/{nspawn.pid}/children").read_text().split()
        time.sleep(0.02)
    assert children, "the stand-in did not start its child"
    info = TwinInfo(name, "twin", 2299, nspawn.pid, "jetson", "id", "known_hosts", "SHA256:x")
    (state_root / name).mkdir()
    (state_root / name / "twin.json").write_text(json.dumps(asdict(info)))
    (state_root / name / "upper").mkdir()
    (state_root / name / "upper" / "written").write_text("kept\n")
    return nspawn, int(children[0])


def test_power_off_kills_the_container_and_keeps_its_disk(state_root: Path) -> None:
    nspawn, leader = _fake_twin(state_root, "pl")
    try:
        before = twin_status("pl")
        assert before is not None and before.running
        assert twin_power_off("pl") is True
        assert nspawn.wait(timeout=5) == -9
        assert not machine._alive(leader)
        # Nothing was shut down or deleted: the record, the overlay's upper layer and the port stay.
        after = twin_status("pl")
        assert after is not None and not after.running and after.port == 2299 and after.pid == 0
        assert (state_root / "pl" / "upper" / "written").read_text() == "kept\n"
        assert twin_power_off("pl") is False
    finally:
        machine._kill(leader)
        machine._kill(nspawn.pid)
        nspawn.wait(timeout=5)


def test_power_off_of_an_unknown_twin_is_a_no_op(state_root: Path) -> None:
    assert twin_power_off("nothing-here") is False


def test_boot_needs_a_twin_to_boot(state_root: Path) -> None:
    # Without root this stops at the host check; with it, at the missing twin: both say why.
    with pytest.raises(TwinError):
        twin_boot("nothing-here")


def test_port_free() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not machine._port_free(port)
    assert machine._port_free(port)
