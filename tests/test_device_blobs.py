"""``edgekit.device.blobs`` against a fake device: the store, skipping blobs already there, verification,
resuming a checked part and retrying a dropped link."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from edgekit.device.blobs import RETRY_DELAYS_S, Blob, prepare_store, sha256_prefix, upload_blobs
from edgekit.device.layout import BLOBS_DIR, INCOMING_DIR
from edgekit.errors import DeviceError, DeviceUnreachable
from edgekit.ssh.seam import ProgressCallback
from edgekit.ssh.target import Target
from edgekit.testing import FakeClock, FakeConnection, Reply, Run

LISTING = re.compile(r"^sh -c .*for d; do")
COMMIT = re.compile(r"^sh -c .*mismatch")
PART = re.compile(r"^sh -c .*exit 0; wc -c")
NO_PART = Reply("")
FREE = ("df", "-Pk", INCOMING_DIR)


def df(free_kib: int) -> Reply:
    return Reply(f"Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/root 100 0 {free_kib} 1% /\n")


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

    # The bar starts at what the device holds (nothing here), then follows the upload.
    assert [b.digest for b in sent] == [missing.digest] and len(announced) == 1 and progress == [(0, 5), (5, 5)]
    # The listing tells about parts too: no command of its own to probe for one.
    listing, commit = fake_connection.runs
    # Paths and digests travel as positional arguments, never spliced into the script text.
    assert listing.argv[3:] == ("sh", BLOBS_DIR, INCOMING_DIR, present.digest, missing.digest) and not listing.sudo
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


def part_words(data: bytes) -> str:
    """How the device describes a part holding ``data``: its size, then sha256sum's line."""
    return f"{len(data)} {hashlib.sha256(data).hexdigest()}  -"


def part_reply(data: bytes) -> Reply:
    return Reply(part_words(data).replace(" ", "\n", 1) + "\n")


class DroppingConnection(FakeConnection):
    """A fake whose link drops during the first ``drops`` puts, after ``arrives`` bytes of each."""

    def __init__(self, drops: int, arrives: int = 0) -> None:
        super().__init__()
        self.drops = drops
        self.arrives = arrives

    def put(self, local: Path, remote: str, progress: ProgressCallback | None = None) -> None:
        if self.drops == 0:
            super().put(local, remote, progress)
            return
        self.drops -= 1
        self.files[remote] = local.read_bytes()[: self.arrives]
        raise DeviceUnreachable(f"The link to {self.target} dropped (EOF); re-run the same command.")


def device_part(conn: FakeConnection, part: str) -> Reply:
    """The probe's answer from what the fake holds at ``part`` now."""
    return part_reply(conn.files[part]) if part in conn.files else NO_PART


def answer_from_files(conn: FakeConnection, part: str) -> None:
    conn.on(PART, lambda call: device_part(conn, part))


def test_sha256_prefix_hashes_only_the_first_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hello world")
    assert sha256_prefix(path, 5) == hashlib.sha256(b"hello").hexdigest()
    assert sha256_prefix(path, 0) == hashlib.sha256(b"").hexdigest()
    assert sha256_prefix(path, 11) == hashlib.sha256(b"hello world").hexdigest()


def test_a_part_that_is_the_start_of_the_blob_is_kept_and_resumed(
    fake_connection: FakeConnection, tmp_path: Path
) -> None:
    model = blob(tmp_path, "model.onnx", b"0123456789")
    fake_connection.on(LISTING, Reply(f"{model.digest} {part_words(b'0123')}\n"))
    fake_connection.on(COMMIT)
    progress: list[tuple[int, int]] = []
    notes: list[str] = []

    upload_blobs(fake_connection, [model], progress=lambda d, t: progress.append((d, t)), note=notes.append)

    assert notes == [] and progress[0] == (4, 10)
    assert not any(call.argv[0] == "rm" for call in fake_connection.runs)


@pytest.mark.parametrize("held", [b"0123X", b"0123456789extra"], ids=["corrupted", "longer"])
def test_a_part_that_is_not_the_start_of_the_blob_is_removed_and_sent_again_from_zero(
    fake_connection: FakeConnection, tmp_path: Path, held: bytes
) -> None:
    model = blob(tmp_path, "model.onnx", b"0123456789")
    part = f"{INCOMING_DIR}/{model.digest}.part"
    fake_connection.on(LISTING, Reply(f"{model.digest} {part_words(held)}\n"))
    # How many puts had been made when the part was removed.
    puts_before_rm: list[int] = []

    def remove(call: Run) -> Reply:
        puts_before_rm.append(len(fake_connection.puts))
        return Reply()

    fake_connection.on(["rm"], remove)
    fake_connection.on(COMMIT)
    progress: list[tuple[int, int]] = []
    notes: list[str] = []

    upload_blobs(fake_connection, [model], progress=lambda d, t: progress.append((d, t)), note=notes.append)

    assert ("rm", "-f", "--", part) in [call.argv for call in fake_connection.runs]
    assert notes == ["the partial model.onnx on nvidia@jetson does not match the local file; sending it from the start"]
    assert progress[0] == (0, 10)
    assert puts_before_rm == [0] and [put.remote for put in fake_connection.puts] == [part]


