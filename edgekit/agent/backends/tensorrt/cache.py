"""The engine cache: one engine per everything that changes what TensorRT would build.

Peers key engines by TensorRT version alone and write them in place; a stale or half
written engine then crashes the service. Here the key covers the model, the calibration
data, the precision and builder options, TensorRT, the GPU and the L4T release; the engine
and its manifest are written atomically, and anything that does not match is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Callable

from ...errors import AgentError
from ...files import read_or_none, write_atomically

# 2: calibration reads every image (before, TensorRT read one image of each batch of 8).
# 3: a calibrated detector keeps its head decode at FP32 (builder.keep_head_precise).
# 4: a calibrated model keeps the layers --mixed-precision auto chose at FP16 (builder.keep_layers_half).
ENGINE_CACHE_VERSION = 4


def engine_key(
    onnx_sha256: str,
    calibration_sha256: str | None,
    precision: str,
    tensorrt_version: str,
    compute_capability: str,
    l4t: str | None,
    options: dict[str, Any],
) -> str:
    material = {
        "cache_version": ENGINE_CACHE_VERSION,
        "onnx_sha256": onnx_sha256,
        "calibration_sha256": calibration_sha256 if precision == "int8" else None,
        "precision": precision,
        "tensorrt": tensorrt_version,
        "compute_capability": compute_capability,
        "l4t": l4t,
        "options": options,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise AgentError("model", f"Cannot read {path}: {exc.strerror}; re-run edgekit provision.") from None
    return digest.hexdigest()


def calibration_id(onnx_sha256: str, calibration_sha256: str, tensorrt_version: str) -> str:
    """The name of a calibration cache: it is valid for one model, one data set and one TensorRT."""
    return hashlib.sha256((onnx_sha256 + calibration_sha256 + tensorrt_version).encode()).hexdigest()[:32]


def timing_cache_name(tensorrt_version: str, compute_capability: str) -> str:
    return f"{tensorrt_version}-sm{compute_capability}.cache"


class EngineCache:
    """``<dir>/<key>.engine`` with ``<key>.json`` naming what it was built from."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def paths(self, key: str) -> dict[str, str]:
        stem = os.path.join(self.directory, key[:32])
        return {"engine": stem + ".engine", "manifest": stem + ".json"}

    def load(self, key: str) -> bytes | None:
        """The cached engine for ``key``, or None if it is missing, partial or for another key."""
        paths = self.paths(key)
        manifest = read_or_none(paths["manifest"])
        engine = read_or_none(paths["engine"])
        if manifest is None or engine is None:
            return None
        try:
            recorded = json.loads(manifest.decode())
        except ValueError:
            return None
        if recorded.get("key") != key or recorded.get("sha256") != hashlib.sha256(engine).hexdigest():
            return None
        return engine

    def store(self, key: str, engine: bytes, details: dict[str, Any]) -> str:
        """Engine first, manifest last: a manifest always describes a complete engine."""
        paths = self.paths(key)
        write_atomically(paths["engine"], engine)
        manifest = dict(details, key=key, sha256=hashlib.sha256(engine).hexdigest(), bytes=len(engine))
        write_atomically(paths["manifest"], (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
        return paths["engine"]

    def discard(self, key: str) -> None:
        for path in self.paths(key).values():
            try:
                os.remove(path)
            except OSError:
                pass


def load_or_build(
    cache: EngineCache,
    key: str,
    build: Callable[[], bytes],
    deserialize: Callable[[bytes], Any],
    details: dict[str, Any],
    log: Callable[[str], None],
) -> Any:
    """A deserialized engine: the cached one if it loads, otherwise a fresh build."""
    cached = cache.load(key)
    if cached is not None:
        engine = deserialize(cached)
        if engine is not None:
            log(f"engine cache hit {key[:12]}")
            return engine
        log(f"cached engine {key[:12]} did not deserialize; rebuilding")
        cache.discard(key)
    data = build()
    cache.store(key, data, details)
    engine = deserialize(data)
    if engine is None:
        raise AgentError("build", "TensorRT built an engine it cannot load back; its log above says why.")
    return engine
