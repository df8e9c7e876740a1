"""One file up over SFTP: appended to what the remote already holds, pipelined, one SSH packet per write.

``SSHConnection.put`` runs :func:`upload` on its SFTP session. Checking that what the remote
holds is the start of the local file is the caller's part (``edgekit.device.blobs``): here a
remote shorter than the local file is taken as its first bytes, a longer one is started over.
"""

from __future__ import annotations

from pathlib import Path

import paramiko

from edgekit.ssh.seam import ProgressCallback

# OpenSSH takes at most 32 KiB per packet on a session channel and paramiko sends 64 bytes
# less; paramiko's 32 KiB write requests spill their 29-byte header into a second, tiny packet.
# Requests that fit one packet took a 50 MB upload from ~95 to ~175 MB/s of CPU-bound speed
# against OpenSSH on loopback (~300 MB/s with send_at_once below). A larger SFTP window or
# packet size, from_transport's arguments, changed nothing for uploads (paced by the device's
# window) and slowed get() down, so paramiko's defaults stay.
WRITE_REQUEST_BYTES = (1 << 15) - 64 - 64


def upload(
    sftp: paramiko.SFTPClient, local: Path, remote: str, chunk_bytes: int, progress: ProgressCallback | None
) -> None:
    """Send ``local`` to ``remote`` from the remote's current size on, in reads of ``chunk_bytes``.

    ``progress`` gets (bytes the remote holds, total) after each chunk is handed to the link.
    """
    total = local.stat().st_size
    offset = remote_size(sftp, remote)
    if offset > total:
        sftp.remove(remote)
        offset = 0
    with open(local, "rb") as source, sftp.open(remote, "ab" if offset else "wb") as dest:
        # Pipelined: no round trip per write; errors still surface, at the latest on close.
        dest.set_pipelined(True)
        dest.MAX_REQUEST_SIZE = WRITE_REQUEST_BYTES
        source.seek(offset)
        while chunk := source.read(chunk_bytes):
            dest.write(chunk)
            offset += len(chunk)
            if progress:
                progress(offset, total)


def remote_size(sftp: paramiko.SFTPClient, remote: str) -> int:
    try:
        return sftp.stat(remote).st_size or 0
    except FileNotFoundError:
        return 0
