"""The engine cache: keyed by everything that changes the engine, written atomically."""

from __future__ import annotations

import json
import os

import pytest

from edgekit.agent.backends.tensorrt.cache import EngineCache, engine_key, load_or_build
from edgekit.agent.errors import AgentError
from edgekit.agent.files import read_or_none, write_atomically

BASE = {
    "onnx_sha256": "a" * 64,
    "calibration_sha256": "c" * 64,
    "precision": "int8",
    "tensorrt_version": "10.3.0.30",
    "compute_capability": "8.7",
    "l4t": "36.4.3",
    "options": {"workspace_mib": 1024, "dla_core": None, "int8": "calibrator", "batch": [1, 1, 8]},
}


def key(**changes):
    return engine_key(**dict(BASE, **changes))


@pytest.mark.parametrize(
    "change",
    [
        {"onnx_sha256": "b" * 64},
        {"calibration_sha256": "d" * 64},
        {"precision": "fp16"},
        {"tensorrt_version": "10.3.0.31"},
        {"compute_capability": "7.2"},
        {"l4t": "36.4.4"},
        {"options": dict(BASE["options"], workspace_mib=2048)},
        {"options": dict(BASE["options"], dla_core=0)},
        {"options": dict(BASE["options"], batch=[1, 4, 8])},
    ],
    ids=lambda change: next(iter(change)),
)
def test_every_input_changes_the_key(change):
    assert key(**change) != key()
    assert key() == key()


def test_calibration_data_does_not_matter_without_int8():
    assert key(precision="fp16") == key(precision="fp16", calibration_sha256="d" * 64)


def test_store_then_load(tmp_path):
    cache = EngineCache(str(tmp_path / "engines"))
    path = cache.store(key(), b"engine-bytes", {"tensorrt": "10.3.0.30"})
    assert read_or_none(path) == b"engine-bytes"
    assert cache.load(key()) == b"engine-bytes"
    manifest = json.loads(open(cache.paths(key())["manifest"]).read())
    assert manifest["key"] == key() and manifest["bytes"] == 12 and manifest["tensorrt"] == "10.3.0.30"
    assert cache.load(key(l4t="36.4.4")) is None
    assert not [name for name in os.listdir(tmp_path / "engines") if ".tmp-" in name]


def test_a_torn_or_foreign_engine_is_not_loaded(tmp_path):
    cache = EngineCache(str(tmp_path))
    cache.store(key(), b"engine-bytes", {})
    paths = cache.paths(key())
    with open(paths["engine"], "wb") as handle:
        handle.write(b"engine-by")  # a write cut short by a power loss
    assert cache.load(key()) is None
    os.remove(paths["manifest"])
    assert cache.load(key()) is None
    with open(paths["manifest"], "w") as handle:
        handle.write("{not json")
    assert cache.load(key()) is None


def test_load_or_build_uses_the_cache_and_rebuilds_what_does_not_deserialize(tmp_path):
    cache = EngineCache(str(tmp_path))
    built = []

    def build():
        built.append(1)
        return b"good-engine"

    def deserialize(data):
        return {"engine": data} if data == b"good-engine" else None

    logs = []
    assert load_or_build(cache, key(), build, deserialize, {}, logs.append) == {"engine": b"good-engine"}
    assert load_or_build(cache, key(), build, deserialize, {}, logs.append) == {"engine": b"good-engine"}
    assert len(built) == 1 and "engine cache hit" in logs[-1]
    # An engine TensorRT no longer accepts (e.g. after a JetPack update with the same key).
    cache.store(key(), b"stale-engine", {})
    assert load_or_build(cache, key(), build, deserialize, {}, logs.append) == {"engine": b"good-engine"}
    assert len(built) == 2 and any("did not deserialize" in line for line in logs)
    assert cache.load(key()) == b"good-engine"


def test_a_build_that_cannot_be_loaded_back_is_an_error(tmp_path):
    with pytest.raises(AgentError, match="cannot load back"):
        load_or_build(EngineCache(str(tmp_path)), key(), lambda: b"x", lambda data: None, {}, lambda line: None)


def test_write_atomically_replaces_whole_files(tmp_path):
    path = str(tmp_path / "deep" / "file.bin")
    write_atomically(path, b"one")
    write_atomically(path, b"two")
    assert read_or_none(path) == b"two"
    assert read_or_none(str(tmp_path / "missing")) is None
    write_atomically(path, b"")
    assert read_or_none(path) is None  # an empty cache file means no cache
