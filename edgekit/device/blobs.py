"""Content-addressed, resumable, sha256-verified uploads into /var/lib/edgekit/blobs.

A blob already on the device is not sent again; a partial upload left by a dropped link
resumes where it stopped; a blob enters the store only after its digest checked out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgekit.device.layout import BLOBS_DIR, INCOMING_DIR
from edgekit.errors import DeviceError
from edgekit.model import sha256_file
from edgekit.ssh.seam import Connection

_MISSING = 'cd "$1" && shift && for d; do [ -f "$d" ] || echo "$d"; done'
# Verify, then publish: the store never holds a blob whose name is not its digest.
_COMMIT = (
    'part="$1"; digest="$2"; store="$3"; '
    'set -- $(sha256sum "$part"); '
    'if [ "$1" != "$digest" ]; then rm -f "$part"; echo "mismatch $1"; exit 3; fi; '
    'chmod 0644 "$part" && chown root:root "$part" && mv -f "$part" "$store/$digest"'
)


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
    progress: Callable[[int, int], None] | None = None,
) -> list[Blob]:
    """Send the blobs the device lacks; return those that were sent."""
    unique = list({blob.digest: blob for blob in blobs}.values())
    listed = conn.run(["sh", "-c", _MISSING, "sh", BLOBS_DIR, *(b.digest for b in unique)])
    missing = set(listed.stdout.split())
    sent = []
    for blob in unique:
        if blob.digest not in missing:
            continue
        on_file(blob)
        part = f"{INCOMING_DIR}/{blob.digest}.part"
        conn.put(blob.local, part, progress)
        commit = conn.run(["sh", "-c", _COMMIT, "sh", part, blob.digest, BLOBS_DIR], sudo=True, check=False)
        if not commit.ok:
            why = commit.stdout.strip() or commit.stderr.strip()
            raise DeviceError(
                f"{blob.local.name} arrived corrupted on {conn.target} ({why}); "
                "re-run to send it again, and check the device's storage if it repeats."
            )
        sent.append(blob)
    return sent
