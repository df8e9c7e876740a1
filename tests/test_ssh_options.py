"""How SSH options become a connection, without a server: ~/.ssh/config as OpenSSH reads it
(ProxyJump order, IdentitiesOnly, a missing IdentityFile, ConnectTimeout), passwords that never
show, sudo fed on stdin, a dropped session, and the CLI's SSH options on every device command."""

from __future__ import annotations

import inspect
import io
import shlex
from pathlib import Path
from typing import Any

import pytest
from invoke.exceptions import ThreadException
from invoke.util import ExceptionWrapper

from edgekit.cli import app
from edgekit.cli.connect import device_command
from edgekit.errors import AuthFailed, LinkDropped, RemoteCommandFailed, UsageError
from edgekit.secret import Secret
from edgekit.ssh.connection import CONNECT_TIMEOUT_S, SUDO_PROMPT, SSHConnection, _fabric_config, _Hop, _hops
from edgekit.ssh.seam import command_line
from edgekit.ssh.target import Target


def hop(tmp_path: Path, config: str, host: str = "device") -> _Hop:
    path = tmp_path / "ssh_config"
    path.write_text(config)
    return _Hop(host, config=_fabric_config(True, path))


def test_proxyjump_hops_are_dialled_first_to_last_as_openssh_does(tmp_path: Path) -> None:
    conn = hop(
        tmp_path,
        "Host device\n  HostName 10.9.0.5\n  ProxyJump bastion,inner:2201\n"
        "Host bastion\n  HostName 127.0.0.2\n  User ops\n",
    )
    chain = [(role, h.host, h.port) for role, h in _hops(conn)]
    # device through "inner", "inner" through "bastion": bastion is dialled first.
    assert chain == [("device", "10.9.0.5", 22), ("jump host", "inner", 2201), ("jump host", "127.0.0.2", 22)]
    assert _hops(conn)[2][1].user == "ops"


def test_proxyjump_none_and_a_host_that_names_itself(tmp_path: Path) -> None:
    assert hop(tmp_path, "Host device\n  ProxyJump none\n").gateway is None
    # A wildcard block naming the host as its own jump host must not recurse; another port is a real hop.
    assert hop(tmp_path, "Host *\n  ProxyJump device\n").gateway is None
    assert hop(tmp_path, "Host device\n  ProxyJump device:2222\n").gateway.port == 2222


def test_identities_only_turns_off_the_agent_and_default_keys(tmp_path: Path) -> None:
    key = tmp_path / "id_test"
    key.write_text("not read here")
    conn = hop(tmp_path, f"Host device\n  IdentitiesOnly yes\n  IdentityFile {key}\n  IdentityFile {tmp_path}/gone\n")
    assert conn.connect_kwargs["allow_agent"] is False and conn.connect_kwargs["look_for_keys"] is False
    # OpenSSH passes over an IdentityFile that does not exist; so does edgekit.
    assert conn.connect_kwargs["key_filename"] == [str(key)]
    plain = hop(tmp_path, "Host device\n  HostName 127.0.0.1\n")
    assert "allow_agent" not in plain.connect_kwargs
    # With no IdentityFile, OpenSSH still offers the default ~/.ssh/id_* keys; the agent's it does not.
    bare = hop(tmp_path, "Host device\n  IdentitiesOnly yes\n")
    assert bare.connect_kwargs["look_for_keys"] is True and bare.connect_kwargs["allow_agent"] is False


def test_connect_timeout_from_ssh_config_and_a_default_for_every_hop(tmp_path: Path) -> None:
    conn = hop(tmp_path, "Host device\n  ConnectTimeout 4\n  ProxyJump bastion\n")
    assert conn.connect_timeout == 4
    # Fabric would wait forever for a jump host its config gives no timeout.
    assert conn.gateway.connect_timeout == CONNECT_TIMEOUT_S


def test_a_missing_ssh_config_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        _fabric_config(True, tmp_path / "nope")


def test_a_secret_never_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret) and "hunter2" not in f"{[secret]}"
    assert secret.reveal() == "hunter2"
    path = tmp_path / "pw"
    path.write_text("first line\nsecond\n")
    assert Secret.from_file(path).reveal() == "first line"
    monkeypatch.setattr("sys.stdin", io.StringIO("from stdin\n"))
    assert Secret.from_file(Path("-")).reveal() == "from stdin"
    path.write_text("")
    with pytest.raises(UsageError, match="is empty"):
        Secret.from_file(path)
    with pytest.raises(UsageError, match="cannot be read"):
        Secret.from_file(tmp_path / "absent")


def test_sudo_with_a_password_prompts_with_a_token_and_without_one_must_not_ask() -> None:
    assert command_line(["id", "-u"], True) == "sudo -n -- id -u"
    assert command_line(["id", "-u"], True, prompt="[tok en]") == "sudo -S -p '[tok en]' -- id -u"
    assert command_line(["id", "-u"], False, prompt="[tok]") == "id -u"


class Raw:
    def __init__(self, exited: int, stdout: str = "", stderr: str = "") -> None:
        self.exited, self.stdout, self.stderr = exited, stdout, stderr


