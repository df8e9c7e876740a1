"""The agent's command line, in process and as the zipapp the host ships."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from edgekit.agent import AGENT_PROTOCOL
from edgekit.agent.__main__ import main

REPO_ROOT = Path(__file__).resolve().parents[2]
AGENT_DIR = REPO_ROOT / "edgekit" / "agent"


def run_main(argv, capsys):
    code = main(argv)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1, "every command but serve prints exactly one JSON object"
    return code, json.loads(out[0])


def test_version(capsys):
    assert run_main(["version"], capsys) == (0, {"protocol": AGENT_PROTOCOL})


def test_facts(capsys, tmp_path):
    code, facts = run_main(["facts", "--state-dir", str(tmp_path / "state")], capsys)
    assert code == 0
    assert facts["disk"]["path"] == str(tmp_path)


def build_args(release_dir, samples, tmp_path):
    return [
        "build",
        "--release-dir",
        str(release_dir),
        "--samples",
        str(samples),
        "--engines-dir",
        str(tmp_path / "engines"),
        "--result",
        str(tmp_path / "engines" / "builds" / "r.json"),
    ]


def test_build_answers_and_records_the_gate(capsys, tmp_path, release_dir, monkeypatch):
    monkeypatch.setenv("INVOCATION_ID", "0123abcd")
    samples = tmp_path / "samples.npz"
    inputs = np.zeros((2, 1, 8, 8), np.float32)
    np.savez(samples, inputs=inputs, reference=np.zeros((2, 10), np.float32))
    code, result = run_main(build_args(release_dir, samples, tmp_path), capsys)
    assert code == 0
    assert result["gate"]["samples"] == 2
    assert (result["release"], result["backend"], result["invocation"]) == ("r-test", "onnxruntime", "0123abcd")
    assert json.loads((tmp_path / "engines" / "builds" / "r.json").read_text()) == result


def test_an_agent_error_is_a_json_error_and_exit_1_and_is_recorded(capsys, tmp_path):
    code, result = run_main(build_args(tmp_path, tmp_path / "s.npz", tmp_path), capsys)
    assert code == 1
    assert result["error"]["kind"] == "config"
    assert "release.json" in result["error"]["message"]
    recorded = json.loads((tmp_path / "engines" / "builds" / "r.json").read_text())
    assert recorded["error"] == result["error"]


def build_zipapp(path: Path) -> Path:
    """The layout the host ships: edgekit/agent/... plus a top-level __main__.py."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("edgekit/__init__.py", "")
        for source in AGENT_DIR.rglob("*.py"):
            archive.write(source, "edgekit/" + source.relative_to(AGENT_DIR.parent).as_posix())
        archive.writestr(
            "__main__.py",
            "import sys\nimport edgekit.agent.__main__\nsys.exit(edgekit.agent.__main__.main())\n",
        )
    return path


def test_the_zipapp_runs_with_a_plain_python(tmp_path):
    pyz = build_zipapp(tmp_path / "agent.pyz")
    # Run outside the repository so nothing but the zipapp can provide edgekit.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for command, key in ((["version"], "protocol"), (["facts"], "python")):
        done = subprocess.run(
            [sys.executable, str(pyz), *command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            check=False,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert key in json.loads(done.stdout)


def test_serve_with_a_missing_config_exits_1(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "edgekit.agent", "serve", "--config", str(tmp_path / "c.json")],
        cwd=REPO_ROOT,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    error = json.loads(done.stdout)["error"]
    assert error["kind"] == "config"
    assert str(tmp_path / "c.json") in error["message"]


EXIT_WITH_A_THREAD_IN_A_CALL = """
import atexit, sys, threading, time
from edgekit.agent.__main__ import exit_process

atexit.register(lambda: print("interpreter shutdown ran", flush=True))
stuck = sys.argv[1] == "stuck"
if stuck:
    # Stands in for a camera read abandoned past its deadline, still inside the driver.
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
print("results flushed", end="")
exit_process(3)
"""


def test_the_agent_exits_without_interpreter_shutdown_while_a_call_is_still_running():
    # Shutdown would unwind such a thread through OpenCV's C++ frames, and glibc aborts
    # ("FATAL: exception not rethrown"): exit 3 must stay exit 3, with stdout flushed.
    for state, shutdown in (("stuck", False), ("idle", True)):
        done = subprocess.run(
            [sys.executable, "-c", EXIT_WITH_A_THREAD_IN_A_CALL, state],
            capture_output=True,
            text=True,
            timeout=20,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert done.returncode == 3
        assert done.stdout.startswith("results flushed")
        assert ("interpreter shutdown ran" in done.stdout) is shutdown
