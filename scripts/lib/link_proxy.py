"""A TCP proxy on 127.0.0.1 that plays a field link: a rate limit, byte counters and cuts.

Tests and scripts/bench-transfer put it in front of a device's sshd::

    with LinkProxy(("127.0.0.1", twin.port), rate=8e6) as link:
        ... connect to 127.0.0.1:link.port ...
        link.cut_after(30 << 20)   # the link drops once 30 MiB more went up
        print(link.bytes_up, link.bytes_down)

Each direction shares one token bucket across all connections, as one radio link would.
Only the standard library: the tests load it as a plain file (tests/script_modules.py).
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

_RECV_BYTES = 1 << 16
# How far a bucket may fill while idle: small, so a rate holds over a short measurement too.
_BURST_S = 0.05


class _Bucket:
    """A token bucket; tokens may go into debt, and the taker sleeps the debt off outside the lock."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._burst = max(rate * _BURST_S, _RECV_BYTES)
        self._tokens = self._burst
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self, count: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            self._tokens -= count
            wait = -self._tokens / self._rate
        if wait > 0:
            time.sleep(wait)


class _Pair:
    """One proxied connection: the client's socket and ours to the target."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self._closed = threading.Lock()
        self._open = 2

    def cut(self) -> None:
        for sock in (self.client, self.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def pump_done(self) -> bool:
        """Whether both directions have ended (then the pair may be closed)."""
        with self._closed:
            self._open -= 1
            return self._open == 0


class LinkProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; ``rate`` is bytes/s each way (None: unlimited)."""

    def __init__(self, target: tuple[str, int], rate: float | None = None) -> None:
        self.target = target
        self.bytes_up = 0
        self.bytes_down = 0
        # While True, new connections are closed as soon as they are accepted: a device that is off.
        self.refusing = False
        self._up = _Bucket(rate) if rate else None
        self._down = _Bucket(rate) if rate else None
        self._lock = threading.Lock()
        self._pairs: set[_Pair] = set()
        self._cut_at: int | None = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._closing = False
        self._acceptor = threading.Thread(target=self._accept, name="link-proxy-accept", daemon=True)
        self._acceptor.start()

    def __enter__(self) -> LinkProxy:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def cut(self) -> None:
        """Drop every open connection now, as a link that goes down."""
        with self._lock:
            pairs, self._pairs = self._pairs, set()
            self._cut_at = None
        for pair in pairs:
            pair.cut()

    def cut_after(self, up_bytes: int) -> None:
        """Cut once ``up_bytes`` more have gone up; exactly that many reach the target."""
        with self._lock:
            self._cut_at = self.bytes_up + up_bytes
        if up_bytes <= 0:
            self.cut()

    def close(self) -> None:
        self._closing = True
        # shutdown wakes the accept() that close() alone would leave blocked.
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self._acceptor.join(timeout=5)
        self.cut()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            pair = _Pair(client, server)
            with self._lock:
                self._pairs.add(pair)
            for up in (True, False):
                threading.Thread(target=self._pump, args=(pair, up), name="link-proxy-pump", daemon=True).start()

    def _pump(self, pair: _Pair, up: bool) -> None:
        source, sink = (pair.client, pair.server) if up else (pair.server, pair.client)
        bucket = self._up if up else self._down
        try:
            while chunk := source.recv(_RECV_BYTES):
                if bucket is not None:
                    bucket.take(len(chunk))
                if not self._forward(pair, sink, chunk, up):
                    return
            # One side finished sending: pass the half-close on, the other way may still flow.
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            if pair.pump_done():
                with self._lock:
                    self._pairs.discard(pair)
                pair.cut()

    def _forward(self, pair: _Pair, sink: socket.socket, chunk: bytes, up: bool) -> bool:
        """Send ``chunk`` on and count it; False when a pending cut fell inside it (and was made)."""
        with self._lock:
            if not up:
                self.bytes_down += len(chunk)
                cut = False
            else:
                allowed = len(chunk) if self._cut_at is None else max(0, self._cut_at - self.bytes_up)
                cut = allowed <= len(chunk) and self._cut_at is not None
                chunk = chunk[:allowed]
                self.bytes_up += len(chunk)
        # Counted before sent: a reader of the counters never sees the target ahead of them.
        sink.sendall(chunk)
        if cut:
            self.cut()
        return not cut
