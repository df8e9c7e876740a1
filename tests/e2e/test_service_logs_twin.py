"""End to end: ``edgekit logs`` reads and follows the provisioned twin's journal over SSH.

It uses the session twin as test_provision_twin.py leaves it (the sample model), provisioning
it the same way first, which sends nothing when that file has run. The name sorts this file
after it, whose first tests need the twin untouched.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_provision_twin import edgekit, on_twin, provision_args

from edgekit.twin import TwinInfo

pytestmark = pytest.mark.e2e
LONG_LINE = ("python3", "-c", "print('x' * 6000)")


@pytest.fixture(scope="module")
def provisioned(twin: TwinInfo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("logs-home")
    done = edgekit(*provision_args(twin, Path(twin.known_hosts), "--json"), home=home)
    assert done.returncode == 0, done.stderr
    return {"home": home, "release": json.loads(done.stdout)["release"]}


def logs_args(twin: TwinInfo, *extra: str) -> list[str]:
    return [
        "logs",
        twin.target,
        "--identity",
        twin.identity,
        "--known-hosts",
        twin.known_hosts,
        "--no-ssh-config",
        *extra,
    ]


def records(stdout: str) -> list[dict[str, Any]]:
    return [line["record"] for line in map(json.loads, stdout.splitlines()) if "record" in line]


def test_logs_shows_the_current_release_s_records(twin: TwinInfo, provisioned: dict[str, Any]) -> None:
    done = edgekit(*logs_args(twin, "--json", "--lines", "20"), home=provisioned["home"])
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in done.stdout.splitlines()]
    assert 0 < len(entries) <= 20
    assert all(entry["unit"] == "edgekit-camera.service" for entry in entries)
    shown = records(done.stdout)
    assert shown and {record["release"] for record in shown} == {provisioned["release"]}
    assert [record["frame"] for record in shown] == sorted(record["frame"] for record in shown)

    pretty = edgekit(*logs_args(twin, "--lines", "5"), home=provisioned["home"])
    assert pretty.returncode == 0, pretty.stderr
    assert "frame " in pretty.stdout and " fps  total " in pretty.stdout


def test_logs_follow_shows_new_records_and_ends_on_ctrl_c(twin: TwinInfo, provisioned: dict[str, Any]) -> None:
    env = dict(os.environ, EDGEKIT_CACHE=str(provisioned["home"] / "cache"))
    command = [sys.executable, "-c", "from edgekit.cli import main; main()"]
    follow = subprocess.Popen(
        [*command, *logs_args(twin, "-f", "--json", "--lines", "1")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        # The first entry means the command is following (and Ctrl-C is its own); then a few polls.
        assert follow.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(follow.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=60), "edgekit logs -f showed nothing within 60 s"
        first = follow.stdout.readline()
        time.sleep(6)
        follow.send_signal(signal.SIGINT)
        rest, errors = follow.communicate(timeout=60)
    finally:
        follow.kill()
    assert follow.returncode == 0, errors
    assert "Traceback" not in errors and "Aborted" not in errors
    frames = [record["frame"] for record in records(first + rest)]
    # One from the tail, then those written while it followed, in order and none twice.
    assert len(frames) >= 5 and frames == sorted(set(frames))


def test_logs_build_shows_the_build_unit_s_lines(twin: TwinInfo, provisioned: dict[str, Any]) -> None:
    release = provisioned["release"]
    done = edgekit(*logs_args(twin, "--build", release, "--json", "--lines", "200"), home=provisioned["home"])
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in done.stdout.splitlines()]
    assert entries and {entry["unit"] for entry in entries} == {f"edgekit-build-{release}.service"}
    messages = [entry["message"] for entry in entries]
    # systemd's line about the unit, and the build's own lines between its start and end.
    assert any(message.startswith(f"Started edgekit-build-{release}.service") for message in messages), messages
    assert any(entry["pid"] != 1 for entry in entries), messages

    # A line over journald's 4 KiB JSON field limit (a detector's record can be) arrives whole.
    on_twin(twin, "systemd-run", "--unit=edgekit-build-e2e-long-line.service", "--wait", "--quiet", "--", *LONG_LINE)
    long = edgekit(*logs_args(twin, "--build", "e2e-long-line", "--json"), home=provisioned["home"])
    assert long.returncode == 0, long.stderr
    assert "x" * 6000 in [entry.get("message") for entry in map(json.loads, long.stdout.splitlines())]

    unknown = edgekit(*logs_args(twin, "--build", "0000000000000000"), home=provisioned["home"])
    assert unknown.returncode == 2, unknown.stderr
    assert "No build unit edgekit-build-0000000000000000.service ran" in unknown.stderr
    assert "`edgekit releases" in " ".join(unknown.stderr.split()) and "Traceback" not in unknown.stderr
