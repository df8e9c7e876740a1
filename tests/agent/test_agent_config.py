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
        (lambda d: d.update(task="segment"), "'task' must be one of classify, detect, raw"),
        (lambda d: d.update(task="detect"), "'detect' is missing"),
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
