"""scripts/bench-camera on a tiny model and a short clip: the report's shape, not its speed."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from script_modules import load_script

# A ResNet-18 layout a few thousand parameters big, so the test times the harness, not a model.
TINY = ["--frames", "20", "--size", "160x96", "--input-size", "32", "--channels", "4,8,8,8"]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench_camera")


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path))
    return tmp_path


def test_json_report_has_three_sane_rows(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main([*TINY, "--json", "--repeat", "2"]) == 0
    report = json.loads(capsys.readouterr().out)

    rows = report["modes"]
    assert [row["mode"] for row in rows] == ["raw", "naive", "pipelined"]
    by_mode = {row["mode"]: row for row in rows}
    for row in rows:
        # Every mode saw every frame of the clip: the pipeline neither dropped nor repeated any.
        assert row["frames"] == 20
        assert row["seconds"] > 0
        assert row["fps"] == pytest.approx(20 / row["seconds"], rel=0.05)
        assert row["vs_raw"] == pytest.approx(row["fps"] / by_mode["raw"]["fps"], rel=0.05)
        assert row["vs_naive"] == pytest.approx(row["fps"] / by_mode["naive"]["fps"], rel=0.05)
    assert by_mode["raw"]["vs_raw"] == 1.0
    assert by_mode["naive"]["vs_naive"] == 1.0

    target = report["target"]
    assert target["min_vs_raw"] == 0.95
    assert target["achieved_vs_raw"] == by_mode["pipelined"]["vs_raw"]
    assert target["met"] == (target["achieved_vs_raw"] >= 0.95)
    assert report["video"]["frames"] == 20
    assert (report["video"]["width"], report["video"]["height"]) == (160, 96)
    assert report["model"]["input"] == [1, 3, 32, 32]
    assert report["infer_threads"] == 1
    assert "GPU" in report["infer_threads_why"]


def test_table_names_the_setup_and_the_target(
    bench: ModuleType, capsys: pytest.CaptureFixture[str], private_cache: Path
) -> None:
    assert bench.main(TINY) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()

    assert lines[0].startswith("machine: ")
    for part in ("CPUs", "M params", "input 1x3x32x32", "160x96", "20 frames", "infer threads: 1"):
        assert part in lines[0]
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["mode"])
    assert lines[header].split() == ["mode", "frames", "seconds", "fps", "vs", "raw", "vs", "naive"]
    rows = [line.split() for line in lines[header + 2 : header + 5]]
    assert [row[0] for row in rows] == ["raw", "naive", "pipelined"]
    assert all(row[1] == "20" and float(row[2]) > 0 and float(row[3]) > 0 for row in rows)
    assert lines[-1].startswith("target: pipelined >= 0.95 x raw: ")
    # Model and video land in the cache the environment names, so a second run reuses them.
    assert sorted(p.suffix for p in (private_cache / "bench").iterdir()) == [".mp4", ".onnx"]


def test_default_model_is_resnet18_sized(bench: ModuleType) -> None:
    model = bench.build_model(bench.ModelShape())
    # ResNet-18 has 11.69 M parameters; folding BN into the conv biases drops one per channel.
    assert 11.6e6 < bench.count_params(model) < 11.8e6
    assert model.opset_import[0].version == 17
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 224, 224]


def test_bad_size_is_refused(bench: ModuleType) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--size", "1281x720"])
    assert exit_info.value.code == 2
