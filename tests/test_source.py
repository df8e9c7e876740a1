"""Camera sources as the deployer writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.errors import UsageError
from edgekit.source import SourceSpec


def test_local_file_is_shipped(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    video.write_bytes(b"video")
    spec = SourceSpec(str(video))
    assert (spec.kind, spec.local_file(), spec.loop) == ("file", video, True)
    assert spec.device_uri("/var/lib/edgekit/current") == "file:///var/lib/edgekit/current/media/clip.avi"


def test_local_file_with_tilde(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "clip.avi").write_bytes(b"video")
    assert SourceSpec("~/clip.avi").local_file() == tmp_path / "clip.avi"


@pytest.mark.parametrize(
    ("text", "kind", "sensor", "device_path", "uri"),
    [
        ("csi://0", "csi", 0, None, "csi://0"),
        ("csi://12", "csi", 12, None, "csi://12"),
        ("v4l2:///dev/video1", "v4l2", None, "/dev/video1", "v4l2:///dev/video1"),
        ("/dev/video0", "v4l2", None, "/dev/video0", "v4l2:///dev/video0"),
        (
            "/dev/v4l/by-id/usb-Logitech_C920-video-index0",
            "v4l2",
            None,
            "/dev/v4l/by-id/usb-Logitech_C920-video-index0",
            "v4l2:///dev/v4l/by-id/usb-Logitech_C920-video-index0",
        ),
        ("rtsp://10.0.0.9:554/stream", "rtsp", None, None, "rtsp://10.0.0.9:554/stream"),
        ("rtsps://cam/stream", "rtsp", None, None, "rtsps://cam/stream"),
        ("file:///opt/clip.avi", "file", None, None, "file:///opt/clip.avi"),
        ("file:///opt/frames/", "file", None, None, "file:///opt/frames/"),
    ],
)
def test_uris(text: str, kind: str, sensor: int | None, device_path: str | None, uri: str) -> None:
    spec = SourceSpec(text, loop=False)
    assert (spec.kind, spec.sensor, spec.device_path) == (kind, sensor, device_path)
    assert spec.local_file() is None
    assert spec.device_uri("/anything") == uri


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("no-such-video.avi", "not a camera source"),
        ("http://cam/mjpeg", "not a camera source"),
        ("csi://", "names no sensor"),
        ("csi://front", "names no sensor"),
        ("v4l2://video0", "names no device"),
    ],
)
def test_bad_sources_are_refused_when_written(text: str, words: str) -> None:
    with pytest.raises(UsageError) as info:
        SourceSpec(text)
    assert words in str(info.value) and repr(text) in str(info.value)
    assert info.value.exit_code == 2
