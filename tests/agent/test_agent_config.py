from __future__ import annotations

import json

import pytest

from edgekit.agent.config import load_release, load_site_config
from edgekit.agent.errors import AgentError
from edgekit.agent.preprocess import PreprocessSpec


def edit_json(path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return path


def config_error(load, path):
    with pytest.raises(AgentError) as caught:
        load(path)
    assert caught.value.kind == "config"
    return caught.value.message


def test_site_config_loads_into_typed_fields(make_site_config, make_video, release_dir):
    video = make_video()
    site = load_site_config(str(make_site_config(video, loop=True)))
    assert site.release_dir == str(release_dir)
    assert site.source.uri == video.as_uri()
    assert (site.source.loop, site.source.realtime) == (True, True)
    assert site.results.max_bytes == 1 << 20
    assert site.results.backups == 2
    assert site.topk == 3


def test_loop_and_realtime_default_to_off(make_site_config, make_video):
    path = make_site_config(make_video())
    edit_json(path, lambda data: data.update(source={"uri": data["source"]["uri"]}))
    site = load_site_config(str(path))
    assert (site.source.loop, site.source.realtime) == (False, False)


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda d: d.pop("topk"), "'topk' is missing"),
        (lambda d: d.update(topk=0), "'topk' must be at least 1"),
        (lambda d: d.update(topk=True), "'topk' must be an integer"),
        (lambda d: d["results"].pop("max_bytes"), "'results.max_bytes' is missing"),
        (lambda d: d["results"].update(backups="2"), "'results.backups' must be an integer"),
        (lambda d: d["source"].update(loop="yes"), "'source.loop' must be true or false"),
        (lambda d: d["source"].pop("uri"), "'source.uri' is missing"),
        (lambda d: d.update(source="file:///x.avi"), "'source' must be an object"),
    ],
)
def test_site_config_errors_name_file_and_key(make_site_config, make_video, edit, key):
    path = edit_json(make_site_config(make_video()), edit)
    message = config_error(load_site_config, str(path))
    assert str(path) in message
    assert key in message


def test_missing_and_malformed_site_config(tmp_path):
    assert "does not exist" in config_error(load_site_config, str(tmp_path / "camera.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "not valid JSON" in config_error(load_site_config, str(bad))
    bad.write_text("[1, 2]")
    assert "JSON object" in config_error(load_site_config, str(bad))


def test_release_loads_with_model_relative_to_the_release(release_dir):
    release = load_release(str(release_dir))
    assert release.release == "r-test"
    assert release.backend == "onnxruntime"
    assert release.model_path == str(release_dir / "model.int8.onnx")
    assert release.precision == "int8"
    assert release.task == "classify"
    assert release.labels[:2] == ["c0", "c1"]
    assert isinstance(release.preprocess, PreprocessSpec)
    assert release.preprocess.input_name == "image"


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda d: d.pop("release"), "'release' is missing"),
        (lambda d: d.update(precision="int4"), "'precision' must be one of int8, fp16, fp32"),
        (lambda d: d.update(task="obb"), "'task' must be one of classify, detect, pose, segment, raw"),
        (lambda d: d.update(task="detect"), "'detect' is missing"),
        (lambda d: d.update(task="pose", detect={"head": "yolov8"}), "a yolov8 head and its kpt_shape"),
        (lambda d: d.update(task="pose", detect={"head": "yolov8", "kpt_shape": [17, 4]}), "'detect.kpt_shape' must"),
        (lambda d: d.update(task="segment", detect={"head": "yolov5", "masks": 32}), "a yolov8 head and its masks"),
        (lambda d: d.update(labels=[1, 2]), "'labels' must hold only strings"),
        (lambda d: d["preprocess"].update(layout="CHW"), "'preprocess' is invalid"),
        (lambda d: d["preprocess"].update(colour="rgb"), "'preprocess' is invalid"),
    ],
)
def test_release_errors_name_file_and_key(release_dir, edit, key):
    path = edit_json(release_dir / "release.json", edit)
    message = config_error(load_release, str(release_dir))
    assert str(path) in message
    assert key in message


def test_a_missing_release_names_release_json(tmp_path):
    assert str(tmp_path / "release.json") in config_error(load_release, str(tmp_path))


def test_camera_outputs_metrics_and_samples_load_with_their_defaults(make_site_config, make_video):
    path = make_site_config(make_video())
    edit_json(path, lambda d: [d.pop("metrics"), d.pop("samples")])
    site = load_site_config(str(path))
    assert (site.source.drop, site.source.read_timeout_s, site.source.codec) == (None, 5.0, "h264")
    assert site.camera.rtsp_decode == "software" and site.camera.width == 1280
    assert (site.http, site.mqtt) == (None, None)
    assert site.metrics.port == 9464
    assert (site.samples.dir, site.samples.every_s, site.samples.keep) == ("/var/lib/edgekit/samples", 10.0, 200)


