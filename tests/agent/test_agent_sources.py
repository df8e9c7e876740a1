"""Frame sources: files and folders, pipeline strings, and a real RTSP camera that vanishes and hangs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgekit.agent.config import CameraConfig, SourceConfig
from edgekit.agent.errors import AgentError
from edgekit.agent.redact import mask_url
from edgekit.agent.sources import csi_pipeline, has_gstreamer, open_source, rtsp_pipeline

REPO_ROOT = Path(__file__).resolve().parents[2]
PROFILES = REPO_ROOT / "device_profiles"
APPSINK = "video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false"
# Short enough to keep the tests quick, long enough for FFmpeg to probe the stream at open.
READ_TIMEOUT_S = 2.0
# What a read may take beyond the timeout: FFmpeg checks its deadline between socket polls.
TIMEOUT_MARGIN_S = 1.5


def profile_camera(name: str) -> CameraConfig:
    camera = tomllib.loads((PROFILES / f"{name}.toml").read_text())["camera"]
    return CameraConfig(**{key: camera[key] for key in CameraConfig._fields if key in camera})


def open_uri(uri: str, camera: CameraConfig | None = None, **source: object) -> object:
    return open_source(SourceConfig(uri=uri, **source), camera or CameraConfig())  # type: ignore[arg-type]


def source_error(uri: str, camera: CameraConfig | None = None, **source: object) -> str:
    with pytest.raises(AgentError) as caught:
        open_uri(uri, camera, **source)
    assert caught.value.kind == "source"
    return caught.value.message


def read_all(source, limit=100):
    frames = []
    while len(frames) < limit:
        frame = source.read()
        if frame is None:
            break
        frames.append(frame)
    return frames


# --- files and folders -------------------------------------------------------------------------


def test_a_video_ends_when_not_looping(make_video):
    path = make_video(frames=10)
    source = open_uri(path.as_uri(), loop=False)
    try:
        frames = read_all(source)
        assert source.fps == pytest.approx(20.0)
        assert source.read() is None
    finally:
        source.close()
    assert len(frames) == 10
    assert frames[0].shape == (48, 64, 3)
    assert source.live is False
    assert source.description == str(path)


def test_a_looping_video_starts_again_from_the_first_frame(make_video):
    source = open_uri(make_video(frames=10).as_uri(), loop=True)
    try:
        frames = read_all(source, limit=25)
    finally:
        source.close()
    assert len(frames) == 25
    assert np.array_equal(frames[10], frames[0])
    assert np.array_equal(frames[24], frames[4])


def test_realtime_paces_frames_at_the_video_rate(make_video):
    source = open_uri(make_video(frames=10, fps=20).as_uri(), realtime=True)
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
    source = open_uri(folder.as_uri(), loop=True)
    widths = [source.read().shape[1] for _ in range(4)]
    source.close()
    assert widths == [10, 20, 30, 10]
    assert source.fps is None
    assert source.live is False


def test_an_image_folder_ends_when_not_looping(tmp_path):
    cv2.imwrite(str(tmp_path / "only.png"), np.zeros((4, 4, 3), dtype=np.uint8))
    source = open_uri(tmp_path.as_uri())
    assert len(read_all(source)) == 1


def test_an_empty_folder_is_a_source_error(tmp_path):
    assert str(tmp_path) in source_error(tmp_path.as_uri())


def test_a_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "gone.avi"
    assert str(missing) in source_error(missing.as_uri())


# --- URIs and credentials ----------------------------------------------------------------------


@pytest.mark.parametrize("uri", ["http://10.0.0.5/stream", "video0", "udp://239.0.0.1:5000", "C:/clip.mp4"])
def test_other_schemes_name_the_supported_ones(uri):
    message = source_error(uri)
    assert uri in message
    for example in ("file://", "csi://N", "v4l2:///dev/videoN", "/dev/v4l/by-id/", "rtsp://", "rtsps://"):
        assert example in message


def test_an_unsupported_uri_never_shows_its_password():
    message = source_error("http://admin:hunter2@10.0.0.5/stream")
    assert "hunter2" not in message
    assert "http://admin:***@10.0.0.5/stream" in message


@pytest.mark.parametrize(
    ("uri", "masked"),
    [
        ("rtsp://10.0.0.5:554/stream1", "rtsp://10.0.0.5:554/stream1"),
        ("rtsp://admin:hunter2@10.0.0.5/s", "rtsp://admin:***@10.0.0.5/s"),
        ("rtsps://admin@10.0.0.5/s", "rtsps://admin@10.0.0.5/s"),
        ("rtsp://admin:@10.0.0.5/s", "rtsp://admin:***@10.0.0.5/s"),
        # Unencoded @, / and ? in a password: everything up to the last @ is credentials.
        ("rtsp://admin:hun@ter/2?x@10.0.0.5/s", "rtsp://admin:***@10.0.0.5/s"),
        ("rtsp://10.0.0.5/s?user=admin&password=hunter2&ch=1", "rtsp://10.0.0.5/s?user=admin&password=***&ch=1"),
        ("rtsp://10.0.0.5/s?PWD=hunter2", "rtsp://10.0.0.5/s?PWD=***"),
    ],
)
def test_credentials_are_masked(uri, masked):
    assert mask_url(uri) == masked


# --- pipeline strings --------------------------------------------------------------------------


def test_the_csi_pipeline_is_the_profile_template_for_one_sensor():
    camera = profile_camera("orin-nano-8gb-jp62")._replace(width=1920, height=1080, fps=60)
    assert csi_pipeline(camera, 1) == (
        "nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM),width=1920,height=1080,framerate=60/1,format=NV12 "
        "! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! " + APPSINK
    )


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("", "sets no camera.csi_pipeline"),
        ("nvarguscamerasrc sensor-id={sensor_id} ! appsink", "names {sensor_id}"),
        ("nvarguscamerasrc sensor-id={} ! appsink", "{sensor}, {width}, {height}, {fps}"),
        ("nvarguscamerasrc sensor-id={sensor ! appsink", "not a valid template"),
    ],
)
def test_a_bad_csi_template_says_what_it_may_use(template, words):
    with pytest.raises(AgentError) as caught:
        csi_pipeline(CameraConfig(csi_pipeline=template), 0)
    assert caught.value.kind == "source"
    assert words in caught.value.message


HARDWARE = CameraConfig(rtsp_decode="hardware", rtsp_decoder="nvv4l2decoder enable-max-performance=1")
RTSP_HEAD = 'rtspsrc location="rtsp://10.0.0.5/s" protocols=tcp latency=200 ! application/x-rtp,media=video'
HARDWARE_TAIL = "nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! " + APPSINK


@pytest.mark.parametrize(
    ("codec", "decoder", "expected"),
    [
        (
            "h264",
            HARDWARE.rtsp_decoder,
            f"{RTSP_HEAD} ! rtph264depay ! h264parse ! nvv4l2decoder enable-max-performance=1 ! {HARDWARE_TAIL}",
        ),
        (
            "h265",
            HARDWARE.rtsp_decoder,
            f"{RTSP_HEAD} ! rtph265depay ! h265parse ! nvv4l2decoder enable-max-performance=1 ! {HARDWARE_TAIL}",
        ),
        # JetPack 7's decoder refuses enable-max-performance, so a profile may name it bare or not at all.
        ("h264", "", f"{RTSP_HEAD} ! rtph264depay ! h264parse ! nvv4l2decoder ! {HARDWARE_TAIL}"),
    ],
)
def test_the_hardware_rtsp_pipeline(codec, decoder, expected):
    assert rtsp_pipeline("rtsp://10.0.0.5/s", HARDWARE._replace(rtsp_decoder=decoder), codec) == expected


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_the_software_rtsp_pipeline(codec):
    assert rtsp_pipeline("rtsp://10.0.0.5/s", profile_camera("twin"), codec) == (
        f"{RTSP_HEAD} ! decodebin ! videoconvert ! {APPSINK}"
    )


def test_the_rtsp_location_is_quoted_for_gst_parse_launch():
    uri = 'rtsp://admin:pa"ss\\word@10.0.0.5/s'
    assert rtsp_pipeline(uri, HARDWARE, "h264").startswith(
        'rtspsrc location="rtsp://admin:pa\\"ss\\\\word@10.0.0.5/s" protocols=tcp '
    )


def run_system_gstreamer(python: str, code: str, *args: str) -> str:
    """Runs code under the system python's GStreamer (the host cv2 has none)."""
    prelude = "import sys, gi; gi.require_version('Gst', '1.0'); from gi.repository import Gst; Gst.init(None)\n"
    done = subprocess.run(
        [python, "-c", prelude + code, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_gst_parse_launch_reads_the_quoted_location_back_verbatim(system_python):
    uri = 'rtsp://admin:pa"ss\\word @10.0.0.5/s'
    code = (
        "pipeline = Gst.parse_launch(sys.argv[1])\n"
        "[src] = [e for e in pipeline.children if e.get_factory().get_name() == 'rtspsrc']\n"
        "print(src.get_property('location'), end='')\n"
    )
    assert run_system_gstreamer(system_python, code, rtsp_pipeline(uri, CameraConfig(), "h264")) == uri


def test_the_software_gstreamer_pipeline_delivers_bgr_frames(rtsp_server, system_python):
    """The fallback for an OpenCV without FFmpeg, run by the system GStreamer against a real stream."""
    server = rtsp_server(width=320, height=240, fps=15)
    code = (
        "pipeline = Gst.parse_launch(sys.argv[1])\n"
        "[sink] = [e for e in pipeline.children if e.get_factory().get_name() == 'appsink']\n"
        "pipeline.set_state(Gst.State.PLAYING)\n"
        "sample = sink.emit('try-pull-sample', 10 * Gst.SECOND)\n"
        "pipeline.set_state(Gst.State.NULL)\n"
        "s = sample.get_caps().get_structure(0)\n"
        "print(s.get_value('format'), s.get_value('width'), s.get_value('height'), end='')\n"
    )
    pipeline = rtsp_pipeline(server.url, CameraConfig(rtsp_decode="software"), "h264")
    assert run_system_gstreamer(system_python, code, pipeline) == "BGR 320 240"


# --- errors that tell the operator what to do --------------------------------------------------


@pytest.mark.parametrize(
    "uri", ["/dev/video-edgekit-missing", "v4l2:///dev/v4l/by-id/usb-Edgekit_Missing-video-index0"]
)
def test_a_missing_camera_node_is_named_with_where_to_look(uri):
    message = source_error(uri)
    assert uri.replace("v4l2://", "") in message
    assert "ls /dev/v4l/by-id" in message


def test_a_by_id_link_is_resolved_each_time_the_camera_is_opened(tmp_path):
    """A re-plugged camera gets a new /dev/videoN; its by-id link follows it, so must the source."""
    link = tmp_path / "usb-Cam-video-index0"
    assert "ls /dev/v4l/by-id" in source_error(f"v4l2://{link}")
    for target in ("video0", "video2"):
        # Plain files, not capture nodes: OpenCV refuses them, and the refusal names the node the link resolved to.
        (tmp_path / target).write_bytes(b"")
        link.unlink(missing_ok=True)
        link.symlink_to(tmp_path / target)
        message = source_error(f"v4l2://{link}")
        assert f"could not open the camera {tmp_path / target}" in message


def open_as_service_user(uri: str) -> str:
    """``open_source(uri)``'s error as "kind message"; root may open anything, so as root it runs
    in a child that has become nobody."""
    code = (
        "import os, sys\n"
        "from edgekit.agent.config import CameraConfig, SourceConfig\n"
        "from edgekit.agent.errors import AgentError\n"
        "from edgekit.agent.sources import open_source\n"
        "if os.geteuid() == 0:\n"
        "    os.setgid(65534); os.setuid(65534)\n"
        "try:\n"
        "    open_source(SourceConfig(uri=sys.argv[1]), CameraConfig())\n"
        "except AgentError as exc:\n"
        "    print(exc.kind, exc.message)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, uri], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, check=True
    )
    return done.stdout


def test_a_camera_the_service_user_may_not_open_names_the_video_group():
    folder = tempfile.mkdtemp(prefix="ek-video-", dir="/tmp")
    try:
        os.chmod(folder, 0o755)
        node = os.path.join(folder, "video0")
        with open(node, "wb"):
            pass
        os.chmod(node, 0o600 if os.geteuid() == 0 else 0)
        output = open_as_service_user("v4l2://" + node)
    finally:
        shutil.rmtree(folder)
    assert output.startswith("source ")
    assert f"may not open {node}; add it to the video group" in output
    assert "sudo usermod -aG video" in output


@pytest.mark.skipif(has_gstreamer(), reason="this cv2 has GStreamer")
def test_csi_without_gstreamer_says_pip_opencv_shadows_jetpacks():
    message = source_error("csi://0", profile_camera("orin-nano-8gb-jp62"))
    assert "csi://0 needs OpenCV with GStreamer" in message
    assert "pip3 uninstall opencv-python" in message


@pytest.mark.skipif(has_gstreamer(), reason="this cv2 has GStreamer")
def test_hardware_rtsp_without_gstreamer_offers_software_decoding():
    message = source_error("rtsp://admin:hunter2@127.0.0.1:9/cam", HARDWARE)
    assert "pip3 uninstall opencv-python" in message
    assert 'rtsp_decode = "software"' in message
    assert "hunter2" not in message


def test_an_unreachable_stream_is_named_without_its_password(capfd, closed_port):
    uri = f"rtsp://admin:hunter2@127.0.0.1:{closed_port}/cam"
    started = time.monotonic()
    message = source_error(uri, read_timeout_s=READ_TIMEOUT_S)
    assert time.monotonic() - started < READ_TIMEOUT_S + TIMEOUT_MARGIN_S
    assert message.startswith(f"Could not open the stream rtsp://admin:***@127.0.0.1:{uri.rsplit(':', 1)[1]};")
    assert "address, port, path and credentials" in message
    captured = capfd.readouterr()
    # Nor does OpenCV or FFmpeg print it on stderr, which journald keeps.
    assert "hunter2" not in message + captured.out + captured.err


# --- a real RTSP camera ------------------------------------------------------------------------


def read_frames(source, count: int) -> list[np.ndarray]:
    frames = [source.read() for _ in range(count)]
    assert all(frame is not None for frame in frames)
    return frames


def seconds_until_lost(source, deadline_s: float) -> float:
    """Reads until None, through the frames still buffered when the camera went away."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        if source.read() is None:
            return time.monotonic() - started
    raise AssertionError(f"the source still delivered frames {deadline_s} s after the camera went away")


def test_an_rtsp_camera_delivers_frames_of_its_size(rtsp_server):
    server = rtsp_server(width=320, height=240, fps=15)
    uri = server.url.replace("rtsp://", "rtsp://admin:hunter2@")
    source = open_uri(uri, read_timeout_s=READ_TIMEOUT_S)
    try:
        frames = read_frames(source, 10)
    finally:
        source.close()
    assert {frame.shape for frame in frames} == {(240, 320, 3)}
    assert {frame.dtype for frame in frames} == {np.dtype(np.uint8)}
    # The ball moves, so a live stream is not one frame repeated.
    assert not np.array_equal(frames[0], frames[-1])
    assert source.live is True
    assert source.fps == pytest.approx(15.0)
    assert source.description == f"rtsp://admin:***@{server.url[len('rtsp://') :]} (ffmpeg, tcp)"
    assert source.read() is None


def test_a_vanished_rtsp_camera_reads_as_lost_and_reopens_when_it_returns(rtsp_server):
    server = rtsp_server(width=320, height=240, fps=15)
    source = open_uri(server.url, read_timeout_s=READ_TIMEOUT_S)
    try:
        read_frames(source, 5)
        server.kill()
        # The closed connection is noticed at once; the bound is the read timeout's.
        assert seconds_until_lost(source, READ_TIMEOUT_S + TIMEOUT_MARGIN_S) < READ_TIMEOUT_S + TIMEOUT_MARGIN_S
        started = time.monotonic()
        assert source.read() is None
        assert time.monotonic() - started < 0.1, "a lost source must not block again"
    finally:
        source.close()
    assert "Could not open the stream" in source_error(server.url, read_timeout_s=READ_TIMEOUT_S)
    server.start()
    again = open_uri(server.url, read_timeout_s=READ_TIMEOUT_S)
    try:
        assert {frame.shape for frame in read_frames(again, 5)} == {(240, 320, 3)}
    finally:
        again.close()


def test_a_hung_rtsp_camera_is_lost_within_the_read_timeout(rtsp_server):
    server = rtsp_server(width=320, height=240, fps=15)
    source = open_uri(server.url, read_timeout_s=READ_TIMEOUT_S)
    try:
        read_frames(source, 5)
        server.pause()
        # One timeout, not one per frame the decoder still held when the stream stopped.
        lost_after = seconds_until_lost(source, 3 * (READ_TIMEOUT_S + TIMEOUT_MARGIN_S))
        assert READ_TIMEOUT_S - 0.5 < lost_after < READ_TIMEOUT_S + TIMEOUT_MARGIN_S
    finally:
        source.close()
    server.resume()
    again = open_uri(server.url, read_timeout_s=READ_TIMEOUT_S)
    try:
        read_frames(again, 5)
    finally:
        again.close()


def test_closing_from_another_thread_during_a_blocked_read_is_safe(rtsp_server):
    """The grabber gives up on a hung read by closing the source from its own thread."""
    server = rtsp_server(width=320, height=240, fps=15)
    source = open_uri(server.url, read_timeout_s=READ_TIMEOUT_S)
    read_frames(source, 3)
    server.pause()
    results: list[object] = []
    reader = threading.Thread(target=lambda: results.append(read_all(source, limit=1000)))
    reader.start()
    # Past the frames the socket still held, into the read that blocks.
    time.sleep(0.5)
    started = time.monotonic()
    source.close()
    assert time.monotonic() - started < 0.1, "close() must not wait for the blocked read"
    reader.join(timeout=READ_TIMEOUT_S + TIMEOUT_MARGIN_S)
    assert not reader.is_alive()
    assert source.read() is None
    server.resume()


def test_a_folder_the_service_may_not_read_is_a_source_error():
    folder = tempfile.mkdtemp(prefix="ek-folder-", dir="/tmp")
    try:
        locked = os.path.join(folder, "locked")
        os.mkdir(locked, 0o700 if os.geteuid() == 0 else 0)
        os.chmod(folder, 0o755)
        output = open_as_service_user("file://" + locked)
    finally:
        os.chmod(os.path.join(folder, "locked"), 0o755)
        shutil.rmtree(folder)
    assert output.startswith(f"source Cannot read the folder {locked} (Permission denied)")
