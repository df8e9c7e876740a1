"""The ``edgekit`` entry point: errors become one message and an exit code, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sshd import free_port

from edgekit.errors import DeviceUnreachable

if TYPE_CHECKING:
    from edgekit.provision import ProvisionRequest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "digits"


def edgekit(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "SSH_AUTH_SOCK")}
    env.update(HOME=str(home), EDGEKIT_CACHE=str(tmp_path / "cache"), NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-c", "from edgekit.cli import main; main()", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_clean_error(done: subprocess.CompletedProcess[str], code: int, kind: str) -> str:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    # A log (no terminal) shows the steps that led there, one "· step" line each, then the error.
    error = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("· "))
    assert error.startswith(f"{kind}: "), done.stderr
    assert done.stdout == ""
    return " ".join(error.split())


def provision_args(tmp_path: Path, model: Path, port: int) -> list[str]:
    return [
        "provision",
        f"127.0.0.1:{port}",
        "--model",
        str(model),
        "--calib",
        str(SAMPLES / "calib"),
        "--holdout",
        str(SAMPLES / "holdout"),
        "--source",
        str(SAMPLES / "clip.avi"),
        "--no-ssh-config",
        "--known-hosts",
        str(tmp_path / "known_hosts"),
    ]


def test_help_lists_commands(tmp_path: Path) -> None:
    done = edgekit(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    assert "provision" in done.stdout
    assert "twin" in done.stdout


def test_missing_model(tmp_path: Path) -> None:
    missing = tmp_path / "missing.onnx"
    done = edgekit(tmp_path, *provision_args(tmp_path, missing, free_port()))
    message = assert_clean_error(done, 3, "ModelError")
    assert str(missing) in message
    assert not (tmp_path / "known_hosts").exists()


def test_truncated_model(tmp_path: Path) -> None:
    truncated = tmp_path / "model.onnx"
    truncated.write_bytes((SAMPLES / "model.onnx").read_bytes()[:100])
    done = edgekit(tmp_path, *provision_args(tmp_path, truncated, free_port()))
    message = assert_clean_error(done, 3, "ModelError")
    assert "truncated" in message


def test_unreachable_device(tmp_path: Path) -> None:
    port = free_port()
    done = edgekit(tmp_path, *provision_args(tmp_path, SAMPLES / "model.onnx", port))
    message = assert_clean_error(done, 4, "DeviceUnreachable")
    assert f"127.0.0.1:{port}" in message
    assert "refused the connection" in message
    # Nothing was cached in the real home on the way.
    assert not (tmp_path / "home" / ".cache" / "edgekit").exists()
    assert not (tmp_path / "known_hosts").exists()


def test_source_that_is_neither_file_nor_uri(tmp_path: Path) -> None:
    args = provision_args(tmp_path, SAMPLES / "model.onnx", free_port())
    args[args.index("--source") + 1] = "no-such-video.avi"
    done = edgekit(tmp_path, *args)
    message = assert_clean_error(done, 2, "UsageError")
    assert "no-such-video.avi" in message and "csi://0" in message


def test_bad_target(tmp_path: Path) -> None:
    args = provision_args(tmp_path, SAMPLES / "model.onnx", 1)
    args[1] = "jetson:99999"
    done = edgekit(tmp_path, *args)
    assert_clean_error(done, 1, "EdgekitError")


def test_bad_precision(tmp_path: Path) -> None:
    done = edgekit(tmp_path, *provision_args(tmp_path, SAMPLES / "model.onnx", 1), "--precision", "int4")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "'int4' is not one of int8, fp16, fp32" in " ".join(done.stderr.split())


def test_profiles_list_and_show(tmp_path: Path) -> None:
    listed = edgekit(tmp_path, "profiles", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    names = [profile["name"] for profile in json.loads(listed.stdout)]
    assert "orin-nano-8gb-jp62" in names and "twin" in names and "nano-jp46" in names
    shown = edgekit(tmp_path, "profiles", "show", "thor-jp70", "--json")
    assert json.loads(shown.stdout)["module"]["soc"] == "tegra264"
    table = edgekit(tmp_path, "profiles", "show", "nano-jp46")
    assert table.returncode == 0 and "unsupported" in table.stdout and "JetPack 5.1" in " ".join(table.stdout.split())


def test_unknown_profile_is_a_usage_error(tmp_path: Path) -> None:
    done = edgekit(tmp_path, "profiles", "show", "orin-nano-8gb-jp6")
    message = assert_clean_error(done, 2, "ProfileError")
    assert "did you mean orin-nano-8gb-jp62" in message


def test_malformed_config_is_refused_before_connecting(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[build]\nworkspace = 1\n")
    done = edgekit(tmp_path, *provision_args(tmp_path, SAMPLES / "model.onnx", 1), "--config", str(config))
    message = assert_clean_error(done, 2, "ConfigError")
    assert "'build.workspace'" in message and str(config) in message


@pytest.mark.parametrize(
    ("args", "words"),
    [(["provision", "jetson"], "model"), (["no-such-command"], "no-such-command"), ([], "provision")],
)
def test_usage_error_is_not_a_traceback(tmp_path: Path, args: list[str], words: str) -> None:
    done = edgekit(tmp_path, *args)
    assert "Traceback" not in done.stderr
    assert done.returncode in ((0, 2) if not args else (2,))
    assert words in done.stdout + done.stderr


def test_error_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "a-rather-long-folder-name-for-the-models" / "missing.onnx"
    done = edgekit(tmp_path, *provision_args(tmp_path, missing, 1))
    assert done.returncode == 3
    # However long the path: one line for the step it stopped in, one for the error.
    assert done.stderr.splitlines()[0] == "· checking the model", done.stderr
    assert done.stderr.count("\n") == 2, done.stderr


def test_mixed_precision_auto_is_accepted_and_a_bad_mode_refused(tmp_path: Path) -> None:
    port = free_port()
    # Accepted: the command goes on to the device, which is not there.
    done = edgekit(tmp_path, *provision_args(tmp_path, SAMPLES / "model.onnx", port), "--mixed-precision", "auto")
    assert_clean_error(done, 4, "DeviceUnreachable")
    refused = edgekit(tmp_path, *provision_args(tmp_path, SAMPLES / "model.onnx", port), "--mixed-precision", "on")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "'on' is not one of off, auto" in " ".join(refused.stderr.split())


def test_sample_every_reaches_the_request_and_a_too_short_cadence_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from edgekit.cli import app
    from edgekit.cli import provision as command

    requests: list[ProvisionRequest] = []

    def provision(device: object, request: ProvisionRequest) -> None:
        requests.append(request)
        raise DeviceUnreachable("not there")

    # In-process, so the request the command builds can be seen; nothing connects.
    monkeypatch.setattr(command, "_provision_with_progress", provision)
    args = provision_args(tmp_path, SAMPLES / "model.onnx", 1)
    CliRunner().invoke(app, [*args, "--sample-every", "0.5"])
    CliRunner().invoke(app, args)
    assert [request.sample_every_s for request in requests] == [0.5, None]
    refused = CliRunner().invoke(app, [*args, "--sample-every", "0.01"])
    assert refused.exit_code == 2 and requests[2:] == []
    assert "--sample-every" in refused.output
