"""edgekit.audit.engines: serialized TensorRT engines found by content, on a corpus built here."""

from __future__ import annotations

import base64
import io
import json
import pickle
import random
import struct
import zipfile
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgekit.audit import engines
from edgekit.audit.findings import Finding
from edgekit.audit.tree import Entry, entry_of_bytes, walk_directory

PAYLOAD = random.Random(16).randbytes(4096)


def plan(version: tuple[int, int, int, int] = (10, 3, 0, 26)) -> bytes:
    """A TensorRT 9+ header as trtexec reads it: magic, serialization version 0, version at 24..27."""
    return b"ftrt" + struct.pack("<I", 0) + bytes(16) + bytes(version) + PAYLOAD


def trt8_plan() -> bytes:
    # 8.x: a non-zero serialization version (232 for 8.5) and major/minor/patch at 24/25/26.
    return b"ftrt" + struct.pack("<I", 232) + bytes(16) + bytes((8, 5, 1, 0)) + PAYLOAD


def findings(path: str, data: bytes) -> list[Finding]:
    return list(engines.check(entry_of_bytes(path, data)))


def only(path: str, data: bytes) -> Finding:
    found = findings(path, data)
    assert len(found) == 1, found
    return found[0]


def onnx_model(nodes: list[onnx.NodeProto], opsets: list[onnx.OperatorSetIdProto]) -> bytes:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def epcontext_model(embed_mode: int, context: bytes) -> bytes:
    node = helper.make_node(
        "EPContext",
        ["x"],
        ["y"],
        name="TRTKernel_graph_main_0",
        domain="com.microsoft",
        embed_mode=embed_mode,
        ep_cache_context=context,
        source="TensorrtExecutionProvider",
    )
    return onnx_model([node], [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])


def test_raw_plan_is_found_whatever_its_name() -> None:
    found = only("models/weights.bin", plan())
    assert found.path == "models/weights.bin"
    assert found.rule == "engine/plan"
    assert "a serialized TensorRT 10.3.0.26 engine (plan)" in found.reason
    assert "redistribute" in found.reason


def test_trt8_header_version_is_unknown_but_read_under_the_8x_layout() -> None:
    found = only("yolo.trt", trt8_plan())
    assert found.rule == "engine/plan"
    assert "unknown header version" in found.reason
    assert "8.5.1 under the TensorRT 8.x layout" in found.reason


def test_plan_with_an_unreadable_version_is_still_a_plan() -> None:
    found = only("x.plan", plan((0, 0, 0, 0)))
    assert found.rule == "engine/plan"
    assert "unreadable version" in found.reason


def test_ultralytics_engine_names_task_imgsz_and_version() -> None:
    meta = json.dumps({"stride": 32, "task": "detect", "batch": 1, "imgsz": [640, 640], "names": {"0": "person"}})
    data = len(meta).to_bytes(4, "little", signed=True) + meta.encode() + plan((10, 7, 0, 23))
    found = only("best.engine", data)
    assert found.rule == "engine/ultralytics"
    assert 'task "detect"' in found.reason
    assert "imgsz [640, 640]" in found.reason
    assert "TensorRT 10.7.0.23 engine" in found.reason


def test_plan_behind_an_arbitrary_prefix_is_a_weaker_finding() -> None:
    found = only("model.bin", b"MYHEADER" + bytes(92) + plan())
    assert found.rule == "engine/prefixed"
    assert "100-byte prefix" in found.reason
    assert "weaker" in found.reason
    assert "TensorRT 10.3.0.26" in found.reason


@pytest.mark.parametrize("alignment", [0, 1, 2])
def test_base64_plan_inside_json_at_each_alignment(alignment: int) -> None:
    # The leading bytes shift the magic inside the base64 groups; the filler puts the hit in the second chunk.
    encoded = base64.b64encode(b"\x01" * alignment + plan()).decode()
    document = json.dumps({"notes": "x" * (engines.SCAN_CHUNK + 17), "engine": encoded})
    found = only("config/state.json", document.encode())
    assert found.rule == "engine/base64"
    assert "base64-encoded serialized TensorRT 10.3.0.26 engine" in found.reason


