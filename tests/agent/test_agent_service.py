"""The camera service end to end: a real agent process, a real video, a fake systemd socket."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.agent.__main__ import main
from edgekit.agent.metrics import parse_prometheus
from edgekit.agent.preprocess import PreprocessSpec, preprocess
from edgekit.agent.service import extending_start_timeout
from edgekit.device.answers import ResultRecord

REPO_ROOT = Path(__file__).resolve().parents[2]


def start_serve(config: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "edgekit.agent", "serve", "--config", str(config)],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def listen(sock: socket.socket, proc: subprocess.Popen, results: Path, until=None, timeout=30.0):
    """Datagrams received, each with the number of result lines on disk when it arrived."""
    messages = []
    deadline = time.monotonic() + timeout
    sock.settimeout(0.1)
    while time.monotonic() < deadline:
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            if proc.poll() is not None:
                break
            continue
        messages.append((message, line_count(results)))
        if until is not None and until in message:
            break
    return messages


def expected_labels(video: Path, release_dir: Path, model_path: Path) -> list[str]:
    release = json.loads((release_dir / "release.json").read_text())
    spec = PreprocessSpec.from_dict(release["preprocess"])
    session = onnxruntime.InferenceSession(str(model_path))
    capture = cv2.VideoCapture(str(video))
    labels = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return labels
        logits = session.run(None, {"image": preprocess(frame, spec)})[0]
        labels.append(release["labels"][int(np.argmax(logits))])


def test_a_short_video_is_classified_frame_by_frame(
    make_video, make_site_config, notify_socket, release_dir, model_path, tmp_path
):
    sock, address = notify_socket
    video = make_video(frames=12, fps=20)
    results = tmp_path / "out" / "results.jsonl"
    proc = start_serve(
        make_site_config(video, loop=False, realtime=True),
        NOTIFY_SOCKET=address,
        WATCHDOG_USEC="200000",
    )
    messages = listen(sock, proc, results)
    stdout, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    assert "ended after 12 frames" in stderr

    texts = [m for m, _ in messages]
    ready = [(m, lines) for m, lines in messages if "READY=1" in m]
    assert len(ready) == 1
    ready_message, lines_when_ready = ready[0]
    assert lines_when_ready >= 1, "READY=1 must follow the first result"
    assert "STATUS=fps=" in ready_message
    assert texts.index(ready_message) > texts.index("STATUS=loading release r-test")
    # The start timeout is pushed out while the model loads, and only then.
    extended = [i for i, text in enumerate(texts) if text.startswith("EXTEND_TIMEOUT_USEC=")]
    assert extended and texts.index("STATUS=loading release r-test") < extended[0] < texts.index(ready_message)
    assert "WATCHDOG=1" in texts[texts.index(ready_message) :]
    assert texts[-1] == "STOPPING=1"

    lines = stdout.splitlines()
    assert lines == results.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["frame"] for r in records] == list(range(12))
    labels = expected_labels(video, release_dir, release_dir / "model.int8.onnx")
    assert [r["top"][0]["label"] for r in records] == labels
    for record in records:
        assert set(record) == {"ts", "frame", "release", "pid", "latency_ms", "fps", "top"}
        assert record["release"] == "r-test"
        assert record["pid"] == proc.pid
        assert set(record["latency_ms"]) == {"grab", "pre", "infer", "post", "total"}
        assert record["latency_ms"]["total"] >= record["latency_ms"]["infer"]
        assert abs(record["ts"] - time.time()) < 60
        scores = [t["score"] for t in record["top"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert records[0]["fps"] is None
    # The host reads these lines as they are written.
    assert [ResultRecord.parse(r).to_dict() for r in records] == records
    assert ResultRecord.parse(records[-1]).describe() == f"{labels[-1]} ({records[-1]['top'][0]['score']})"
    # Paced at 20 fps like a live camera.
    assert 10.0 <= records[-1]["fps"] <= 25.0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_finishes_the_frame_and_exits_cleanly(make_video, make_site_config, notify_socket, tmp_path, signum):
    sock, address = notify_socket
    results = tmp_path / "out" / "results.jsonl"
    proc = start_serve(make_site_config(make_video(frames=5), loop=True, realtime=True), NOTIFY_SOCKET=address)
    try:
        assert any("READY=1" in m for m, _ in listen(sock, proc, results, until="READY=1"))
        deadline = time.monotonic() + 20
        while line_count(results) <= 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signum)
        after = [m for m, _ in listen(sock, proc, results)]
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "STOPPING=1" in after
    assert f"stopping on signal {int(signum)}" in stderr
    records = [json.loads(line) for line in stdout.splitlines()]
    # The looping source went past its 5 frames before the signal.
    assert len(records) > 5
    assert results.read_text().splitlines() == stdout.splitlines()


def serve_error(argv, capsys, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert main(argv) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    return json.loads(out[0])["error"]


def test_a_config_error_is_one_json_line_and_exit_1(make_video, make_site_config, capsys, monkeypatch):
    path = make_site_config(make_video())
    data = json.loads(path.read_text())
    del data["results"]["path"]
    path.write_text(json.dumps(data))
    error = serve_error(["serve", "--config", str(path)], capsys, monkeypatch)
    assert error["kind"] == "config"
    assert "'results.path' is missing" in error["message"]
    assert str(path) in error["message"]


def test_a_release_error_is_reported_the_same_way(make_video, make_site_config, release_dir, capsys, monkeypatch):
    (release_dir / "model.int8.onnx").unlink()
    error = serve_error(["serve", "--config", str(make_site_config(make_video()))], capsys, monkeypatch)
    assert error["kind"] == "model"
    assert "model.int8.onnx" in error["message"]


def test_a_missing_video_is_a_source_error(make_site_config, tmp_path, capsys, monkeypatch):
    config = make_site_config(tmp_path / "missing.avi")
    error = serve_error(["serve", "--config", str(config)], capsys, monkeypatch)
    assert error["kind"] == "source"
    assert "missing.avi" in error["message"]


def test_the_start_timeout_is_extended_in_steps_until_the_load_ends(notify_socket, monkeypatch):
    sock, address = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    sock.settimeout(1.0)
    with extending_start_timeout(period_s=0.05, cap_s=60.0):
        # A long engine build: several extensions, each three periods ahead.
        time.sleep(0.3)
    received = []
    sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        while True:
            received.append(sock.recv(4096).decode())
    assert len(received) >= 3
    assert set(received) == {"EXTEND_TIMEOUT_USEC=150000"}


def test_a_load_stuck_past_the_cap_is_no_longer_extended(notify_socket, monkeypatch):
    sock, address = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    with extending_start_timeout(period_s=0.05, cap_s=0.12):
        time.sleep(0.5)
    sock.settimeout(0.2)
    received = []
    with pytest.raises(TimeoutError):
        while True:
            received.append(sock.recv(4096).decode())
    # Extensions stop at the cap, so systemd's own timeout ends a hung load.
    assert 1 <= len(received) <= 4


def detection_release(directory: Path) -> Path:
    """A YOLOv8-style model whose head is fixed: one 'person' box at model (12..20, 14..18)."""
    head = np.zeros((1, 6, 2), dtype=np.float32)
    head[0, :, 0] = [16.0, 16.0, 8.0, 4.0, 0.9, 0.1]
    head[0, :, 1] = [4.0, 4.0, 2.0, 2.0, 0.01, 0.02]
    graph = helper.make_graph(
        [
            # The image still flows into the output (times zero), as a real model's would.
            helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
            helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
            helper.make_node("Add", ["head", "nothing"], ["output0"]),
        ],
        "fixed_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, 2])],
        initializer=[numpy_helper.from_array(head, "head"), numpy_helper.from_array(np.zeros((), np.float32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    directory.mkdir()
    onnx.save(model, str(directory / "model.onnx"))
    spec = PreprocessSpec(input_name="images", height=32, width=32, resize="letterbox")
    (directory / "release.json").write_text(
        json.dumps(
            {
                "release": "r-detect",
                "backend": "onnxruntime",
                "model": "model.onnx",
                "precision": "fp32",
                "build": {"int8": "none", "workspace_mib": 0, "dla_core": None},
                "task": "detect",
                "detect": {"head": "yolov8", "conf": 0.5, "iou": 0.45, "max_det": 10},
                "labels": ["person", "car"],
                "preprocess": spec.to_dict(),
            }
        )
    )
    return directory


def test_a_detection_release_writes_boxes_in_source_pixels(make_video, make_site_config, tmp_path):
    release = detection_release(tmp_path / "detect-release")
    config = make_site_config(make_video(frames=4), loop=False, realtime=False, release_dir=str(release))
    proc = start_serve(config)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    records = [json.loads(line) for line in stdout.splitlines()]
    assert [r["frame"] for r in records] == [0, 1, 2, 3]
    # 64x48 frames letterboxed into 32x32: scale 0.5, 4 px of padding above.
    for record in records:
        assert record["detections"] == [{"index": 0, "label": "person", "score": 0.9, "box": [24.0, 20.0, 40.0, 28.0]}]
        assert ResultRecord.parse(record).to_dict() == record
        assert ResultRecord.parse(record).describe() == "1 box, best person (0.9)"


def test_a_metrics_port_held_by_another_process_leaves_the_camera_running(make_video, make_site_config):
    # What another twin's service, or any other program, holding the port looks like to this one.
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        port = holder.getsockname()[1]
        config = make_site_config(make_video(frames=4), loop=False, realtime=False, metrics={"port": port})
        proc = start_serve(config)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        holder.close()
    assert proc.returncode == 0, stdout + stderr
    assert [json.loads(line)["frame"] for line in stdout.splitlines()] == [0, 1, 2, 3]
    assert f"metrics not served: Port {port} on 127.0.0.1 is already in use" in stderr


class Collector(http.server.BaseHTTPRequestHandler):
    bodies: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server protocol
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet: the test reads the bodies, not the access log."""


