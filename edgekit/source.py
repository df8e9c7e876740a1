"""Camera sources as the deployer names them, and what each needs from the device."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from edgekit.errors import UsageError

SCHEMES = {"csi": "csi", "v4l2": "v4l2", "rtsp": "rtsp", "rtsps": "rtsp", "file": "file"}
EXAMPLES = "csi://0, v4l2:///dev/video0, /dev/v4l/by-id/..., rtsp://host/path, file:///path or a local video"


@dataclass(frozen=True)
class SourceSpec:
    """A camera source: a local video shipped with the release, or a URI on the device."""

    text: str
    loop: bool = True

    def __post_init__(self) -> None:
        # Resolving the kind refuses a malformed source before anything else happens.
        self.kind  # noqa: B018

    def local_file(self) -> Path | None:
        path = Path(self.text).expanduser()
        return path if "://" not in self.text and path.is_file() else None

    @property
    def kind(self) -> str:
        """csi, v4l2, rtsp or file."""
        if self.local_file() is not None:
            return "file"
        if self.text.startswith("/dev/"):
            return "v4l2"
        scheme = urlsplit(self.text).scheme
        if "://" not in self.text or scheme not in SCHEMES:
            raise UsageError(f"The source {self.text!r} is not a camera source; use {EXAMPLES}.")
        if scheme == "csi" and not re.fullmatch(r"csi://\d+", self.text):
            raise UsageError(
                f"The source {self.text!r} names no sensor; use csi://N with the sensor number, e.g. csi://0."
            )
        if scheme == "v4l2" and not self.text.startswith("v4l2:///dev/"):
            raise UsageError(f"The source {self.text!r} names no device; use v4l2:///dev/videoN or a /dev/v4l path.")
        return SCHEMES[scheme]

    @property
    def sensor(self) -> int | None:
        return int(self.text.removeprefix("csi://")) if self.kind == "csi" else None

    @property
    def device_path(self) -> str | None:
        if self.kind != "v4l2":
            return None
        return self.text.removeprefix("v4l2://")

    def device_uri(self, release_path: str) -> str:
        local = self.local_file()
        if local is not None:
            return f"file://{release_path}/media/{local.name}"
        if self.kind == "v4l2":
            return f"v4l2://{self.device_path}"
        return self.text