def test_base64_plan_straddling_a_scan_chunk_boundary() -> None:
    encoded = base64.b64encode(plan())
    data = b"a" * (engines.SCAN_CHUNK - 3) + encoded
    assert only("blob.txt", data).rule == "engine/base64"


def test_zip_member_with_base64_plan_names_the_member() -> None:
    # torch-tensorrt's pickled engine slot: the engine base64-encoded inside a pickle in a zip.
    pickled = pickle.dumps({"name": "trt_engine", "engine": base64.b64encode(plan((10, 3, 0, 26)))}, protocol=2)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model/version", "3")
        archive.writestr("model/data.pkl", pickled)
    found = only("trt_model.pt", buffer.getvalue())
    assert found.rule == "engine/base64"
    assert "zip member 'model/data.pkl'" in found.reason
    assert "TensorRT 10.3.0.26" in found.reason


def test_zip_member_holding_a_raw_plan() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bundle/engine", plan())
    found = only("bundle.zip", buffer.getvalue())
    assert found.rule == "engine/plan"
    assert "zip member 'bundle/engine'" in found.reason


def test_onnx_epcontext_with_embedded_engine() -> None:
    found = only("model_ctx.onnx", epcontext_model(1, plan((10, 3, 0, 26))))
    assert found.rule == "engine/onnx-epcontext"
    assert "EPContext node 'TRTKernel_graph_main_0' embeds a serialized TensorRT 10.3.0.26 engine" in found.reason


def test_onnx_epcontext_is_recognised_without_the_onnx_suffix() -> None:
    assert only("blobs/0001", epcontext_model(1, plan())).rule == "engine/onnx-epcontext"


def test_onnx_epcontext_referencing_an_engine_file() -> None:
    found = only("model_ctx.onnx", epcontext_model(0, b"model_ctx.engine"))
    assert found.rule == "engine/onnx-epcontext-ref"
    assert "'model_ctx.engine'" in found.reason


def test_negatives_give_no_finding() -> None:
    add = helper.make_node("Add", ["x", "x"], ["y"])
    legit_onnx = onnx_model([add], [helper.make_opsetid("", 17)])
    ok, jpeg = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    assert ok
    python = b'MAGIC = b"ftrt"  # the plan magic\nB64 = "ZnRydA=="  # the magic alone, base64\nop = "EPContext"\n'
    corpus = {
        "model.onnx": legit_onnx,
        "random.bin": random.Random(0).randbytes(200_000),
        "photo.jpg": jpeg.tobytes(),
        "check.py": python,
        "empty": b"",
        "short": b"ftrt",
    }
    for path, data in corpus.items():
        assert findings(path, data) == [], path


def test_large_file_is_read_only_at_its_head() -> None:
    reads: list[tuple[int, int]] = []

    def reader(offset: int, size: int) -> bytes:
        reads.append((offset, size))
        return bytes(size if size >= 0 else 0)

    huge = Entry("usr/lib/libhuge.so", engines.SCAN_LIMIT + 1, reader)
    assert list(engines.check(huge)) == []
    assert all(0 <= size <= engines.HEAD_SIZE for _, size in reads)


def test_real_files_through_walk_directory(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "weights.bin").write_bytes(plan())
    (tmp_path / "models" / "state.json").write_text(json.dumps({"engine": base64.b64encode(plan()).decode()}))
    (tmp_path / "app.py").write_text("print('ftrt')\n")
    found = [finding for entry in walk_directory(tmp_path) for finding in engines.check(entry)]
    assert [(f.path, f.rule) for f in found] == [
        ("models/state.json", "engine/base64"),
        ("models/weights.bin", "engine/plan"),
    ]
