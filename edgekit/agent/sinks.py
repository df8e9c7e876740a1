"""Optional outputs that forward each result record to an HTTP endpoint or an MQTT broker.

The frame loop must never wait on the network: ``publish`` only puts the record on a bounded
queue, and one daemon thread per sink does the sending. When the peer is away the queue fills
and further records are dropped and counted, so a dead link costs memory of at most
``queue`` records and no frame time.

MQTT is spoken here directly (3.1.1, QoS 0, publish only) because JetPack ships no paho and
the agent installs nothing beyond numpy and cv2.
"""

from __future__ import annotations

import base64
import http.client
import queue
import selectors
import socket
import ssl
import struct
import threading
import time
from typing import Callable, Protocol
from urllib.parse import unquote, urlsplit

from .config import HttpSinkConfig, MqttSinkConfig, SiteConfig
from .errors import AgentError
from .redact import mask_url

Log = Callable[[str], None]
# The service's metrics counter: ("sink_dropped" or "sink_errors", how many).
Count = Callable[[str, int], None]

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
CLOSE_FLUSH_S = 2.0
# A record whose sending breaks the link this many times is given up, so that one record the
# peer chokes on cannot hold back all the others for ever.
SEND_TRIES = 3
MQTT_TIMEOUT_S = 10.0
MQTT_MAX_REMAINING = 268_435_455
CONNACK_REFUSALS = {
    1: "it does not speak MQTT 3.1.1",
    2: "it rejected the client id",
    3: "the MQTT service is unavailable",
    4: "the user name or password is wrong",
    5: "the client is not authorised",
}


class Sink(Protocol):
    name: str

    def publish(self, line: str) -> None:
        """Queue one record; never blocks: when the queue is full the record is dropped and counted."""
        ...

    def stats(self) -> dict[str, int]:
        """{"sent": n, "dropped": n, "errors": n} so far."""
        ...

    def close(self) -> None:
        """Stop the worker after trying, for about CLOSE_FLUSH_S at most, to send what is queued."""
        ...


class LinkError(Exception):
    """The link to the peer is unusable; the message is a sentence fragment for the log."""


