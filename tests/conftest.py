"""Fixtures every test folder shares: a real RTSP camera (GStreamer's RTSP server) and a fake SSH connection."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sshd import free_port

SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER_SCRIPT = Path(__file__).resolve().parent / "rtsp_server.py"
RTSP_READY_S = 10.0
# The fake_connection fixture, for unit tests of what the host runs on a device.
pytest_plugins = ["edgekit.testing"]


class RtspServer:
    """tests/rtsp_server.py in a child process: a live camera that can vanish, hang and return."""

    def __init__(self, log_dir: Path, port: int, path: str, width: int, height: int, fps: int) -> None:
        self.port = port
        self.path = path
        self.url = f"rtsp://127.0.0.1:{port}{path}"
        self._args = [
            SYSTEM_PYTHON,
            str(RTSP_SERVER_SCRIPT),
            *("--port", str(port), "--path", path),
            *("--width", str(width), "--height", str(height), "--fps", str(fps)),
            "--quit-on-stdin-eof",
        ]
        self._log = log_dir / f"rtsp-server-{port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> RtspServer:
        """Start serving on the same port as before; waits until the server listens."""
        assert self._process is None, "the RTSP server is already running"
        deadline = time.monotonic() + RTSP_READY_S
        while True:
            # A port just freed by kill() can stay busy for a moment, so a refused bind is retried.
            if self._try_start(deadline):
                return self
            if time.monotonic() >= deadline:
                raise AssertionError(f"the RTSP server did not get ready in {RTSP_READY_S} s:\n{self._log.read_text()}")
            time.sleep(0.2)

    def _try_start(self, deadline: float) -> bool:
        with self._log.open("ab") as log:
            # stdin is a pipe that only this process holds: if pytest dies, the server sees EOF and quits.
            process = subprocess.Popen(self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        assert process.stdout is not None
        line = b""
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n") and time.monotonic() < deadline:
                if selector.select(timeout=max(0.0, deadline - time.monotonic())):
                    chunk = os.read(process.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    line += chunk
        if line.startswith(b"READY "):
            assert line.split()[1].decode() == self.url
            self._process = process
            return True
        self._reap(process)
        return False

    def kill(self) -> None:
        """SIGKILL: the camera vanishes without a goodbye, as when its power is cut."""
        if self._process is not None:
            self._reap(self._process)
            self._process = None

    def pause(self) -> None:
        """SIGSTOP: the camera hangs with its connections open."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    @staticmethod
    def _reap(process: subprocess.Popen[bytes]) -> None:
        process.kill()
        process.wait(timeout=10)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="session")
def system_python() -> str:
    """Debian's python3 with GStreamer and its RTSP server; fails, naming the packages, on a machine
    without them (scripts/test installs them)."""
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
        "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
        "missing = [n for n in ('videotestsrc', 'x264enc', 'rtph264pay') if Gst.ElementFactory.find(n) is None];"
        "assert not missing, missing"
    )
    try:
        done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        pytest.fail(f"{SYSTEM_PYTHON} is unavailable ({exc}); the RTSP tests need it")
    if done.returncode != 0:
        pytest.fail(
            f"{SYSTEM_PYTHON} lacks GStreamer's RTSP server or x264enc (python3-gi, gir1.2-gst-rtsp-server-1.0, "
            f"gstreamer1.0-plugins-ugly): {done.stderr.strip().splitlines()[-1:]}"
        )
    return SYSTEM_PYTHON


@pytest.fixture
def rtsp_server(system_python: str, tmp_path: Path) -> Iterator[Callable[..., RtspServer]]:
    """Starts real RTSP cameras on 127.0.0.1: ``rtsp_server(width=320, height=240, fps=15, port=None)``."""
    servers: list[RtspServer] = []

    def start(
        path: str = "/cam", width: int = 320, height: int = 240, fps: int = 15, port: int | None = None
    ) -> RtspServer:
        server = RtspServer(tmp_path, port or free_port(), path, width, height, fps)
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.kill()


@pytest.fixture(scope="module")
def rtsp_camera(system_python: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtspServer]:
    """One RTSP camera for a whole module, for services that stay connected across tests."""
    server = RtspServer(tmp_path_factory.mktemp("rtsp"), free_port(), "/cam", 320, 240, 15)
    try:
        yield server.start()
    finally:
        server.kill()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


@pytest.fixture(scope="session")
def free_ports() -> Callable[[], int]:
    """Free loopback ports, for fixtures of any scope."""
    return free_port


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No keys from the real ~/.ssh, no agent: only the identity a test passes counts."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home
