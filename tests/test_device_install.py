"""``edgekit.device.install`` against a fake device: which script runs, with which arguments, and what it reports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgekit.device import install
from edgekit.device.blobs import Blob
from edgekit.device.layout import (
    BLOBS_DIR,
    CONFIG_FILE,
    CURRENT_LINK,
    SERVICE_USER,
    UNIT_FILE,
    VENV_LINK,
    VENVS_DIR,
    release_dir,
)
from edgekit.errors import RemoteCommandFailed
from edgekit.ssh.target import Target
from edgekit.testing import FakeConnection, Reply

SCRIPT = re.compile(r"^sh -c ")
ORT = Blob(Path("onnxruntime-1.18.0-cp310-cp310-manylinux_2_17_aarch64.whl"), "a" * 64)
NUMPY = Blob(Path("numpy-1.26.4-cp310-cp310-manylinux_2_17_aarch64.whl"), "b" * 64)


def script_args(conn: FakeConnection) -> tuple[str, ...]:
    """The arguments after ``sh -c SCRIPT sh`` of the one script run, which must run as root."""
    (call,) = conn.runs
    assert call.argv[:2] == ("sh", "-c") and call.argv[3] == "sh" and call.sudo
    return call.argv[4:]


@pytest.mark.parametrize(("stdout", "changed"), [("changed\n", True), ("", False)])
def test_ensure_venv_installs_each_wheel_under_its_pin(
    fake_connection: FakeConnection, stdout: str, changed: bool
) -> None:
    fake_connection.on(SCRIPT, Reply(stdout))
    pins = ["numpy==1.26.4", "onnxruntime==1.18.0"]
    assert install.ensure_venv(fake_connection, "3.10.12", [ORT, NUMPY], pins) is changed
    key = install.venv_key("3.10.12", [ORT, NUMPY])
    assert script_args(fake_connection) == (
        *(VENVS_DIR, key, VENV_LINK, BLOBS_DIR),
        *(ORT.digest, ORT.local.name, "onnxruntime==1.18.0"),
        *(NUMPY.digest, NUMPY.local.name, "numpy==1.26.4"),
    )
    assert "python3 -m venv --system-site-packages" in fake_connection.runs[0].argv[2]


def test_the_venv_key_follows_the_python_and_the_wheels_not_their_order() -> None:
    assert install.venv_key("3.10.12", [ORT, NUMPY]) == install.venv_key("3.10.12", [NUMPY, ORT])
    assert install.venv_key("3.10.12", [ORT]) != install.venv_key("3.8.10", [ORT])
    assert install.venv_key("3.10.12", [ORT]) != install.venv_key("3.10.12", [ORT, NUMPY])


def test_a_failed_venv_install_says_what_failed_where(fake_connection: FakeConnection) -> None:
    fake_connection.on(SCRIPT, Reply(stderr="Processing...\nERROR: No matching distribution for numpy\n", exit_code=1))
    with pytest.raises(RemoteCommandFailed) as raised:
        install.ensure_venv(fake_connection, "3.10.12", [NUMPY], ["numpy==1.26.4"])
    message = str(raised.value)
    assert message.startswith("`sudo -n -- sh -c ")
    assert message.endswith(" failed on nvidia@jetson with exit code 1: ERROR: No matching distribution for numpy")
    assert raised.value.result.exit_code == 1


def test_ensure_release_links_files_by_name(fake_connection: FakeConnection) -> None:
    fake_connection.on(SCRIPT, Reply("changed\n"), Reply(""))
    files = {"model.onnx": ORT, "media/my clip.avi": NUMPY}
    assert install.ensure_release(fake_connection, "r1", files) is True
    assert script_args(fake_connection) == (
        *(release_dir("r1"), BLOBS_DIR),
        *(NUMPY.digest, "media/my clip.avi", ORT.digest, "model.onnx"),
    )
    # The quoted line keeps a name with a space one word on the device.
    assert "'media/my clip.avi'" in fake_connection.runs[0].line
    assert install.ensure_release(fake_connection, "r1", files) is False


def test_a_release_id_names_its_files_and_their_contents() -> None:
    assert install.release_id({"a": ORT, "b": NUMPY}) == install.release_id({"b": NUMPY, "a": ORT})
    assert install.release_id({"a": ORT}) != install.release_id({"b": ORT})
    assert install.release_id({"a": ORT}) != install.release_id({"a": NUMPY})


def test_remove_release(fake_connection: FakeConnection) -> None:
    fake_connection.on(["rm"])
    install.remove_release(fake_connection, "r1")
    [remove] = fake_connection.runs
    assert remove.argv == ("rm", "-rf", "--", release_dir("r1")) and remove.sudo


@pytest.mark.parametrize(
    ("link", "current"),
    [
        (Reply(f"{release_dir('r7')}\n"), "r7"),
        (Reply("/opt/elsewhere/r7\n"), None),
        (Reply(stderr="", exit_code=1), None),
    ],
)
def test_current_release(fake_connection: FakeConnection, link: Reply, current: str | None) -> None:
    fake_connection.on(["readlink", CURRENT_LINK], link)
    assert install.current_release(fake_connection) == current
    assert not fake_connection.runs[0].sudo


def test_ensure_service_user(fake_connection: FakeConnection) -> None:
    fake_connection.on(SCRIPT, Reply("changed\n"))
    assert install.ensure_service_user(fake_connection) is True
    assert script_args(fake_connection) == (SERVICE_USER,)
    assert "useradd --system" in fake_connection.runs[0].argv[2]


@pytest.mark.parametrize("tensorrt", [True, False])
def test_install_system_places_unit_config_and_the_gpu_dropin_only_for_tensorrt(
    fake_connection: FakeConnection, tensorrt: bool
) -> None:
    unit, config, dropin = Blob(Path("u"), "1" * 64), Blob(Path("c"), "2" * 64), Blob(Path("d"), "3" * 64)
    fake_connection.on(SCRIPT, Reply("changed\n"))
    assert install.install_system(fake_connection, unit, config, dropin if tensorrt else None) is True
    assert script_args(fake_connection) == (
        *(BLOBS_DIR, unit.digest, UNIT_FILE, config.digest, CONFIG_FILE),
        *(dropin.digest if tensorrt else "-", install.GPU_DROPIN),
    )


def test_as_root_scripts_run_without_sudo() -> None:
    conn = FakeConnection(Target("jetson", user="root"))
    conn.on(SCRIPT, Reply("", stderr="useradd: cannot lock /etc/passwd", exit_code=10))
    with pytest.raises(RemoteCommandFailed, match=r"(?s)^`sh -c .* exit code 10: useradd: cannot lock /etc/passwd$"):
        install.ensure_service_user(conn)
