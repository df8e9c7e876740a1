"""``edgekit status``: the on-device fetch script run for real here, its answer parsed for real."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import assert_clean_error, edgekit, free_port

from edgekit.agent.metrics import STAGES, Metrics, MetricsServer
from edgekit.cli.status import _table
from edgekit.device.status import FETCH_SCRIPT, DeviceStatus, fetch_argv, metrics_answer, not_ours
from edgekit.device.trial import Lifecycle
from edgekit.device.wire import parse
from edgekit.ssh.seam import RunResult


def fetch(config: Path, timeout: float = 5.0) -> RunResult:
    """The script as the device runs it, with this Python for the device's python3."""
    argv = [sys.executable, *fetch_argv(str(config), timeout)[1:]]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    return RunResult("python3 -c ...", done.returncode, done.stdout, done.stderr)


def write_config(tmp_path: Path, metrics: object = "absent") -> Path:
    config: dict[str, object] = {"release_dir": "/var/lib/edgekit/current"}
    if metrics != "absent":
        config["metrics"] = metrics
    path = tmp_path / "camera.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def served() -> Iterator[tuple[Metrics, int]]:
    metrics = Metrics()
    for stage in STAGES:
        metrics.observe(stage, 0.0125)
    metrics.frame_done()
    metrics.frame_done()
    metrics.add("source_reconnects", 2)
    metrics.set_info(release="abc123", task="detect")
    server = MetricsServer(metrics, 0)
    server.start()
    yield metrics, server.port
    server.close()


def test_script_is_python_36() -> None:
    ast.parse(FETCH_SCRIPT, feature_version=(3, 6))
    assert "__future__" not in FETCH_SCRIPT and "capture_output" not in FETCH_SCRIPT


def test_fetches_and_parses_the_metrics(tmp_path: Path, served: tuple[Metrics, int]) -> None:
    metrics, port = served
    port_result = fetch(write_config(tmp_path, {"port": port}))
    assert port_result.ok, port_result.stderr
    found_port, parsed, missing = metrics_answer(port_result)
    assert (found_port, missing) == (port, None)
    assert parsed is not None
    assert parsed["frames"] == 2 and parsed["counters"]["source_reconnects"] == 2
    assert parsed["info"] == {"release": "abc123", "task": "detect"}
    assert parsed["latency_ms"]["infer"] == {"p50": pytest.approx(12.5), "p99": pytest.approx(12.5)}
    assert parsed["counters"] == metrics.snapshot()["counters"]


def test_switched_off(tmp_path: Path) -> None:
    port, parsed, missing = metrics_answer(fetch(write_config(tmp_path, None)))
    assert (port, parsed) == (None, None)
    assert missing is not None and "switched off" in missing and '"metrics": null' in missing


def test_nothing_listens_on_the_default_port(tmp_path: Path) -> None:
    # The default 9464 may be taken on the test machine; a free port stands in for it.
    unused = free_port()
    port, parsed, missing = metrics_answer(fetch(write_config(tmp_path, {"port": unused})))
    assert (port, parsed) == (unused, None)
    assert missing == f"nothing listens on http://127.0.0.1:{unused}/metrics"


def test_default_port_is_9464(tmp_path: Path) -> None:
    port, _, _ = metrics_answer(fetch(write_config(tmp_path), timeout=1))
    assert port == 9464


@pytest.mark.parametrize(
    ("content", "words"),
    [(None, "there is no"), ("{not json", "cannot read"), ('{"metrics": {"port": "x"}}', "not a port number")],
)
def test_config_problems(tmp_path: Path, content: str | None, words: str) -> None:
    config = tmp_path / "camera.json"
    if content is not None:
        config.write_text(content)
    port, parsed, missing = metrics_answer(fetch(config))
    assert (port, parsed) == (None, None)
    assert missing is not None and words in missing and str(config) in missing


