"""``edgekit.device.blobs`` against a fake device: the store, skipping blobs already there, verification."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgekit.device.blobs import Blob, prepare_store, upload_blobs
from edgekit.device.layout import BLOBS_DIR, INCOMING_DIR
from edgekit.errors import DeviceError
from edgekit.ssh.target import Target
from edgekit.testing import FakeConnection, Reply

LISTING = re.compile(r"^sh -c .*for d; do")
COMMIT = re.compile(r"^sh -c .*sha256sum")


def blob(tmp_path: Path, name: str, content: bytes) -> Blob:
    path = tmp_path / name
    path.write_bytes(content)
    return Blob.of(path)


def test_prepare_store_gives_the_incoming_folder_to_the_login_user(fake_connection: FakeConnection) -> None:
    fake_connection.on(["id", "-un"], Reply("nvidia\n"))
    fake_connection.on(["install"])
    prepare_store(fake_connection)
    assert fake_connection.commands() == [
        f"sudo install -d -m 0755 {BLOBS_DIR}",
        "id -un",
        f"sudo install -d -m 0700 -o nvidia {INCOMING_DIR}",
    ]


def test_prepare_store_as_root_asks_no_user_name() -> None:
    conn = FakeConnection(Target("jetson", user="root"))
    conn.on(["install"])
    prepare_store(conn)
    assert conn.runs[-1].argv == ("install", "-d", "-m", "0700", "-o", "root", INCOMING_DIR)
    assert [call.argv[0] for call in conn.runs] == ["install", "install"]


def test_upload_sends_only_missing_blobs_once_and_publishes_them_verified(
    fake_connection: FakeConnection, tmp_path: Path
) -> None:
    present = blob(tmp_path, "model.onnx", b"model")
    missing = blob(tmp_path, "my clip.avi", b"video")
    fake_connection.on(LISTING, Reply(f"{missing.digest}\n"))
    fake_connection.on(COMMIT)
    announced: list[str] = []
    progress: list[tuple[int, int]] = []

    sent = upload_blobs(
        fake_connection,
        [present, missing, blob(tmp_path, "copy.avi", b"video")],
        on_file=lambda b: announced.append(b.local.name),
        progress=lambda done, total: progress.append((done, total)),
    )

    assert [b.digest for b in sent] == [missing.digest] and len(announced) == 1 and progress == [(5, 5)]
    listing, commit = fake_connection.runs
    # Paths and digests travel as positional arguments, never spliced into the script text.
    assert listing.argv[3:] == ("sh", BLOBS_DIR, present.digest, missing.digest) and not listing.sudo
    part = f"{INCOMING_DIR}/{missing.digest}.part"
    assert [(put.remote, put.data) for put in fake_connection.puts] == [(part, b"video")]
    assert commit.argv[3:] == ("sh", part, missing.digest, BLOBS_DIR) and commit.sudo
    assert BLOBS_DIR not in commit.argv[2] and part not in commit.argv[2]


def test_upload_skips_everything_already_on_the_device(fake_connection: FakeConnection, tmp_path: Path) -> None:
    fake_connection.on(LISTING, Reply(""))
    assert upload_blobs(fake_connection, [blob(tmp_path, "a", b"a"), blob(tmp_path, "b", b"b")]) == []
    assert fake_connection.puts == [] and len(fake_connection.runs) == 1


def test_a_corrupted_upload_stops_the_upload_naming_the_file(fake_connection: FakeConnection, tmp_path: Path) -> None:
    first, second = blob(tmp_path, "model.onnx", b"model"), blob(tmp_path, "clip.avi", b"video")
    fake_connection.on(LISTING, Reply(f"{first.digest}\n{second.digest}\n"))
    fake_connection.on(COMMIT, Reply("mismatch 0bad\n", exit_code=3))

    with pytest.raises(DeviceError) as raised:
        upload_blobs(fake_connection, [first, second])

    assert str(raised.value) == (
        "model.onnx arrived corrupted on nvidia@jetson (mismatch 0bad); "
        "re-run to send it again, and check the device's storage if it repeats."
    )
    assert [put.local.name for put in fake_connection.puts] == ["model.onnx"]


def test_a_rerun_resumes_into_the_same_part_file_and_skips_what_arrived(
    fake_connection: FakeConnection, tmp_path: Path
) -> None:
    first, second = blob(tmp_path, "model.onnx", b"model"), blob(tmp_path, "clip.avi", b"video")
    fake_connection.on(COMMIT)
    fake_connection.on(LISTING, Reply(f"{first.digest}\n{second.digest}\n"), Reply(f"{second.digest}\n"))

    upload_blobs(fake_connection, [first, second])
    assert upload_blobs(fake_connection, [first, second]) == [second]

    remotes = [put.remote for put in fake_connection.puts]
    assert remotes == [f"{INCOMING_DIR}/{first.digest}.part", *[f"{INCOMING_DIR}/{second.digest}.part"] * 2]
