"""``edgekit.testing.FakeConnection``: the fake the device tests rely on answers and records as promised."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgekit.errors import DeviceError, RemoteCommandFailed
from edgekit.ssh.seam import Connection
from edgekit.ssh.target import Target
from edgekit.testing import FakeConnection, Get, Put, Reply, UnansweredCommand


def test_an_unanswered_command_fails_naming_it(fake_connection: FakeConnection) -> None:
    fake_connection.on(["ls"])
    with pytest.raises(UnansweredCommand, match=r"^nvidia@jetson has no answer for `rm -rf '/a b'`; register one"):
        fake_connection.run(["rm", "-rf", "/a b"], sudo=True)
    assert fake_connection.commands() == ["sudo rm -rf '/a b'"]


def test_answers_by_prefix_or_pattern_latest_first_in_turn(fake_connection: FakeConnection) -> None:
    fake_connection.on(["systemctl"], Reply("any"))
    fake_connection.on(re.compile(r"^systemctl is-active"), Reply("activating"), Reply("active"))
    conn: Connection = fake_connection
    assert [conn.run(["systemctl", "is-active", "x"]).stdout for _ in range(3)] == ["activating", "active", "active"]
    assert conn.run(["systemctl", "stop"]).stdout == "any"
    assert fake_connection.runs[0].timeout is None and fake_connection.runs[0].check


def test_a_checked_failure_raises_as_the_real_connection_does(fake_connection: FakeConnection) -> None:
    fake_connection.on(["false"], Reply(stderr="sudo: a password is required\n", exit_code=1))
    assert fake_connection.run(["false"], sudo=True, check=False).command == "sudo -n -- false"
    with pytest.raises(RemoteCommandFailed, match="asks for a sudo password"):
        fake_connection.run(["false"], sudo=True)
    root = FakeConnection(Target("jetson", user="root"))
    root.on(["true"])
    assert root.is_root and root.run(["true"], sudo=True).command == "true"


def test_puts_land_in_files_and_gets_read_them(fake_connection: FakeConnection, tmp_path: Path) -> None:
    local = tmp_path / "a.bin"
    local.write_bytes(b"abc")
    progress: list[tuple[int, int]] = []
    fake_connection.put(local, "/tmp/a.bin", lambda done, total: progress.append((done, total)))
    fake_connection.get("/tmp/a.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == b"abc" and progress == [(3, 3)]
    assert fake_connection.puts == [Put(local, "/tmp/a.bin", b"abc")]
    with pytest.raises(DeviceError, match="cannot give /nope"):
        fake_connection.get("/nope", tmp_path / "x")
    assert fake_connection.gets[-1] == Get("/nope", tmp_path / "x")
    fake_connection.close()
    assert fake_connection.closed