def test_another_program_on_the_port(tmp_path: Path, served: tuple[Metrics, int]) -> None:
    _, port = served
    answer = RunResult("python3 -c ...", 0, f"port {port}\n# HELP go_goroutines x\ngo_goroutines 3\n", "")
    assert metrics_answer(answer)[1:] == (
        None,
        f"port {port} serves metrics, but not edgekit's; pick another metrics.port",
    )
    garbage = RunResult("python3 -c ...", 0, f"port {port}\n<html>hello</html>\n", "")
    _, parsed, missing = metrics_answer(garbage)
    assert parsed is None and missing is not None and "does not serve edgekit's metrics" in missing


def test_no_python3() -> None:
    answer = RunResult("python3 -c ...", 127, "", "sh: python3: not found")
    assert metrics_answer(answer) == (None, None, "the device has no python3 to fetch them with")


def test_status_json_shape() -> None:
    status = DeviceStatus(
        target="jetson@10.0.0.5:22",
        active_state="failed",
        sub_state="failed",
        main_pid=None,
        restarts=3,
        status_text="",
        metrics_port=None,
        metrics=None,
        metrics_missing="edgekit-camera.service is not running (failed/failed)",
    )
    data = json.loads(json.dumps(status.to_dict()))
    assert data["unit"] == "edgekit-camera.service" and data["restarts"] == 3 and data["metrics"] is None
    assert not status.running


def test_status_is_listed_and_unreachable_is_a_clean_error(tmp_path: Path) -> None:
    listed = edgekit(tmp_path, "--help")
    assert listed.returncode == 0 and "status" in listed.stdout
    port = free_port()
    done = edgekit(
        tmp_path, "status", f"127.0.0.1:{port}", "--no-ssh-config", "--known-hosts", str(tmp_path / "kh"), "--json"
    )
    message = assert_clean_error(done, 4, "DeviceUnreachable")
    assert f"127.0.0.1:{port}" in message and "refused the connection" in message


def test_table_shows_state_rates_and_latency(capsys: pytest.CaptureFixture[str], served: tuple[Metrics, int]) -> None:
    metrics, port = served
    _, parsed, _ = metrics_answer(RunResult("", 0, f"port {port}\n{metrics.render()}", ""))
    _table(DeviceStatus("jetson@h:22", "active", "running", 1234, 0, "[b]warm[/b]", port, parsed, None))
    shown = " ".join(capsys.readouterr().out.split())
    for words in ("active (running)", "1234", "[b]warm[/b]", "infer p50 / p99 │ 12.5 ms / 12.5 ms", "release │ abc123"):
        assert words in shown


def test_metrics_of_another_process_on_the_port_are_not_shown_as_the_services() -> None:
    assert not_ours({"info": {"pid": "41"}}, 9464, 41) is None
    assert "port 9464 answers for process 7, not for edgekit-camera.service (41)" in str(
        not_ours({"info": {"pid": "7"}}, 9464, 41)
    )
    assert "process unknown" in str(not_ours({"info": {}}, 9464, 41))


def test_table_shows_the_release_on_trial_its_gate_and_the_last_rollback(capsys: pytest.CaptureFixture[str]) -> None:
    state = parse(
        Lifecycle,
        {
            "current": "r2",
            "previous": "r1",
            "committed": "r1",
            "current_state": "on trial",
            "task": "classify",
            "gate": {
                "samples": 360,
                "top1_agreement": 0.997,
                "output_cosine": 0.999,
                "max_abs_diff": 0.1,
                "infer_ms_mean": 1.0,
            },
            "trial": {
                "release": "r2",
                "fallback": "r1",
                "started": 0.0,
                "deadline": 120.0,
                "results": 30,
                "max_restarts": 3,
                "starts": 1,
                "produced": 12,
            },
            "last_rollback": {"release": "r0", "to": "r1", "at": 0.0, "reason": "it wrote no results", "by": "device"},
        },
        "a lifecycle answer",
    )
    _table(DeviceStatus("jetson@h:22", "active", "running", 1234, 0, "", None, None, "no metrics", lifecycle=state))
    shown = " ".join(capsys.readouterr().out.split())
    for words in (
        "r2 on trial: 12 of 30 results by",
        "top-1 agreement 0.997 on 360 samples",
        "previous │ r1",
        "r0 -> r1 by the device, because it",
        "wrote no results",
    ):
        assert words in shown, shown
