from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request

import pytest

from edgekit.agent.errors import AgentError
from edgekit.agent.metrics import STAGES, Metrics, MetricsServer, parse_prometheus


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_percentiles_are_nearest_rank():
    metrics = Metrics()
    # 1..100 ms in shuffled order: nearest rank p50 is the 50th value, p99 the 99th.
    for ms in [*range(51, 101), *range(1, 51)]:
        metrics.observe("infer", ms / 1000)
    # Four samples: p50 is rank ceil(2.0) = 2, p99 rank ceil(3.96) = 4.
    for seconds in (0.004, 0.001, 0.003, 0.002):
        metrics.observe("grab", seconds)
    metrics.observe("pre", 0.007)
    latency = metrics.snapshot()["latency_ms"]
    assert latency["infer"] == {"p50": pytest.approx(50.0), "p99": pytest.approx(99.0)}
    assert latency["grab"] == {"p50": pytest.approx(2.0), "p99": pytest.approx(4.0)}
    assert latency["pre"] == {"p50": pytest.approx(7.0), "p99": pytest.approx(7.0)}
    assert latency["post"] == {"p50": None, "p99": None}
    assert set(latency) == set(STAGES)


def test_percentiles_cover_only_the_ring():
    metrics = Metrics(window=3)
    for seconds in (9.0, 9.0, 9.0, 0.001, 0.002, 0.003):
        metrics.observe("total", seconds)
    assert metrics.snapshot()["latency_ms"]["total"] == {"p50": pytest.approx(2.0), "p99": pytest.approx(3.0)}
    # The summary's sum and count still cover every sample.
    text = metrics.render()
    assert 'edgekit_stage_latency_seconds_count{stage="total"} 6\n' in text
    assert 'edgekit_stage_latency_seconds_sum{stage="total"} 27.006' in text


def test_unknown_stage_or_counter_is_refused():
    metrics = Metrics()
    with pytest.raises(ValueError, match="unknown stage"):
        metrics.observe("decode", 0.1)
    with pytest.raises(ValueError, match="unknown counter"):
        metrics.add("frames_lost")
    with pytest.raises(ValueError, match="cannot go down"):
        metrics.add("sink_errors", -1)


def test_fps_over_the_last_frames():
    clock = FakeClock()
    metrics = Metrics(fps_window=4, clock=clock)
    assert metrics.frame_done() is None
    assert metrics.snapshot()["fps"] is None
    clock.now += 0.5
    assert metrics.frame_done() == pytest.approx(2.0)
    for _ in range(3):
        clock.now += 0.1
        metrics.frame_done()
    # Stamps 100.0, 100.5, 100.6, 100.7, 100.8: four frames in 0.8 s.
    assert metrics.snapshot()["fps"] == pytest.approx(5.0)
    clock.now += 0.1
    # 100.0 left the window: four intervals from 100.5 to 100.9.
    assert metrics.frame_done() == pytest.approx(10.0)
    assert metrics.snapshot()["frames"] == 6


def test_fps_falls_while_nothing_is_published():
    clock = FakeClock()
    metrics = Metrics(fps_window=10, clock=clock)
    for _ in range(11):
        metrics.frame_done()
        clock.now += 0.1
    # 0.1 s after the last frame: on time, the window's own rate.
    assert metrics.snapshot()["fps"] == pytest.approx(10.0)
    clock.now += 3.9
    assert metrics.snapshot()["fps"] == pytest.approx(0.25)


def test_frames_published_in_one_tick_have_no_rate():
    metrics = Metrics(clock=FakeClock())
    metrics.frame_done()
    assert metrics.frame_done() is None


