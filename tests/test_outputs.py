from __future__ import annotations

import json

import pytest

from edgekit.agent.config import load_site_config
from edgekit.errors import UsageError
from edgekit.outputs import outputs
from edgekit.profiles import load_profile
from edgekit.provision import site_config
from edgekit.settings import merge_settings
from edgekit.source import SourceSpec


def test_sinks_become_camera_json_sections_the_agent_reads(tmp_path):
    sections = outputs("http://192.0.2.5:8080/results", "mqtt://broker.local:8883/plant/line1")
    assert sections == {
        "http": {"url": "http://192.0.2.5:8080/results"},
        "mqtt": {"host": "broker.local", "port": 8883, "topic": "plant/line1"},
    }
    settings = merge_settings(load_profile("twin"))
    path = tmp_path / "camera.json"
    path.write_text(json.dumps(site_config(SourceSpec("rtsp://cam/1"), settings, sections)))
    site = load_site_config(str(path))
    assert site.http.url == "http://192.0.2.5:8080/results"
    assert (site.mqtt.host, site.mqtt.port, site.mqtt.topic) == ("broker.local", 8883, "plant/line1")
    assert site.metrics.port == 9464 and site.samples.dir == "/var/lib/edgekit/samples"
    assert site.camera.rtsp_decode == settings.camera.rtsp_decode


def test_a_metrics_port_is_passed_on_and_checked():
    assert outputs(None, None, 9999)["metrics"] == {"port": 9999}
    assert "metrics" not in outputs(None, None)
    with pytest.raises(UsageError, match="--metrics-port 70000 is not a TCP port"):
        outputs(None, None, 70000)


def test_no_sinks_switch_both_off():
    assert outputs(None, None) == {"http": None, "mqtt": None}
    assert outputs(None, "mqtt://b/t")["mqtt"]["port"] == 1883


@pytest.mark.parametrize(
    ("http", "mqtt", "words"),
    [
        ("ftp://x/y", None, "not an http:// or https:// URL"),
        (None, "tcp://b/t", "not an mqtt:// URL"),
        (None, "mqtt://b", "names no topic"),
        (None, "mqtt://b/plant/#", "names no topic"),
        (None, "mqtt://b:99999/t", "invalid port"),
    ],
)
def test_malformed_sinks_are_refused_with_the_form_to_use(http, mqtt, words):
    with pytest.raises(UsageError, match=words):
        outputs(http, mqtt)