def test_every_section_can_be_set_or_switched_off(make_site_config, make_video):
    path = make_site_config(
        make_video(),
        camera={"rtsp_decode": "hardware", "rtsp_decoder": "nvv4l2decoder", "width": 640, "height": 480, "fps": 15},
        http={"url": "https://h/x", "timeout_s": 2},
        mqtt={"host": "b", "port": 8883, "topic": "t/1", "keepalive_s": 10},
        metrics=None,
        samples=None,
    )
    edit_json(path, lambda d: d["source"].update(drop="every", read_timeout_s=1.5, codec="h265"))
    site = load_site_config(str(path))
    assert (site.source.drop, site.source.read_timeout_s, site.source.codec) == ("every", 1.5, "h265")
    assert (site.camera.rtsp_decode, site.camera.width, site.camera.fps) == ("hardware", 640, 15)
    assert (site.http.url, site.http.timeout_s, site.http.queue) == ("https://h/x", 2.0, 256)
    assert (site.mqtt.host, site.mqtt.port, site.mqtt.topic, site.mqtt.keepalive_s) == ("b", 8883, "t/1", 10)
    assert (site.metrics, site.samples) == (None, None)


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda d: d["source"].update(drop="oldest"), "'source.drop' must be one of latest, every"),
        (lambda d: d["source"].update(read_timeout_s=0), "'source.read_timeout_s' must be at least 0.1"),
        (lambda d: d["source"].update(read_timeout_s="5"), "'source.read_timeout_s' must be a number"),
        (lambda d: d.update(camera={"rtsp_decode": "gpu"}), "'camera.rtsp_decode' must be one of hardware"),
        (lambda d: d.update(http={"url": "ftp://x"}), "'http.url' must be an http:// or https:// URL"),
        (lambda d: d.update(mqtt={"port": 1883}), "'mqtt.host' is missing"),
        (lambda d: d.update(metrics={"port": 0}), "'metrics.port' must be between 1 and 65535"),
        (lambda d: d.update(samples={"keep": 0}), "'samples.keep' must be at least 1"),
    ],
)
def test_new_section_errors_name_file_and_key(make_site_config, make_video, edit, key):
    path = edit_json(make_site_config(make_video()), edit)
    message = config_error(load_site_config, str(path))
    assert str(path) in message
    assert key in message


def test_a_detection_release_reads_its_head_and_thresholds(release_dir):
    edit_json(
        release_dir / "release.json",
        lambda d: d.update(task="detect", detect={"head": "yolov5", "conf": 0.4, "max_det": 5}),
    )
    release = load_release(str(release_dir))
    assert (release.task, release.detect.head, release.detect.conf, release.detect.iou) == (
        "detect",
        "yolov5",
        0.4,
        0.45,
    )
    assert release.detect.max_det == 5
    edit_json(release_dir / "release.json", lambda d: d["detect"].update(iou=1.5))
    assert "'detect.iou' must be between 0.0 and 1.0" in config_error(load_release, str(release_dir))


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda d: d.update(metrics={"port": 70000}), "'metrics.port' must be between 1 and 65535"),
        (lambda d: d.update(mqtt={"host": "b", "port": 70000}), "'mqtt.port' must be between 1 and 65535"),
        (lambda d: d["source"].update(read_timeout_s=float("nan")), "'source.read_timeout_s' must be a finite"),
        (lambda d: d["source"].update(read_timeout_s=float("inf")), "'source.read_timeout_s' must be a finite"),
    ],
)
def test_ports_and_numbers_are_bounded(make_site_config, make_video, edit, key):
    path = edit_json(make_site_config(make_video()), edit)
    assert key in config_error(load_site_config, str(path))


@pytest.mark.parametrize(
    ("section", "key"),
    [(None, "relase_dir"), ("source", "read_timeout"), ("results", "max_byte"), ("camera", "heigth")],
)
def test_a_misspelt_key_is_refused_by_name_not_taken_as_a_default(tmp_path, section, key):
    config = {
        "release_dir": "/r",
        "source": {"uri": "rtsp://cam/stream"},
        "results": {"path": "/tmp/r.jsonl", "max_bytes": 1, "backups": 0},
        "topk": 1,
        "camera": {"width": 640},
    }
    (config if section is None else config[section])[key] = 1
    path = tmp_path / "camera.json"
    path.write_text(json.dumps(config))
    with pytest.raises(AgentError) as info:
        load_site_config(str(path))
    where = key if section is None else f"{section}.{key}"
    assert f"key {where!r} is not a known key (known: " in info.value.message