def test_render_is_prometheus_text():
    metrics = Metrics(clock=FakeClock())
    metrics.observe("grab", 0.25)
    metrics.add("frames_dropped", 3)
    metrics.set_info(release="abc", source='rtsp://cam/"a"\\b\nc')
    text = metrics.render()
    assert text.endswith("\n")
    assert "# TYPE edgekit_fps gauge\nedgekit_fps NaN\n" in text
    assert "# TYPE edgekit_frames_total counter\nedgekit_frames_total 0\n" in text
    assert "# TYPE edgekit_frames_dropped_total counter\nedgekit_frames_dropped_total 3\n" in text
    for name in ("source_reconnects", "sink_dropped", "sink_errors"):
        assert f"# TYPE edgekit_{name}_total counter\nedgekit_{name}_total 0\n" in text
    assert "# TYPE edgekit_stage_latency_seconds summary\n" in text
    assert 'edgekit_stage_latency_seconds{stage="grab",quantile="0.5"} 0.25\n' in text
    assert 'edgekit_stage_latency_seconds{stage="grab",quantile="0.99"} 0.25\n' in text
    assert 'edgekit_stage_latency_seconds{stage="post",quantile="0.5"} NaN\n' in text
    assert 'edgekit_info{release="abc",source="rtsp://cam/\\"a\\"\\\\b\\nc"} 1\n' in text
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            assert text.count(f"# HELP {line.split()[2]} ") == 1


def test_render_parse_round_trip():
    clock = FakeClock()
    metrics = Metrics(clock=clock)
    for index in range(40):
        for stage, base in zip(STAGES, (0.002, 0.003, 0.0117, 0.001, 0.0191), strict=True):
            metrics.observe(stage, base + index * 1e-4)
        metrics.frame_done()
        clock.now += 1 / 29.97
    metrics.add("frames_dropped", 5)
    metrics.add("source_reconnects")
    metrics.add("sink_dropped", 2)
    metrics.add("sink_errors", 7)
    metrics.set_info(release="abc", source='rtsp://h/x?a="1",b=\\2\n', task="detect", backend="onnxruntime")
    clock.now -= 1 / 29.97
    snapshot = metrics.snapshot()
    assert parse_prometheus(metrics.render()) == snapshot
    assert snapshot["frames"] == 40 and snapshot["fps"] == pytest.approx(29.97)
    assert snapshot["counters"] == {"frames_dropped": 5, "source_reconnects": 1, "sink_dropped": 2, "sink_errors": 7}


def test_round_trip_of_a_fresh_service():
    metrics = Metrics(clock=FakeClock())
    assert parse_prometheus(metrics.render()) == metrics.snapshot()


def test_parse_skips_foreign_metrics_and_refuses_garbage():
    text = (
        "# HELP go_goroutines x\ngo_goroutines 12\n"
        'edgekit_frames_total 3 1700000000000\nedgekit_info{ a = "1" , b="}" , } 1\n'
    )
    parsed = parse_prometheus(text)
    assert parsed["frames"] == 3 and parsed["info"] == {"a": "1", "b": "}"}
    with pytest.raises(ValueError, match="line 1"):
        parse_prometheus("<html>not metrics</html>")
    with pytest.raises(ValueError, match="label"):
        parse_prometheus('edgekit_info{release="abc} 1')


def test_concurrent_recording():
    metrics = Metrics()

    def work() -> None:
        for _ in range(2000):
            metrics.observe("infer", 0.001)
            metrics.add("sink_errors")
            metrics.frame_done()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snapshot = metrics.snapshot()
    assert snapshot["frames"] == 8000 and snapshot["counters"]["sink_errors"] == 8000
    assert 'edgekit_stage_latency_seconds_count{stage="infer"} 8000\n' in metrics.render()


@pytest.fixture
def server():
    metrics = Metrics()
    metrics.set_info(release="abc")
    metrics.frame_done()
    served = MetricsServer(metrics, 0)
    served.start()
    yield served
    served.close()


def test_server_serves_metrics(server, capfd):
    assert server.port > 0
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        body = answer.read().decode("utf-8")
    assert parse_prometheus(body)["frames"] == 1
    assert parse_prometheus(body)["info"] == {"release": "abc"}
    for path in ("/", "/metrics/x", "/favicon.ico"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5)
        assert refused.value.code == 404
        refused.value.close()
    # No access log on stderr: it would land in the journal once per scrape.
    assert capfd.readouterr().err == ""


def test_port_in_use_is_an_agent_error():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(AgentError) as failed:
            MetricsServer(Metrics(), port)
    assert failed.value.kind == "metrics"
    assert str(port) in failed.value.message
    assert "pick another metrics.port in /etc/edgekit/camera.json" in failed.value.message


def test_close_without_start():
    MetricsServer(Metrics(), 0).close()