class FabricStandIn:
    """What SSHConnection asks of a Fabric connection: run a line and close. A ``sudo -S`` line
    prompts on stderr when ``asks`` says its sudo wants the password, as sudo does."""

    def __init__(self, user: str, answer: Any, asks: bool = True, connected: bool = True) -> None:
        self.user = user
        self.answer = answer
        self.asks = asks
        self.is_connected = connected
        self.calls: list[tuple[str, list[str]]] = []

    def run(self, line: str, *, in_stream: Any, watchers: list[Any], **kwargs: Any) -> Raw:
        assert in_stream is False
        printed = SUDO_PROMPT if self.asks and line.startswith("sudo -S") else ""
        self.calls.append((line, [reply for watcher in watchers for reply in watcher.submit(printed)]))
        raw = self.answer(line) if callable(self.answer) else self.answer
        return Raw(raw.exited, raw.stdout, printed + raw.stderr)

    def close(self) -> None:
        raise EOFError


def test_the_sudo_password_answers_sudo_prompt_only_never_the_command_line() -> None:
    fabric = FabricStandIn("field", Raw(0, "0\n", "warning\n"))
    conn = SSHConnection(Target("d", "field"), fabric, Secret("s3cret"))
    result = conn.run(["id", "-u"], sudo=True)
    # The prompt token is sudo's, not the command's output.
    assert result.stdout == "0\n" and result.stderr == "warning\n"
    assert conn.run(["id", "-u"]).stdout == "0\n"
    prompt = shlex.quote(SUDO_PROMPT)
    assert fabric.calls == [(f"sudo -S -p {prompt} -- id -u", ["s3cret\n"]), ("id -u", [])]
    # A command sudo lets through without asking (NOPASSWD for it alone) gets nothing.
    quiet = FabricStandIn("field", Raw(0), asks=False)
    SSHConnection(Target("d", "field"), quiet, Secret("s3cret")).run(["cat"], sudo=True)
    assert quiet.calls == [(f"sudo -S -p {prompt} -- cat", [])]


def test_verify_sudo_refuses_a_wrong_password_in_one_sentence() -> None:
    def wrong(line: str) -> Raw:
        return Raw(1, stderr="Sorry, try again.\nsudo: 3 incorrect password attempts\n")

    conn = SSHConnection(Target("d", "field"), FabricStandIn("field", wrong), Secret("s3cret"))
    with pytest.raises(AuthFailed, match=r"sudo on field@d refused the password given for 'field' \(sudo: 3 incorrect"):
        conn.verify_sudo()
    SSHConnection(Target("d", "field"), FabricStandIn("field", Raw(0)), Secret("s3cret")).verify_sudo()


def thread_died() -> ThreadException:
    try:
        raise EOFError("Socket is closed")
    except EOFError as exc:
        return ThreadException([ExceptionWrapper({}, type(exc), exc, exc.__traceback__)])


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (Raw(-1), "the session closed without an exit status"),
        (thread_died(), "Socket is closed"),
        (EOFError(), "EOFError"),
    ],
    ids=["no exit status", "stream threads died", "EOF"],
)
def test_a_session_the_link_took_is_a_dropped_link_and_closing_it_stays_quiet(answer: Any, reason: str) -> None:
    def run(line: str) -> Raw:
        if isinstance(answer, BaseException):
            raise answer
        return answer

    conn = SSHConnection(Target("d", "jetson"), FabricStandIn("jetson", run, connected=False))
    with pytest.raises(LinkDropped) as raised:
        conn.run(["true"])
    # One sentence: the reason, never the threads' tracebacks.
    assert str(raised.value).startswith(f"The link to jetson@d dropped ({reason});")
    assert "\n" not in str(raised.value)
    conn.close()


def test_a_command_killed_by_a_signal_on_a_live_link_is_its_own_failure() -> None:
    conn = SSHConnection(Target("d", "jetson"), FabricStandIn("jetson", Raw(-1, stderr="Killed\n")))
    with pytest.raises(RemoteCommandFailed, match="exit code -1: Killed"):
        conn.run(["python3", "-c", "boom"])


def test_every_device_command_takes_the_ssh_options() -> None:
    options = {
        "identity",
        "known_hosts",
        "ssh_config_file",
        "ask_password",
        "password_file",
        "ask_sudo_password",
        "sudo_password_file",
    }
    for command in app.registered_commands:
        params = set(inspect.signature(command.callback).parameters)
        if "target" in params:
            assert options <= params and "device" not in params, command.name


def test_device_command_hands_the_command_its_endpoint(tmp_path: Path) -> None:
    seen = {}

    @device_command
    def command(target: str, *, device: Any) -> None:
        seen["device"] = device

    password_file = tmp_path / "pw"
    password_file.write_text("pw\n")
    defaults = {name: p.default for name, p in inspect.signature(command).parameters.items() if name != "target"}
    command(target="jetson@d", **{**defaults, "sudo_password_file": password_file})
    assert seen["device"].target == "jetson@d"
    assert seen["device"].sudo_password.reveal() == "pw" and seen["device"].password is None
    with pytest.raises(UsageError, match="--ask-password needs a terminal"):
        command(target="jetson@d", **{**defaults, "ask_password": True})
