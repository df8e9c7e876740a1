"""Uploads over a real OpenSSH server behind scripts/lib/link_proxy.py: a link cut mid-upload is
reconnected, retried and resumed; a damaged part is sent again; and the CLI's upload row counts
only the bytes sent since the current try began."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import test_ssh_connection as ssh_fixtures
from rich.console import Console
from rich.progress import Progress
from script_modules import load_script

from edgekit.cli.provision import _Display
from edgekit.device import blobs
from edgekit.device.blobs import Blob, prepare_store, upload_blobs
from edgekit.errors import DeviceUnreachable
from edgekit.ssh.connection import CHUNK_BYTES, SSHConnection, open_connection
from edgekit.ssh.target import Target
from edgekit.ssh.transfer import WRITE_REQUEST_BYTES
from edgekit.testing import FakeClock

# The test sshd, as test_ssh_connection starts it, and a clean HOME.
sshd = ssh_fixtures.sshd
Server = ssh_fixtures.Server
pytestmark = pytest.mark.usefixtures("isolated_home")

SIZE = 8 * CHUNK_BYTES
# A link slower than the server writes: unlimited, sshd falls up to its window (2 MiB) behind,
# and a cut loses what it held, as no field link lets it.
RATE = 16e6


@pytest.fixture(scope="module")
def link_proxy() -> ModuleType:
    return load_script("link_proxy")


@pytest.fixture
def link(link_proxy: ModuleType, sshd: Server) -> Iterator[object]:
    with link_proxy.LinkProxy(("127.0.0.1", sshd.port), rate=RATE) as proxy:
        yield proxy


@pytest.fixture
def conn(link: object, sshd: Server, tmp_path: Path) -> Iterator[SSHConnection]:
    port: int = link.port  # type: ignore[attr-defined]
    known_hosts = tmp_path / "known_hosts"
    # The proxy shows the server's key under its own port.
    known_hosts.write_text(f"[127.0.0.1]:{port} ssh-ed25519 {sshd.host_key.get_base64()}\n")
    connection = open_connection(
        Target("127.0.0.1", user="root", port=port),
        known_hosts=known_hosts,
        identity=sshd.client_key,
        use_ssh_config=False,
    )
    yield connection
    connection.close()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The blob store in a temporary folder instead of /var/lib/edgekit."""
    monkeypatch.setattr(blobs, "BLOBS_DIR", str(tmp_path / "store"))
    monkeypatch.setattr(blobs, "INCOMING_DIR", str(tmp_path / "incoming"))
    return tmp_path


@pytest.fixture
def model(tmp_path: Path) -> Blob:
    path = tmp_path / "model.onnx"
    path.write_bytes(os.urandom(SIZE))
    return Blob.of(path)


def test_a_write_request_fits_one_ssh_packet() -> None:
    # OpenSSH's 32 KiB channel packets, less paramiko's 64 bytes, hold the request's 29-byte header too.
    assert WRITE_REQUEST_BYTES + 29 <= (1 << 15) - 64


def test_the_connection_reconnects_after_a_cut_and_put_resumes(
    conn: SSHConnection, link: object, sshd: Server, model: Blob, tmp_path: Path
) -> None:
    remote = tmp_path / "upload.part"
    link.cut_after(SIZE // 2)  # type: ignore[attr-defined]
    with pytest.raises(DeviceUnreachable):
        conn.put(model.local, str(remote))
    before = link.bytes_up  # type: ignore[attr-defined]

    conn.put(model.local, str(remote))

    assert remote.read_bytes() == model.local.read_bytes()
    # The missing half, what the cut caught in flight, a new handshake and the SFTP framing.
    assert link.bytes_up - before < SIZE * 0.55  # type: ignore[attr-defined]


def test_upload_blobs_retries_a_cut_within_the_run_and_resends_little(
    conn: SSHConnection, link: object, store: Path, model: Blob
) -> None:
    prepare_store(conn)
    notes: list[str] = []
    clock = FakeClock()
    start = link.bytes_up  # type: ignore[attr-defined]
    link.cut_after(int(SIZE * 0.6))  # type: ignore[attr-defined]

    assert upload_blobs(conn, [model], note=notes.append, sleep=clock.sleep) == [model]

    assert (store / "store" / model.digest).read_bytes() == model.local.read_bytes()
    assert clock.sleeps == [1.0]
    assert notes == [f"the link to {conn.target} dropped while sending model.onnx; retry 1 of 4 in 1 s"]
    resent = link.bytes_up - start - SIZE  # type: ignore[attr-defined]
    assert resent < SIZE * 0.05


def test_a_damaged_part_is_sent_again_from_the_start(conn: SSHConnection, store: Path, model: Blob) -> None:
    prepare_store(conn)
    data = model.local.read_bytes()
    part = store / "incoming" / f"{model.digest}.part"
    part.write_bytes(data[:1000] + b"X" + data[1001:CHUNK_BYTES])
    notes: list[str] = []

    assert upload_blobs(conn, [model], note=notes.append) == [model]

    assert (store / "store" / model.digest).read_bytes() == data
    assert notes == [
        f"the partial model.onnx on {conn.target} does not match the local file; sending it from the start"
    ]


@pytest.fixture
def display() -> Iterator[tuple[_Display, FakeClock]]:
    """The CLI's display with its progress rows on a fake clock, drawn nowhere."""
    clock = FakeClock()
    with contextlib.ExitStack() as stack:
        shown = _Display(stack)
        shown._progress = stack.enter_context(
            Progress(console=Console(file=io.StringIO()), get_time=clock.monotonic, auto_refresh=False)
        )
        yield shown, clock


def test_a_resumed_upload_row_starts_at_the_offset(display: tuple[_Display, FakeClock]) -> None:
    shown, clock = display
    shown.upload("model.onnx", 100)
    shown.advance(60, 100)
    for done in (70, 80):
        clock.sleep(1)
        shown.advance(done, 100)
    assert shown._progress is not None
    (row,) = shown._progress.tasks
    assert row.completed == 80 and row.speed == 10 and row.time_remaining == 2


def test_after_a_dropped_link_the_rate_counts_only_the_new_try(display: tuple[_Display, FakeClock]) -> None:
    shown, clock = display
    shown.upload("model.onnx", 100)
    shown.advance(0, 100)
    for done in (10, 20, 30):
        clock.sleep(1)
        shown.advance(done, 100)
    # The link drops; 8 s of backoff; the device holds 25, and the new try runs at 5 a second.
    clock.sleep(8)
    shown.advance(25, 100)
    for done in (30, 35):
        clock.sleep(1)
        shown.advance(done, 100)
    assert shown._progress is not None
    (row,) = shown._progress.tasks
    assert row.completed == 35 and row.speed == 5 and row.time_remaining == 13
