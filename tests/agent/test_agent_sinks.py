"""The result sinks against real peers on 127.0.0.1: a mosquitto broker and an HTTP server."""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from sshd import free_port

from edgekit.agent.config import (
    CameraConfig,
    HttpSinkConfig,
    MqttSinkConfig,
    ResultsConfig,
    SiteConfig,
    SourceConfig,
)
from edgekit.agent.errors import AgentError
from edgekit.agent.redact import mask_url
from edgekit.agent.sinks import HttpSink, MqttSink, open_sinks, remaining_length

SEARCH_PATH = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin"
MOSQUITTO = shutil.which("mosquitto", path=SEARCH_PATH)
MOSQUITTO_SUB = shutil.which("mosquitto_sub", path=SEARCH_PATH)
# mosquitto_sub block-buffers its debug lines into a pipe; line buffering shows the SUBACK live.
STDBUF = shutil.which("stdbuf")
TOPIC = "edgekit/test"


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def record(frame: int, pad: int = 0) -> str:
    return json.dumps({"frame": frame, "top": [{"label": "c1", "score": 0.9}], "pad": "x" * pad}, separators=(",", ":"))


def lines_with(logs: list[str], text: str) -> list[str]:
    return [line for line in logs if text in line]


# MQTT


class Mosquitto:
    """A real broker on 127.0.0.1:port, started and stopped by the test."""

    def __init__(self, directory: Path, port: int, anonymous: bool = True) -> None:
        self.port = port
        self.config = directory / f"mosquitto-{port}.conf"
        self.config.write_text(
            f"listener {port} 127.0.0.1\n"
            f"allow_anonymous {'true' if anonymous else 'false'}\n"
            "persistence false\n"
            # stderr is unbuffered, so the test can read what the broker saw as it happens.
            "log_dest stderr\n"
            "log_type all\n"
        )
        self.stderr = directory / f"mosquitto-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert MOSQUITTO is not None
        with open(self.stderr, "ab") as stderr:
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=stderr
            )
        deadline = time.monotonic() + 5.0
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"mosquitto exited with {self.process.returncode}: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"mosquitto did not listen on {self.port}: {self.log()}")
                time.sleep(0.02)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def subscribe(self, count: int, topic: str = TOPIC) -> Subscription:
        return Subscription(self.port, topic, count)


