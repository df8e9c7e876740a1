"""A link that goes down at each stage of a provision, and stays down: `edgekit provision` ends with
one sentence that names the stage and what a re-run does, exit code 4, never a traceback or
`Aborted.`; a part the cut left that is then damaged on the device is sent again; once the link
is back, the same command finishes the job.

The link is a proxy on loopback in front of the twin's sshd: the test cuts every connection
through it when the CLI shows the stage's first line, and refuses new ones after.
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from script_modules import load_script
from test_provision_twin import edgekit_process, provision_args

from edgekit.twin import TwinInfo, twin_exec

pytestmark = pytest.mark.e2e
LinkProxy = load_script("link_proxy").LinkProxy
# Slow enough that a cut at "uploading" lands inside the upload of the runtime wheels.
RATE = 2_000_000
# The line that starts each stage (as the CLI prints it), the bytes that still go up before
# the cut, and the stage and re-run the sentence must name. The upload is cut inside a file
# (its first 3 MB), not in the listing that comes before the files.
STAGES = (
    ("reading the device", 0, "reading the device", "nothing on the device changed yet"),
    ("uploading", 3_000_000, "uploading", "every file resumes where it stopped"),
    ("installing the runtime", 0, "installing the runtime", "finished steps are not repeated"),
    ("building the", 0, "building the model", "re-run the same command to reattach"),
    ("starting the service on trial", 0, "waiting for the trial's results", "the device ends the trial by itself"),
)


@pytest.fixture
def proxy(drops_twin: TwinInfo) -> Iterator[object]:
    with LinkProxy(("127.0.0.1", drops_twin.port), rate=RATE) as link:
        yield link


def proxied(twin: TwinInfo, proxy: object, tmp_path: Path) -> tuple[TwinInfo, Path]:
    """The twin as seen through the proxy, and a known_hosts that names it there."""
    port: int = proxy.port  # type: ignore[attr-defined]
    known = Path(twin.known_hosts).read_text().replace(f"[127.0.0.1]:{twin.port} ", f"[127.0.0.1]:{port} ")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(known)
    return dataclasses.replace(twin, port=port), known_hosts


def provision_cut(
    args: list[str], home: Path, proxy: object, trigger: str | None, after_bytes: int = 0
) -> tuple[int, str]:
    """Run the CLI; when a stderr line holds ``trigger``, the link goes down for good once
    ``after_bytes`` more have gone up (no new connection gets through from then on)."""
    process = edgekit_process(*args, home=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # A hung command must fail the test, not the whole run.
    watchdog = threading.Timer(420, process.kill)
    watchdog.start()
    lines = []
    assert process.stderr is not None
    for line in process.stderr:
        lines.append(line)
        if trigger is not None and trigger in line and not proxy.refusing:  # type: ignore[attr-defined]
            proxy.refusing = True  # type: ignore[attr-defined]
            proxy.cut_after(after_bytes)  # type: ignore[attr-defined]
    process.wait()
    watchdog.cancel()
    assert process.stdout is not None
    process.stdout.close()
    return process.returncode, "".join(lines)


def corrupt_a_part(twin: TwinInfo) -> None:
    """Overwrite bytes in the middle of the largest upload a cut left behind."""
    script = (
        'part=$(ls -S /var/lib/edgekit/incoming/*.part | head -n 1); [ -n "$part" ] || exit 3; '
        'printf CORRUPT | dd of="$part" bs=1 seek=$(( $(stat -c %s "$part") / 2 )) conv=notrunc status=none'
    )
    done = twin_exec(twin.name, ["sh", "-c", script])
    assert done.returncode == 0, done.stderr


def assert_one_sentence(code: int, err: str, *words: str) -> None:
    assert code == 4, err
    assert "Traceback" not in err and "Aborted" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(("LinkDropped: ", "DeviceUnreachable: ")), err
    for word in words:
        assert word in last, err


def test_a_drop_at_every_stage_ends_in_one_sentence_and_a_rerun_finishes(
    drops_twin: TwinInfo, proxy: object, tmp_path: Path
) -> None:
    twin, known_hosts = proxied(drops_twin, proxy, tmp_path)
    args = provision_args(twin, known_hosts, "--trial-results", "5")

    proxy.cut_after(600)  # type: ignore[attr-defined]
    code, err = provision_cut(args, tmp_path, proxy, None)
    assert_one_sentence(code, err, "SSH handshake", "re-run")

    for trigger, after_bytes, stage, rerun in STAGES:
        proxy.refusing = False  # type: ignore[attr-defined]
        code, err = provision_cut(args, tmp_path, proxy, trigger, after_bytes)
        assert_one_sentence(code, err, f"dropped while {stage}", rerun)
        if stage == "uploading":
            # The next run resumes what the cut left, unless its bytes are not the file's start.
            corrupt_a_part(drops_twin)
        if stage == "installing the runtime":
            assert "does not match the local file; sending it from the start" in err, err

    proxy.refusing = False  # type: ignore[attr-defined]
    code, err = provision_cut(args, tmp_path, proxy, None)
    assert code == 0, err
