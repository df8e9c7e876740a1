from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from edgekit.agent.errors import AgentError
from edgekit.agent.sources import open_source


def read_all(source, limit=100):
    frames = []
    while len(frames) < limit:
        frame = source.read()
        if frame is None:
            break
        frames.append(frame)
    return frames


def test_a_video_ends_when_not_looping(make_video):
    source = open_source({"uri": make_video(frames=10).as_uri(), "loop": False})
    try:
        frames = read_all(source)
        assert source.fps == pytest.approx(20.0)
        assert source.read() is None
    finally:
        source.close()
    assert len(frames) == 10
    assert frames[0].shape == (48, 64, 3)


def test_a_looping_video_starts_again_from_the_first_frame(make_video):
    source = open_source({"uri": make_video(frames=10).as_uri(), "loop": True})
    try:
        frames = read_all(source, limit=25)
    finally:
        source.close()
    assert len(frames) == 25
    assert np.array_equal(frames[10], frames[0])
    assert np.array_equal(frames[24], frames[4])


def test_realtime_paces_frames_at_the_video_rate(make_video):
    source = open_source({"uri": make_video(frames=10, fps=20).as_uri(), "realtime": True})
    started = time.monotonic()
    try:
        frames = read_all(source)
    finally:
        source.close()
    elapsed = time.monotonic() - started
    assert len(frames) == 10
    # Ten frames at 20 fps span nine periods (0.45 s) after the first one.
    assert 0.35 <= elapsed < 3.0


def test_an_image_folder_plays_in_name_order(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for name, width in (("b.png", 20), ("a.jpg", 10), ("c.bmp", 30)):
        cv2.imwrite(str(folder / name), np.full((8, width, 3), 128, dtype=np.uint8))
    (folder / "notes.txt").write_text("not an image")
    source = open_source({"uri": folder.as_uri(), "loop": True})
    widths = [source.read().shape[1] for _ in range(4)]
    source.close()
    assert widths == [10, 20, 30, 10]
    assert source.fps is None


def test_an_image_folder_ends_when_not_looping(tmp_path):
    cv2.imwrite(str(tmp_path / "only.png"), np.zeros((4, 4, 3), dtype=np.uint8))
    source = open_source({"uri": tmp_path.as_uri()})
    assert len(read_all(source)) == 1


def test_an_empty_folder_is_a_source_error(tmp_path):
    with pytest.raises(AgentError) as caught:
        open_source({"uri": tmp_path.as_uri()})
    assert caught.value.kind == "source"
    assert str(tmp_path) in caught.value.message


def test_a_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "gone.avi"
    with pytest.raises(AgentError) as caught:
        open_source({"uri": missing.as_uri()})
    assert caught.value.kind == "source"
    assert str(missing) in caught.value.message


@pytest.mark.parametrize("uri", ["rtsp://10.0.0.5/stream", "/dev/video0", "csi://0"])
def test_other_schemes_name_the_supported_ones(uri):
    with pytest.raises(AgentError) as caught:
        open_source({"uri": uri})
    assert caught.value.kind == "source"
    assert "file://" in caught.value.message
    assert uri in caught.value.message