class Subscription:
    """mosquitto_sub, started and subscribed before anything is published."""

    def __init__(self, port: int, topic: str, count: int) -> None:
        assert STDBUF is not None and MOSQUITTO_SUB is not None
        command = [STDBUF, "-oL", MOSQUITTO_SUB, "-d", "-h", "127.0.0.1", "-p", str(port), "-t", topic]
        self.process = subprocess.Popen(
            [*command, "-C", str(count), "-W", "10"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert self.process.stdout is not None
        seen = b""
        # Bounded: -W 10 ends mosquitto_sub, and with it this loop, if SUBACK never comes.
        for line in self.process.stdout:
            seen += line
            if b"SUBACK" in line:
                return
        self.process.wait(5)
        pytest.fail(f"mosquitto_sub never subscribed: {seen.decode(errors='replace')}")

    def payloads(self) -> list[bytes]:
        """The payloads of the ``count`` messages, exactly as the broker delivered them."""
        assert self.process.stdout is not None
        output = self.process.stdout.read()
        self.process.wait(5)
        payloads = []
        # -d prints a header per message naming its size; the payload follows, then a newline.
        for header in re.finditer(rb"received PUBLISH \([^\n]*\((\d+) bytes\)\)\n", output):
            size = int(header.group(1))
            payloads.append(output[header.end() : header.end() + size])
        return payloads

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def stopped_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker on a free port that the test starts itself."""
    # scripts/test installs them; a machine without them fails here rather than skipping.
    assert MOSQUITTO and MOSQUITTO_SUB and STDBUF, (
        "needs mosquitto, mosquitto_sub and stdbuf (scripts/test installs them)"
    )
    broker = Mosquitto(tmp_path, free_port())
    yield broker
    broker.stop()


@pytest.fixture
def broker(stopped_broker: Mosquitto) -> Mosquitto:
    stopped_broker.start()
    return stopped_broker


def mqtt_config(port: int, **overrides: Any) -> MqttSinkConfig:
    return MqttSinkConfig(host="127.0.0.1", port=port, topic=TOPIC, client_id="edgekit-test", **overrides)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_matches_the_mqtt_spec_table(value, encoded):
    assert remaining_length(value) == encoded


def test_remaining_length_refuses_what_mqtt_cannot_carry():
    with pytest.raises(ValueError):
        remaining_length(268_435_456)


def test_mqtt_sink_delivers_exact_payloads_of_every_length_class(broker):
    # One-, two- and three-byte remaining lengths.
    payloads = [record(1), record(2, pad=200), record(3, pad=20_000)]
    assert len(payloads[2]) > 16_383
    subscription = broker.subscribe(len(payloads))
    logs: list[str] = []
    sink = MqttSink(mqtt_config(broker.port), logs.append)
    try:
        for payload in payloads:
            sink.publish(payload)
        assert subscription.payloads() == [payload.encode() for payload in payloads]
    finally:
        subscription.kill()
        sink.close()
    assert sink.stats() == {"sent": 3, "dropped": 0, "errors": 0}
    assert logs == []
    # MQTT 3.1.1 (p2), clean session (c1), the configured keepalive; and a clean goodbye.
    assert "as edgekit-test (p2, c1, k30)" in broker.log()
    assert wait_for(lambda: "Received DISCONNECT from edgekit-test" in broker.log())


def test_mqtt_sink_connects_once_the_broker_comes_up(stopped_broker):
    logs: list[str] = []
    sink = MqttSink(mqtt_config(stopped_broker.port), logs.append)
    try:
        assert wait_for(lambda: lines_with(logs, "is down"))
        stopped_broker.start()
        subscription = stopped_broker.subscribe(2)
        sink.publish(record(1))
        sink.publish(record(2))
        assert subscription.payloads() == [record(1).encode(), record(2).encode()]
        assert wait_for(lambda: sink.stats()["sent"] == 2)
    finally:
        sink.close()
    down = lines_with(logs, "is down")
    assert len(down) == 1
    assert f"127.0.0.1:{stopped_broker.port}" in down[0]
    assert "Connection refused" in down[0]
    assert len(lines_with(logs, "back up")) == 1


def test_mqtt_sink_notices_a_restarted_broker_and_loses_nothing_queued(broker):
    logs: list[str] = []
    sink = MqttSink(mqtt_config(broker.port), logs.append)
    try:
        subscription = broker.subscribe(1)
        sink.publish(record(1))
        assert subscription.payloads() == [record(1).encode()]
        broker.stop()
        broker.start()
        subscription = broker.subscribe(2)
        sink.publish(record(2))
        sink.publish(record(3))
        assert subscription.payloads() == [record(2).encode(), record(3).encode()]
    finally:
        sink.close()
    assert len(lines_with(logs, "is down")) == 1
    assert len(lines_with(logs, "back up")) == 1
    stats = sink.stats()
    assert (stats["sent"], stats["dropped"]) == (3, 0)


def test_mqtt_sink_keeps_an_idle_link_open_with_pings(broker):
    logs: list[str] = []
    sink = MqttSink(mqtt_config(broker.port, keepalive_s=1), logs.append)
    try:
        # A second ping is only sent once the first was answered, and an unanswered one
        # would take the link down: two pings seen by the broker mean both sides work.
        assert wait_for(lambda: broker.log().count("Received PINGREQ from edgekit-test") >= 2, timeout_s=3.0)
        subscription = broker.subscribe(1)
        sink.publish(record(1))
        assert subscription.payloads() == [record(1).encode()]
    finally:
        sink.close()
    assert logs == []
    assert sink.stats() == {"sent": 1, "dropped": 0, "errors": 0}


def test_mqtt_refusal_is_one_clear_line(tmp_path):
    assert MOSQUITTO is not None
    broker = Mosquitto(tmp_path, free_port(), anonymous=False)
    broker.start()
    logs: list[str] = []
    sink = MqttSink(mqtt_config(broker.port), logs.append)
    try:
        assert wait_for(lambda: sink.stats()["errors"] >= 2)
    finally:
        sink.close()
        broker.stop()
    assert len(logs) == 1
    assert "the broker refused the connection: the client is not authorised" in logs[0]


def test_close_with_the_broker_away_returns_at_once_and_counts_the_records():
    logs: list[str] = []
    sink = MqttSink(mqtt_config(free_port()), logs.append)
    for frame in range(3):
        sink.publish(record(frame))
    started = time.monotonic()
    sink.close()
    assert time.monotonic() - started < 1.0
    assert sink.stats()["dropped"] == 3
    assert sink.stats()["sent"] == 0
    assert lines_with(logs, "closed with 3 records not sent")
    sink.publish(record(4))
    assert sink.stats()["dropped"] == 4


def test_mqtt_topic_with_a_wildcard_is_a_config_error():
    with pytest.raises(AgentError) as caught:
        MqttSink(mqtt_config(free_port())._replace(topic="edgekit/#"), print)
    assert caught.value.kind == "config"


# HTTP


class Request(NamedTuple):
    headers: dict[str, str]
    body: bytes
    client_port: int


class Endpoint:
    """What the test HTTP server received and how it answers."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.status = 200
        self.arrived = threading.Event()
        self.gate: threading.Event | None = None
        self.close_after_each = False
        self.url = ""


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # Keep-alive handler threads end when the sink closes; teardown need not wait for them.
    block_on_close = False


def serve(endpoint: Endpoint, port: int = 0) -> QuietServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {key.lower(): value for key, value in self.headers.items()}
            endpoint.requests.append(Request(headers, body, self.client_address[1]))
            endpoint.arrived.set()
            if endpoint.gate is not None:
                endpoint.gate.wait(10)
            self.send_response(endpoint.status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            if endpoint.close_after_each:
                # Closed without saying so, as servers do with idle keep-alive connections.
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = QuietServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/results"
    return server


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    endpoint = Endpoint()
    server = serve(endpoint)
    yield endpoint
    if endpoint.gate is not None:
        endpoint.gate.set()
    server.shutdown()
    server.server_close()


def test_http_sink_posts_exact_bodies_as_json_on_one_connection(endpoint):
    records = [record(frame) for frame in range(5)] + ['{"label":"café"}']
    logs: list[str] = []
    sink = HttpSink(HttpSinkConfig(url=endpoint.url), logs.append)
    for line in records:
        sink.publish(line)
    # close() flushes the queue.
    sink.close()
    assert [request.body for request in endpoint.requests] == [line.encode("utf-8") for line in records]
    assert {request.headers["content-type"] for request in endpoint.requests} == {"application/json"}
    assert len({request.client_port for request in endpoint.requests}) == 1
    assert "authorization" not in endpoint.requests[0].headers
    assert sink.stats() == {"sent": 6, "dropped": 0, "errors": 0}
    assert logs == []


def test_http_error_answers_are_counted_and_logged_once(endpoint):
    endpoint.status = 500
    logs: list[str] = []
    sink = HttpSink(HttpSinkConfig(url=endpoint.url), logs.append)
    try:
        for frame in range(3):
            sink.publish(record(frame))
        assert wait_for(lambda: sink.stats()["errors"] == 3)
        assert sink.stats()["sent"] == 0
        assert len(logs) == 1
        assert "answered 500" in logs[0]
        endpoint.status = 204
        sink.publish(record(3))
        assert wait_for(lambda: sink.stats()["sent"] == 1)
    finally:
        sink.close()
    # Refused records are not retried.
    assert len(endpoint.requests) == 4
    assert lines_with(logs, "accepts records again")


def test_full_queue_drops_and_counts_instead_of_blocking(endpoint):
    endpoint.gate = threading.Event()
    heard: list[tuple[str, int]] = []
    sink = HttpSink(HttpSinkConfig(url=endpoint.url, queue=2), print, lambda name, n: heard.append((name, n)))
    try:
        sink.publish(record(0))
        # The worker holds record 0 in a request the server does not answer yet.
        assert endpoint.arrived.wait(5)
        started = time.monotonic()
        for frame in range(1, 11):
            sink.publish(record(frame))
        assert time.monotonic() - started < 0.5
        assert sink.stats() == {"sent": 0, "dropped": 8, "errors": 0}
        # The service's metrics hear each drop as it happens.
        assert heard == [("sink_dropped", 1)] * 8
        endpoint.gate.set()
        assert wait_for(lambda: sink.stats()["sent"] == 3)
    finally:
        endpoint.gate.set()
        sink.close()
    assert [request.body for request in endpoint.requests] == [
        record(0).encode(),
        record(1).encode(),
        record(2).encode(),
    ]


def test_http_sink_retries_a_keep_alive_connection_the_server_closed(endpoint):
    endpoint.close_after_each = True
    logs: list[str] = []
    sink = HttpSink(HttpSinkConfig(url=endpoint.url), logs.append)
    try:
        for frame in range(4):
            sink.publish(record(frame))
            assert wait_for(lambda frame=frame: sink.stats()["sent"] == frame + 1)
    finally:
        sink.close()
    assert [request.body for request in endpoint.requests] == [record(frame).encode() for frame in range(4)]
    assert sink.stats()["errors"] == 0
    assert logs == []


def test_http_sink_delivers_once_the_server_comes_up():
    port = free_port()
    logs: list[str] = []
    sink = HttpSink(HttpSinkConfig(url=f"http://127.0.0.1:{port}/results"), logs.append)
    endpoint = Endpoint()
    server: QuietServer | None = None
    try:
        sink.publish(record(1))
        assert wait_for(lambda: lines_with(logs, "is down"))
        server = serve(endpoint, port)
        sink.publish(record(2))
        assert wait_for(lambda: sink.stats()["sent"] == 2)
    finally:
        sink.close()
        if server is not None:
            server.shutdown()
            server.server_close()
    assert [request.body for request in endpoint.requests] == [record(1).encode(), record(2).encode()]
    assert len(lines_with(logs, "is down")) == 1
    assert len(lines_with(logs, "back up")) == 1


def test_a_password_in_the_url_is_sent_as_basic_auth_and_never_logged(endpoint):
    secret = "p@ss-s3cret"
    url = endpoint.url.replace("http://", "http://camera:p%40ss-s3cret@")
    endpoint.status = 401
    logs: list[str] = []
    sink = HttpSink(HttpSinkConfig(url=url), logs.append)
    try:
        sink.publish(record(1))
        assert wait_for(lambda: sink.stats()["errors"] == 1)
    finally:
        sink.close()
    expected = base64.b64encode(f"camera:{secret}".encode()).decode()
    assert endpoint.requests[0].headers["authorization"] == f"Basic {expected}"

    # And while the server cannot be reached at all.
    dead = HttpSink(HttpSinkConfig(url=f"http://camera:p%40ss-s3cret@127.0.0.1:{free_port()}/r"), logs.append)
    try:
        dead.publish(record(2))
        assert wait_for(lambda: lines_with(logs, "is down"))
    finally:
        dead.close()
    assert len(logs) >= 3
    assert all("s3cret" not in line for line in logs), logs
    assert all("camera:***@" in line for line in logs), logs


def test_mask_url_hides_passwords_and_tokens():
    assert mask_url("https://u:pw@h:8443/p?token=abc&x=1") == "https://u:***@h:8443/p?token=***&x=1"
    assert mask_url("http://h/p") == "http://h/p"
    assert mask_url("http://user@h/p") == "http://user@h/p"


def test_open_sinks_returns_the_configured_sinks_in_order():
    site = SiteConfig(
        path="camera.json",
        release_dir="/opt/release",
        source=SourceConfig(uri="file:///clip.avi"),
        camera=CameraConfig(),
        results=ResultsConfig(path="results.jsonl", max_bytes=1, backups=0),
        topk=1,
    )
    assert open_sinks(site, print) == []
    http_config = HttpSinkConfig(url=f"http://127.0.0.1:{free_port()}/r")
    only_http = open_sinks(site._replace(http=http_config), print)
    both = open_sinks(site._replace(http=http_config, mqtt=mqtt_config(free_port())), print)
    only_mqtt = open_sinks(site._replace(mqtt=mqtt_config(free_port())), print)
    try:
        assert [type(sink) for sink in only_http] == [HttpSink]
        assert [sink.name for sink in both] == ["http", "mqtt"]
        assert [type(sink) for sink in both] == [HttpSink, MqttSink]
        assert [sink.name for sink in only_mqtt] == ["mqtt"]
    finally:
        for sink in only_http + both + only_mqtt:
            sink.close()