# What a broken or unreachable peer raises; anything else is a bug and should surface.
_LINK_FAILURES = (OSError, http.client.HTTPException, LinkError)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class _QueuedSink:
    """The queue, the worker thread, the counters and the link bookkeeping both sinks share.

    Subclasses provide ``_connect``, ``_send``, ``_disconnect`` and, where the protocol needs
    traffic while idle, ``_idle`` and ``_idle_in``.
    """

    name = ""
    # Connect without waiting for a record: a broker session is worth keeping open, an HTTP
    # connection is not worth opening before there is something to post.
    eager = False

    def __init__(self, size: int, where: str, log: Log, count: Count | None) -> None:
        self._where = where
        self._report = count
        self._log = log
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=size)
        self._lock = threading.Lock()
        self._counts = {"sent": 0, "dropped": 0, "errors": 0}
        self._closing = threading.Event()
        self._deadline = 0.0
        self._connected = False
        # None until the first attempt, so that a peer that is down at start is logged once too.
        self._up: bool | None = None
        self._dropped_when_down = 0
        self._backoff = BACKOFF_START_S
        self._retry_at = 0.0
        self._thread = threading.Thread(target=self._run, name=f"edgekit-{self.name}-sink", daemon=True)

    def _start(self) -> None:
        self._thread.start()

    def publish(self, line: str) -> None:
        if self._closing.is_set():
            self._count("dropped")
            return
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self._count("dropped")

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def close(self) -> None:
        if self._closing.is_set():
            return
        self._deadline = time.monotonic() + CLOSE_FLUSH_S
        self._closing.set()
        try:
            # Wakes a worker blocked on an empty queue; a full queue means it is not blocked there.
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(CLOSE_FLUSH_S + 0.2)
        if self._thread.is_alive():
            # Stuck in a send or connect with a long timeout: cut the socket so it returns now.
            self._abort()
            self._thread.join(0.5)

    # The worker thread.

    def _run(self) -> None:
        try:
            self._work()
        except Exception as exc:
            # A dead worker must say why, or its records would vanish without a word.
            self._log(f"{self.name} sink: stopped by an unexpected error: {exc!r}; its records are dropped.")

    def _work(self) -> None:
        line: str | None = None
        failures = 0
        while True:
            closing = self._closing.is_set()
            if closing and time.monotonic() >= self._deadline:
                break
            if line is None:
                line = self._take(0.0 if closing else self._wait_time())
                failures = 0
                if line is None:
                    if closing:
                        break
                    self._tend()
                    continue
            if not self._connected and not self._reconnect(closing):
                if closing:
                    break
                continue
            try:
                accepted = self._send(line)
            except _LINK_FAILURES as exc:
                self._link_failed(exc)
                failures += 1
                if failures >= SEND_TRIES:
                    self._count("dropped")
                    line = None
                continue
            self._mark_up()
            self._count("sent" if accepted else "errors")
            line = None
        self._finish(line)

    def _take(self, timeout: float | None) -> str | None:
        try:
            if timeout is None:
                return self._queue.get()
            return self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def _wait_time(self) -> float | None:
        if self._connected:
            return self._idle_in()
        if self.eager:
            return self._retry_at - time.monotonic()
        return None

    def _tend(self) -> None:
        """Keep the link alive while there is nothing to send."""
        if self._connected:
            try:
                self._idle()
            except _LINK_FAILURES as exc:
                self._link_failed(exc)
        elif self.eager and time.monotonic() >= self._retry_at:
            self._reconnect(False)

    def _reconnect(self, closing: bool) -> bool:
        wait = self._retry_at - time.monotonic()
        if wait > 0 and not closing:
            # Woken early by close(), which then gets one immediate attempt to flush.
            self._closing.wait(wait)
            return False
        try:
            proven = self._connect()
        except _LINK_FAILURES as exc:
            self._link_failed(exc)
            return False
        self._connected = True
        if proven:
            self._mark_up()
        return True

    def _mark_up(self) -> None:
        """The peer answered: reset the backoff and say so if it had been down."""
        if self._up is True:
            return
        self._backoff = BACKOFF_START_S
        if self._up is False:
            lost = self.stats()["dropped"] - self._dropped_when_down
            self._log(f"{self.name} sink: link to {self._where} is back up ({lost} records dropped while down).")
        self._up = True

    def _link_failed(self, exc: BaseException) -> None:
        self._count("errors")
        self._disconnect()
        self._connected = False
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2.0, BACKOFF_MAX_S)
        if self._up is not False:
            self._up = False
            self._dropped_when_down = self.stats()["dropped"]
            self._log(
                f"{self.name} sink: link to {self._where} is down ({_describe(exc)}); "
                "retrying with backoff, records queue and then drop meanwhile."
            )

    def _finish(self, pending: str | None) -> None:
        if self._connected:
            self._disconnect(graceful=True)
            self._connected = False
        left = 0 if pending is None else 1
        while True:
            try:
                if self._queue.get_nowait() is not None:
                    left += 1
            except queue.Empty:
                break
        if left:
            self._count("dropped", left)
            self._log(f"{self.name} sink: closed with {left} records not sent to {self._where}.")

    def _count(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[key] += amount
        if self._report is not None and key != "sent":
            self._report(f"sink_{key}", amount)

    # What a protocol provides.

    def _connect(self) -> bool:
        """Open the link; True when that already proves the peer is there (a handshake)."""
        raise NotImplementedError

    def _send(self, line: str) -> bool:
        """Send one record; False when the peer answered but refused it."""
        raise NotImplementedError

    def _disconnect(self, graceful: bool = False) -> None:
        """Drop the link; never raises."""
        raise NotImplementedError

    def _abort(self) -> None:
        """Called from another thread to unblock a worker stuck in socket I/O."""

    def _idle(self) -> None:
        """Called when nothing was sent for ``_idle_in()`` seconds."""

    def _idle_in(self) -> float | None:
        return None


def _shutdown(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class HttpSink(_QueuedSink):
    """POSTs each record as a JSON body over one keep-alive connection."""

    name = "http"

    def __init__(self, config: HttpSinkConfig, log: Log, count: Count | None = None) -> None:
        parts = urlsplit(config.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AgentError("config", f"The http sink URL {mask_url(config.url)} is not an http(s):// URL.")
        try:
            port = parts.port
        except ValueError:
            raise AgentError("config", f"The http sink URL {mask_url(config.url)} has an invalid port.") from None
        super().__init__(config.queue, mask_url(config.url), log, count)
        self._timeout = config.timeout_s
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/json"}
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            token = base64.b64encode(credentials.encode("utf-8")).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self._connection: http.client.HTTPConnection | None = None
        self._reused = False
        self._refused: int | None = None
        self._start()

    def _connect(self) -> bool:
        if self._https:
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=ssl.create_default_context()
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        connection.connect()
        self._connection = connection
        self._reused = False
        # Accepting TCP proves little (a proxy can do that); an HTTP answer does.
        return False

    def _send(self, line: str) -> bool:
        body = line.encode("utf-8")
        try:
            status, reason = self._post(body)
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            if not self._reused:
                raise
            # The server closed the idle keep-alive connection; the request never got there,
            # so one fresh connection is no duplicate and no reason to call the link down.
            self._disconnect()
            self._connect()
            status, reason = self._post(body)
        if 200 <= status < 300:
            if self._refused is not None:
                self._log(f"http sink: {self._where} accepts records again.")
                self._refused = None
            return True
        if status != self._refused:
            self._log(
                f"http sink: {self._where} answered {status} {reason}; "
                "records it refuses are dropped and counted as errors."
            )
            self._refused = status
        return False

    def _post(self, body: bytes) -> tuple[int, str]:
        connection = self._connection
        if connection is None:
            raise LinkError("not connected")
        connection.request("POST", self._path, body=body, headers=self._headers)
        response = connection.getresponse()
        # Read to the end, or the connection cannot carry the next request.
        response.read()
        self._reused = not response.will_close
        if response.will_close:
            # http.client reopens by itself; what was not reused cannot be stale.
            connection.close()
        return response.status, response.reason

    def _disconnect(self, graceful: bool = False) -> None:
        connection, self._connection = self._connection, None
        self._reused = False
        if connection is not None:
            connection.close()

    def _abort(self) -> None:
        connection = self._connection
        if connection is not None:
            _shutdown(connection.sock)


def remaining_length(value: int) -> bytes:
    """MQTT's variable-length integer: 7 bits a byte, least significant first, at most 4 bytes."""
    if not 0 <= value <= MQTT_MAX_REMAINING:
        raise ValueError(f"MQTT remaining length {value} is outside 0..{MQTT_MAX_REMAINING}")
    encoded = bytearray()
    while True:
        value, byte = divmod(value, 128)
        encoded.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(encoded)


def _mqtt_string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("!H", len(data)) + data


def split_packet(buffer: bytearray) -> tuple[int, bytes] | None:
    """Take one whole MQTT packet (first byte, body) off the front of ``buffer``, if there is one."""
    length = 0
    for index in range(1, 5):
        if index >= len(buffer):
            return None
        byte = buffer[index]
        length |= (byte & 0x7F) << (7 * (index - 1))
        if not byte & 0x80:
            end = index + 1 + length
            if len(buffer) < end:
                return None
            packet = (buffer[0], bytes(buffer[index + 1 : end]))
            del buffer[:end]
            return packet
    raise LinkError("the broker sent a malformed packet")


CONNACK = 0x20
PUBLISH_QOS0 = 0x30
PINGREQ = b"\xc0\x00"
PINGRESP = 0xD0
DISCONNECT = b"\xe0\x00"


class MqttSink(_QueuedSink):
    """Publishes each record at QoS 0 to one topic, as a minimal MQTT 3.1.1 client."""

    name = "mqtt"
    eager = True

    def __init__(self, config: MqttSinkConfig, log: Log, count: Count | None = None) -> None:
        if not config.topic or any(char in config.topic for char in "+#\0"):
            # The broker would drop the connection on every publish to such a topic.
            raise AgentError("config", f"The mqtt sink topic {config.topic!r} must be non-empty, without + # or NUL.")
        if not 0 <= config.keepalive_s <= 65535:
            raise AgentError("config", f"The mqtt sink keepalive_s {config.keepalive_s} must be 0..65535.")
        super().__init__(config.queue, f"{config.host}:{config.port}", log, count)
        self._host = config.host
        self._port = config.port
        self._keepalive = float(config.keepalive_s)
        self._topic = _mqtt_string(config.topic)
        connect_body = (
            _mqtt_string("MQTT")
            + bytes([4, 0x02])  # protocol level 4 (3.1.1), clean session: nothing to resume
            + struct.pack("!H", config.keepalive_s)
            + _mqtt_string(config.client_id)
        )
        self._connect_packet = b"\x10" + remaining_length(len(connect_body)) + connect_body
        self._sock: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._inbox = bytearray()
        self._last_sent = 0.0
        self._ping_sent: float | None = None
        self._oversize_logged = False
        self._start()

    def _connect(self) -> bool:
        sock = socket.create_connection((self._host, self._port), timeout=MQTT_TIMEOUT_S)
        try:
            # Records are small and each should leave at once, not wait for Nagle.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            self._inbox = bytearray()
            sock.sendall(self._connect_packet)
            kind, body = self._read_packet()
            if kind >> 4 != CONNACK >> 4 or len(body) != 2:
                raise LinkError(f"the broker answered CONNECT with packet type {kind >> 4}, not CONNACK")
            if body[1] != 0:
                reason = CONNACK_REFUSALS.get(body[1], f"return code {body[1]}")
                raise LinkError(f"the broker refused the connection: {reason}")
        except BaseException:
            self._sock = None
            sock.close()
            raise
        selector = selectors.DefaultSelector()
        selector.register(sock, selectors.EVENT_READ)
        self._selector = selector
        self._last_sent = time.monotonic()
        self._ping_sent = None
        return True

    def _read_packet(self) -> tuple[int, bytes]:
        sock = self._sock
        if sock is None:
            raise LinkError("not connected")
        while True:
            packet = split_packet(self._inbox)
            if packet is not None:
                return packet
            data = sock.recv(4096)
            if not data:
                raise LinkError("the broker closed the connection")
            self._inbox += data

    def _poll(self) -> None:
        """Read what the broker sent without blocking; a closed socket shows up here first."""
        sock, selector = self._sock, self._selector
        if sock is None or selector is None:
            raise LinkError("not connected")
        while selector.select(0):
            data = sock.recv(4096)
            if not data:
                raise LinkError("the broker closed the connection")
            self._inbox += data
        while True:
            packet = split_packet(self._inbox)
            if packet is None:
                break
            if packet[0] >> 4 == PINGRESP >> 4:
                self._ping_sent = None
        if self._ping_sent is not None and time.monotonic() - self._ping_sent > self._keepalive:
            raise LinkError(f"the broker did not answer a ping within {self._keepalive:g} s")

    def _write(self, data: bytes) -> None:
        sock = self._sock
        if sock is None:
            raise LinkError("not connected")
        sock.sendall(data)
        self._last_sent = time.monotonic()

    def _send(self, line: str) -> bool:
        # Before writing: QoS 0 has no acknowledgement, so a broker that went away would
        # otherwise swallow this record into a dead socket's buffer.
        self._poll()
        payload = line.encode("utf-8")
        size = len(self._topic) + len(payload)
        if size > MQTT_MAX_REMAINING:
            if not self._oversize_logged:
                self._log(
                    f"mqtt sink: a {len(payload)}-byte record is over MQTT's size limit; such records are dropped."
                )
                self._oversize_logged = True
            return False
        self._write(bytes([PUBLISH_QOS0]) + remaining_length(size) + self._topic + payload)
        return True

    def _idle(self) -> None:
        self._poll()
        if self._keepalive and self._ping_sent is None and time.monotonic() - self._last_sent >= self._keepalive / 2:
            self._write(PINGREQ)
            self._ping_sent = time.monotonic()

    def _idle_in(self) -> float | None:
        if not self._keepalive:
            return None
        now = time.monotonic()
        due = self._last_sent + self._keepalive / 2
        if due <= now and self._ping_sent is not None:
            # The next ping waits for the answer to this one; look again when that is overdue.
            due = self._ping_sent + self._keepalive
        # A hair late rather than early, so the wake-up finds the ping due instead of spinning.
        return max(0.0, due - now) + 0.01

    def _disconnect(self, graceful: bool = False) -> None:
        sock, self._sock = self._sock, None
        selector, self._selector = self._selector, None
        if selector is not None:
            selector.close()
        if sock is None:
            return
        if graceful:
            try:
                # Tells the broker this was a clean stop, not a lost device (no will, no timeout).
                sock.sendall(DISCONNECT)
            except OSError:
                pass
        sock.close()

    def _abort(self) -> None:
        _shutdown(self._sock)


def open_sinks(site: SiteConfig, log: Log, count: Count | None = None) -> list[Sink]:
    """The sinks the site config switches on, in the order http, mqtt; ``count`` hears each
    dropped record and each error as it happens."""
    sinks: list[Sink] = []
    try:
        if site.http is not None:
            sinks.append(HttpSink(site.http, log, count))
        if site.mqtt is not None:
            sinks.append(MqttSink(site.mqtt, log, count))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks
