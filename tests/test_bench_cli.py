"""scripts/bench-cli: the report's shape and its exit code, not the CLI's speed."""

from __future__ import annotations

import json
import os
import sys
from types import ModuleType

import pytest
from script_modules import SCRIPTS_LIB, load_script

COMMANDS = [
    "python -c pass",
    "python -c 'import edgekit.cli'",
    "edgekit --help",
    "edgekit profiles list",
    "edgekit profiles list --json",
]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench_cli")


def test_one_run_prints_the_table(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--runs", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()

    assert lines[0].startswith("machine: ")
    for part in ("CPUs", "Python", "load average", "1 timed run per command", "bytecode cached"):
        assert part in lines[0]
    header = next(i for i, line in enumerate(lines) if line.startswith("command "))
    assert lines[header].split() == ["command", "best", "ms", "median", "ms", "spread", "ms", "cpu", "ms", "vs", "pass"]
    rows = lines[header + 2 : header + 2 + len(COMMANDS)]
    for command, row in zip(COMMANDS, rows, strict=True):
        assert row.startswith(command + " ")
        best, median, spread, cpu, ratio = row[len(command) :].split()
        assert float(best) > 0 and float(median) == float(best) and float(spread) == 0 and float(cpu) > 0
        assert ratio.endswith("x")
    assert rows[0].split()[-1] == "1.00x"
    assert lines[-1].startswith("target: every edgekit command under 500 ms (best): ")


def test_json_report_compares_with_the_baseline(
    bench: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap = {bench.BASELINE: [sys.executable, "-c", "pass"], "edgekit stand-in": [sys.executable, "-c", "import json"]}
    monkeypatch.setattr(bench, "commands", lambda: cheap)
    assert bench.main(["--runs", "3", "--json", "--no-bytecode"]) == 0
    report = json.loads(capsys.readouterr().out)

    assert report["runs"] == 3
    assert report["bytecode"] == "compiled on every start"
    baseline, stand_in = report["commands"]
    assert [baseline["command"], stand_in["command"]] == list(cheap)
    # The figures are rounded to 0.1 ms and the ratio to 0.01, hence the slack.
    for row in (baseline, stand_in):
        assert 0 < row["best_s"] <= row["median_s"] <= row["best_s"] + row["spread_s"] + 1e-4
    assert baseline["vs_pass"] == 1.0
    assert stand_in["vs_pass"] == pytest.approx(stand_in["best_s"] / baseline["best_s"], rel=0.02, abs=0.01)
    # Only the edgekit commands are held to the target; the baseline and the bare import are not.
    assert report["target"]["slowest_best_s"] == stand_in["best_s"]


def test_a_failing_command_is_the_only_error(
    bench: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = {bench.BASELINE: [sys.executable, "-c", "pass"], "edgekit broken": [sys.executable, "-c", "exit('no')"]}
    monkeypatch.setattr(bench, "commands", lambda: broken)
    assert bench.main(["--runs", "1"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines()[-1] == "bench-cli: `edgekit broken` exited 1: no"


def test_wrapper_runs_the_script() -> None:
    wrapper = SCRIPTS_LIB.parent / "bench-cli"
    assert os.access(wrapper, os.X_OK)
    assert "scripts/lib/bench_cli.py" in wrapper.read_text()
