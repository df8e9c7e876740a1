"""scripts/lib/link_proxy.py against an echo server: forwarding, counters, the rate, cuts, refusal."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest
from script_modules import load_script


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: EchoServer = self.server  # type: ignore[assignment]
        while data := self.request.recv(1 << 16):
            with server.lock:
                server.received += len(data)
            self.request.sendall(data)


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Echo)
        self.received = 0
        self.lock = threading.Lock()


@pytest.fixture(scope="module")
def link_proxy() -> ModuleType:
    return load_script("link_proxy")


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def receive(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


def test_forwards_both_ways_and_counts(link_proxy: ModuleType, echo: EchoServer) -> None:
    with link_proxy.LinkProxy(echo.server_address) as link, connect(link.port) as sock:
        payload = bytes(range(256)) * 1000
        sock.sendall(payload)
        assert receive(sock, len(payload)) == payload
        assert link.bytes_up == link.bytes_down == len(payload) == echo.received


def test_holds_the_rate_within_a_fifth(link_proxy: ModuleType, echo: EchoServer) -> None:
    rate, size = 400_000, 400_000
    with link_proxy.LinkProxy(echo.server_address, rate=rate) as link, connect(link.port) as sock:
        started = time.monotonic()
        sender = threading.Thread(target=sock.sendall, args=(b"x" * size,))
        sender.start()
        assert len(receive(sock, size)) == size
        elapsed = time.monotonic() - started
        sender.join()
    # Up and down each hold the rate; they overlap, so the echo takes about size / rate.
    assert size / rate * 0.8 <= elapsed <= size / rate * 1.2


def test_cut_ends_the_connection(link_proxy: ModuleType, echo: EchoServer) -> None:
    with link_proxy.LinkProxy(echo.server_address) as link, connect(link.port) as sock:
        sock.sendall(b"ping")
        assert receive(sock, 4) == b"ping"
        link.cut()
        assert ended(sock)


def test_cut_after_lets_exactly_that_many_bytes_through(link_proxy: ModuleType, echo: EchoServer) -> None:
    with link_proxy.LinkProxy(echo.server_address) as link, connect(link.port) as sock:
        sock.sendall(b"x" * 100)
        assert receive(sock, 100) == b"x" * 100
        link.cut_after(12_345)
        try:
            sock.sendall(b"y" * 200_000)
        except OSError:
            pass
        assert ended(sock)
        assert link.bytes_up == 100 + 12_345
        assert wait_for(lambda: echo.received == 100 + 12_345)


def test_refusing_closes_new_connections_and_lets_them_in_again(link_proxy: ModuleType, echo: EchoServer) -> None:
    with link_proxy.LinkProxy(echo.server_address) as link:
        link.refusing = True
        with connect(link.port) as sock:
            assert ended(sock)
        link.refusing = False
        with connect(link.port) as sock:
            sock.sendall(b"back")
            assert receive(sock, 4) == b"back"


def test_close_ends_open_connections(link_proxy: ModuleType, echo: EchoServer) -> None:
    link = link_proxy.LinkProxy(echo.server_address)
    with connect(link.port) as sock:
        link.close()
        assert ended(sock)
    with pytest.raises(OSError):
        connect(link.port).close()


def ended(sock: socket.socket) -> bool:
    """Whether the peer closed or reset ``sock`` within 5 s: reads drain to EOF or fail."""
    sock.settimeout(5)
    try:
        while sock.recv(1 << 16):
            pass
    except TimeoutError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        pass
    return True