def test_a_dropped_link_is_retried_with_backoff_resuming_from_what_arrived(tmp_path: Path) -> None:
    conn = DroppingConnection(drops=2, arrives=4)
    conn.on(FREE, df(10**6))
    model = blob(tmp_path, "model.onnx", b"0123456789")
    part = f"{INCOMING_DIR}/{model.digest}.part"
    conn.on(LISTING, Reply(f"{model.digest}\n"))
    answer_from_files(conn, part)
    conn.on(COMMIT)
    clock = FakeClock()
    notes: list[str] = []
    progress: list[tuple[int, int]] = []

    sent = upload_blobs(
        conn, [model], progress=lambda d, t: progress.append((d, t)), note=notes.append, sleep=clock.sleep
    )

    assert sent == [model] and conn.files[part] == b"0123456789"
    assert clock.sleeps == [1.0, 2.0]
    assert notes == [
        "the link to nvidia@jetson dropped while sending model.onnx; retry 1 of 4 in 1 s",
        "the link to nvidia@jetson dropped while sending model.onnx; retry 2 of 4 in 2 s",
    ]
    # Each try starts the bar at what the device holds: nothing, then the 4 bytes that arrived.
    assert progress == [(0, 10), (4, 10), (4, 10), (10, 10)]


def test_after_the_last_retry_the_drop_propagates_unchanged(tmp_path: Path) -> None:
    conn = DroppingConnection(drops=len(RETRY_DELAYS_S) + 1)
    conn.on(FREE, df(10**6))
    model = blob(tmp_path, "model.onnx", b"0123456789")
    conn.on(LISTING, Reply(f"{model.digest}\n"))
    conn.on(PART, NO_PART)
    clock = FakeClock()

    with pytest.raises(DeviceUnreachable) as raised:
        upload_blobs(conn, [model], sleep=clock.sleep)

    assert str(raised.value) == "The link to nvidia@jetson dropped (EOF); re-run the same command."
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0] and conn.drops == 0
    assert not any(COMMIT.search(call.line) for call in conn.runs)


def test_a_device_still_down_when_retried_counts_as_a_try(tmp_path: Path) -> None:
    conn = DroppingConnection(drops=1)
    conn.on(FREE, df(10**6))
    model = blob(tmp_path, "model.onnx", b"0123456789")
    conn.on(LISTING, Reply(f"{model.digest}\n"))
    down = DeviceUnreachable("nvidia@jetson refused the connection; check that the device is on.")

    def probe(call: Run) -> Reply:
        # After the drop, the reconnects for the first two probes fail; then the link is back.
        probes.append(call)
        if len(probes) <= 2:
            raise down
        return NO_PART

    probes: list[Run] = []
    conn.on(PART, probe)
    conn.on(COMMIT)
    clock = FakeClock()
    notes: list[str] = []

    assert upload_blobs(conn, [model], note=notes.append, sleep=clock.sleep) == [model]
    assert clock.sleeps == [1.0, 2.0, 4.0] and len(notes) == 3 and len(probes) == 3


def test_a_device_that_answers_again_with_full_storage_is_told_apart_from_a_drop(tmp_path: Path) -> None:
    # SFTP reports a full disk as a plain failure, as it does a link that went: once the device
    # answers again, the free space tells which, and a full one is one sentence without retries.
    conn = DroppingConnection(drops=1, arrives=4)
    model = blob(tmp_path, "model.onnx", b"0123456789")
    part = f"{INCOMING_DIR}/{model.digest}.part"
    conn.on(LISTING, Reply(f"{model.digest}\n"))
    answer_from_files(conn, part)
    conn.on(FREE, df(0))
    clock = FakeClock()

    with pytest.raises(DeviceError) as raised:
        upload_blobs(conn, [model], sleep=clock.sleep)

    assert str(raised.value) == (
        f"nvidia@jetson has 0.0 MB free for uploads ({INCOMING_DIR}) and model.onnx needs 0.0 MB more; "
        "free space there (`edgekit prune` removes old releases) and re-run: what arrived is kept."
    )
    assert clock.sleeps == [1.0] and conn.files[part] == b"0123"