def test_an_image_folder_feeds_the_http_sink_the_metrics_and_the_sample_ring(
    make_site_config, notify_socket, tmp_path, closed_port
):
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for index in range(6):
        cv2.imwrite(str(folder / f"{index:02d}.png"), rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Collector.bodies = []
    sock, address = notify_socket
    results = tmp_path / "out" / "results.jsonl"
    config = make_site_config(
        folder,
        loop=True,
        http={"url": f"http://127.0.0.1:{server.server_address[1]}/results"},
        metrics={"port": closed_port},
        samples={"dir": str(tmp_path / "samples"), "every_s": 0.0, "keep": 3},
    )
    proc = start_serve(config, NOTIFY_SOCKET=address)
    try:
        assert any("READY=1" in m for m, _ in listen(sock, proc, results, until="READY=1"))
        deadline = time.monotonic() + 20
        while line_count(results) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        with urllib.request.urlopen(f"http://127.0.0.1:{closed_port}/metrics", timeout=5) as answer:
            metrics = parse_prometheus(answer.read().decode())
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=15)
    finally:
        proc.kill()
        server.shutdown()
    assert proc.returncode == 0, stderr
    assert metrics["frames"] >= 20 and metrics["fps"] > 0
    assert metrics["latency_ms"]["infer"]["p50"] > 0 and metrics["info"]["release"] == "r-test"
    lines = stdout.splitlines()
    # The sink got every record, in order, as written (close() flushes what is queued).
    assert Collector.bodies == lines
    assert [json.loads(line)["frame"] for line in lines] == list(range(len(lines)))
    # The folder loops in name order.
    assert len(lines) >= 20
    assert sorted(os.listdir(tmp_path / "samples")) and len(os.listdir(tmp_path / "samples")) == 3


def test_a_camera_that_is_away_at_start_is_waited_for_not_fatal(
    make_site_config, notify_socket, tmp_path, closed_port, rtsp_server
):
    sock, address = notify_socket
    results = tmp_path / "out" / "results.jsonl"
    config = make_site_config(tmp_path / "unused.avi")
    edit = json.loads(config.read_text())
    edit["source"] = {"uri": f"rtsp://admin:hunter2@127.0.0.1:{closed_port}/cam", "read_timeout_s": 2.0}
    config.write_text(json.dumps(edit))
    proc = start_serve(config, NOTIFY_SOCKET=address)
    try:
        waiting = listen(sock, proc, results, until="STATUS=waiting for the camera", timeout=30)
        assert any("Could not open the stream rtsp://admin:***@" in m for m, _ in waiting)
        assert proc.poll() is None
        rtsp_server(port=closed_port)
        ready = listen(sock, proc, results, until="READY=1", timeout=60)
        assert any("READY=1" in m for m, _ in ready)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "waiting for the camera" in stderr and "hunter2" not in stderr + stdout
    assert json.loads(stdout.splitlines()[0])["top"]
