"""Content-addressed, resumable, sha256-verified uploads into /var/lib/edgekit/blobs.

A blob already on the device is not sent again; a partial upload left by a dropped link
resumes where it stopped once its bytes checked out as the start of the blob, also when the
link drops within the run (retried with backoff); a blob enters the store only after its
digest checked out.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgekit.device.layout import BLOBS_DIR, INCOMING_DIR
from edgekit.errors import DeviceError, DeviceUnreachable
from edgekit.model import sha256_file
from edgekit.ssh.seam import Connection, ProgressCallback

# Seconds to wait before each new try after the link dropped during an upload: a radio link
# that blinks comes back within seconds; one that stays down fails the run after them all.
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0)

# The digests the store lacks, one a line, each followed by the size and sha256 of its part when
# a dropped link left one: hashed in the listing's round trip rather than in one more per blob.
_MISSING = (
    'store="$1"; incoming="$2"; shift 2; for d; do [ -f "$store/$d" ] && continue; p="$incoming/$d.part"; '
    'if [ -f "$p" ]; then echo "$d $(wc -c < "$p") $(sha256sum < "$p")"; else echo "$d"; fi; done'
)
# Verify, then publish: the store never holds a blob whose name is not its digest.
_COMMIT = (
    'part="$1"; digest="$2"; store="$3"; '
    'set -- $(sha256sum "$part"); '
    'if [ "$1" != "$digest" ]; then rm -f "$part"; echo "mismatch $1"; exit 3; fi; '
    'chmod 0644 "$part" && chown root:root "$part" && mv -f "$part" "$store/$digest"'
)
# The same for one part, once a dropped link made it grow; nothing when there is none.
_PART = '[ -f "$1" ] || exit 0; wc -c < "$1"; sha256sum < "$1"'
# How many bytes a part on the device holds, and their sha256.
Part = tuple[int, str]


@dataclass(frozen=True)
class Blob:
    local: Path
    digest: str

    @classmethod
    def of(cls, path: Path) -> Blob:
        return cls(path, sha256_file(path))

    def remote(self) -> str:
        return f"{BLOBS_DIR}/{self.digest}"


def prepare_store(conn: Connection) -> None:
    conn.run(["install", "-d", "-m", "0755", BLOBS_DIR], sudo=True)
    owner = "root" if conn.is_root else conn.run(["id", "-un"]).stdout.strip()
    conn.run(["install", "-d", "-m", "0700", "-o", owner, INCOMING_DIR], sudo=True)


def upload_blobs(
    conn: Connection,
    blobs: Sequence[Blob],
    on_file: Callable[[Blob], None] = lambda blob: None,
    progress: ProgressCallback | None = None,
    note: Callable[[str], None] = lambda line: None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Blob]:
    """Send the blobs the device lacks; return those that were sent.

    ``progress`` gets (bytes on the device, size) before each try at a blob, then as it goes;
    ``note`` gets one line for each retry and each partial upload that had to be discarded.
    """
    unique = list({blob.digest: blob for blob in blobs}.values())
    listed = conn.run(["sh", "-c", _MISSING, "sh", BLOBS_DIR, INCOMING_DIR, *(b.digest for b in unique)])
    missing = {words[0]: _part(words[1:]) for words in map(str.split, listed.stdout.splitlines()) if words}
    sent = []
    for blob in unique:
        if blob.digest not in missing:
            continue
        on_file(blob)
        part = f"{INCOMING_DIR}/{blob.digest}.part"
        _send(conn, blob, part, missing[blob.digest], progress, note, sleep)
        commit = conn.run(["sh", "-c", _COMMIT, "sh", part, blob.digest, BLOBS_DIR], sudo=True, check=False)
        if not commit.ok:
            why = commit.stdout.strip() or commit.stderr.strip()
            raise DeviceError(
                f"{blob.local.name} arrived corrupted on {conn.target} ({why}); "
                "re-run to send it again, and check the device's storage if it repeats."
            )
        sent.append(blob)
    return sent


def _send(
    conn: Connection,
    blob: Blob,
    part: str,
    found: Part | None,
    progress: ProgressCallback | None,
    note: Callable[[str], None],
    sleep: Callable[[float], None],
) -> None:
    """Put ``blob`` into ``part``, which held ``found`` when listed, trying again from what
    arrived after each dropped link."""
    for attempt, delay in enumerate((*RETRY_DELAYS_S, None), start=1):
        try:
            if attempt > 1:
                found = _part(conn.run(["sh", "-c", _PART, "sh", part]).stdout.split())
            held = _verified_part(conn, blob, part, found, note)
            if attempt > 1:
                # The device answers again: an upload that failed on a live link may have filled
                # its storage, which SFTP reports no differently from a link that went.
                _refuse_when_full(conn, blob, held)
            if progress:
                progress(held, blob.local.stat().st_size)
            conn.put(blob.local, part, progress)
            return
        except DeviceUnreachable:
            if delay is None:
                raise
            note(
                f"the link to {conn.target} dropped while sending {blob.local.name}; "
                f"retry {attempt} of {len(RETRY_DELAYS_S)} in {delay:g} s"
            )
            sleep(delay)


def _refuse_when_full(conn: Connection, blob: Blob, held: int) -> None:
    free_kib = conn.run(["df", "-Pk", INCOMING_DIR], check=False).stdout.splitlines()[-1:]
    fields = free_kib[0].split() if free_kib else []
    if len(fields) < 4 or not fields[3].isdigit():
        return
    free, needed = int(fields[3]) * 1024, blob.local.stat().st_size - held
    if free < needed:
        raise DeviceError(
            f"{conn.target} has {free / 1e6:.1f} MB free for uploads ({INCOMING_DIR}) and {blob.local.name} "
            f"needs {needed / 1e6:.1f} MB more; free space there (`edgekit prune` removes old releases) and "
            "re-run: what arrived is kept."
        )


def _part(words: Sequence[str]) -> Part | None:
    """A part from the words of its size and sha256sum's line; None for no words (no part)."""
    return (int(words[0]), words[1]) if words else None


def _verified_part(conn: Connection, blob: Blob, part: str, found: Part | None, note: Callable[[str], None]) -> int:
    """How many bytes of ``blob`` its part on the device holds. A part that is not the blob's
    start (damaged by the device's storage or a power loss) is removed: resuming would keep its
    bad bytes, and the digest check at the end would throw the whole upload away."""
    if found is None:
        return 0
    held, digest = found
    if held <= blob.local.stat().st_size and digest == sha256_prefix(blob.local, held):
        return held
    conn.run(["rm", "-f", "--", part])
    note(f"the partial {blob.local.name} on {conn.target} does not match the local file; sending it from the start")
    return 0


def sha256_prefix(path: Path, size: int) -> str:
    """The sha256 of the first ``size`` bytes of ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while size > 0 and (block := stream.read(min(size, 1 << 20))):
            digest.update(block)
            size -= len(block)
    return digest.hexdigest()
