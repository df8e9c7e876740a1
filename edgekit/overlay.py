"""``edgekit overlay build``: the camera service laid into a tree to copy onto an L4T rootfs.

The overlay holds the system files `edgekit provision` installs (from ``firmware_overlay/``,
the one place both take them from), the service user (sysusers.d), /var/lib/edgekit
(tmpfiles.d), a site config template, the agent zipapp, a CycloneDX SBOM (edgekit.sbom) and a
manifest. Enabled but waiting: until provision delivers a release, the unit's condition skips it
at boot. Nothing NVIDIA is in it and no engine: the device builds its own (`edgekit audit`
proves it in CI).

Reproducible: the same inputs give the same bytes. Files are added in sorted order with fixed
modes, owner root, a fixed modification time (SOURCE_DATE_EPOCH, else 0) and a gzip header
with neither a name nor a time.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from edgekit.agentpack import build_agent
from edgekit.device.install import OVERLAY_DIR
from edgekit.device.layout import UNIT_NAME
from edgekit.errors import UsageError
from edgekit.profiles import load_profile
from edgekit.provision import site_config
from edgekit.sbom import overlay_sbom
from edgekit.settings import merge_settings
from edgekit.source import SourceSpec

AGENT_PATH = "usr/lib/edgekit/agent.pyz"
MANIFEST_PATH = "usr/lib/edgekit/overlay.json"
# Written before the manifest, so that the manifest lists it; it lists neither itself nor the manifest.
SBOM_PATH = "usr/lib/edgekit/sbom.cdx.json"
TEMPLATE_PATH = "etc/edgekit/camera.json.example"
# What `systemctl enable` would make: the unit wanted by multi-user.target.
WANTS_LINK = f"etc/systemd/system/multi-user.target.wants/{UNIT_NAME}"
WANTS_TARGET = f"../{UNIT_NAME}"
# The template's camera settings: an Orin Nano on JetPack 6.2 with its CSI camera; provision
# writes the device's own.
TEMPLATE_PROFILE = "orin-nano-8gb-jp62"
# Nothing in the overlay is executed from it: the agent runs as `python agent.pyz`.
FILE_MODE = 0o644


@dataclass(frozen=True)
class OverlayFile:
    path: str
    sha256: str
    size: int
    mode: int


@dataclass(frozen=True)
class Overlay:
    out: str
    files: tuple[OverlayFile, ...]
    # The symbolic link that enables the unit.
    links: dict[str, str]
    # The archive's sha256 for a tarball; None for a directory.
    sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def overlay_files() -> dict[str, bytes]:
    """Every regular file of the overlay by its path in the rootfs, the manifest last."""
    files = {
        path.relative_to(OVERLAY_DIR).as_posix(): path.read_bytes()
        for path in sorted(OVERLAY_DIR.rglob("*"))
        if path.is_file()
    }
    files[AGENT_PATH] = _agent_bytes()
    settings = merge_settings(load_profile(TEMPLATE_PROFILE))
    template = site_config(SourceSpec("csi://0"), settings)
    files[TEMPLATE_PATH] = (json.dumps(template, indent=2, sort_keys=True) + "\n").encode()
    files[SBOM_PATH] = overlay_sbom(dict(sorted(files.items())), AGENT_PATH)
    manifest = {
        "edgekit": version("edgekit"),
        "files": {path: hashlib.sha256(data).hexdigest() for path, data in sorted(files.items())},
        "links": {WANTS_LINK: WANTS_TARGET},
    }
    files[MANIFEST_PATH] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    return dict(sorted(files.items()))


def _agent_bytes() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "agent.pyz"
        build_agent(path)
        return path.read_bytes()


def build_overlay(out: Path) -> Overlay:
    """The overlay as a directory, or as a tarball when ``out`` ends in .tar.gz, .tgz or .tar."""
    files = overlay_files()
    listed = tuple(OverlayFile(p, hashlib.sha256(d).hexdigest(), len(d), FILE_MODE) for p, d in files.items())
    links = {WANTS_LINK: WANTS_TARGET}
    if out.name.endswith((".tar.gz", ".tgz", ".tar")):
        data = _tarball(files, compress=not out.name.endswith(".tar"))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        return Overlay(str(out), listed, links, hashlib.sha256(data).hexdigest())
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} is not empty; give a new folder or a .tar.gz path for the overlay.")
    for path, data in files.items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        os.chmod(target, FILE_MODE)
    link = out / WANTS_LINK
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(WANTS_TARGET)
    return Overlay(str(out), listed, links, None)


def _epoch() -> int:
    return int(os.environ.get("SOURCE_DATE_EPOCH", "0"))


def _tarball(files: dict[str, bytes], compress: bool) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        folders = sorted({"/".join(p.split("/")[:i]) for p in [*files, WANTS_LINK] for i in range(1, p.count("/") + 1)})
        for folder in folders:
            archive.addfile(_info(folder, tarfile.DIRTYPE, 0o755))
        for path, data in files.items():
            info = _info(path, tarfile.REGTYPE, FILE_MODE)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = _info(WANTS_LINK, tarfile.SYMTYPE, 0o777)
        link.linkname = WANTS_TARGET
        archive.addfile(link)
    raw = buffer.getvalue()
    if not compress:
        return raw
    packed = io.BytesIO()
    # No file name and a fixed time in the gzip header, or the bytes would change each run.
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=9) as stream:
        stream.write(raw)
    return packed.getvalue()


def _info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = _epoch()
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info
