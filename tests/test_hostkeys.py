"""Host key trust: fingerprints as OpenSSH prints them, known_hosts parsing, the policy."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import paramiko
import pytest

from edgekit.errors import HostKeyChanged, UnknownHostKey
from edgekit.ssh.hostkeys import (
    KnownHostsPolicy,
    changed_key_error,
    fingerprint,
    known_hosts_name,
    load_known_hosts,
)

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")


def keygen(path: Path, kind: str = "ed25519") -> paramiko.PKey:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "test@edgekit", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    if kind == "ed25519":
        return paramiko.Ed25519Key.from_private_key_file(str(path))
    if kind == "ecdsa":
        return paramiko.ECDSAKey.from_private_key_file(str(path))
    return paramiko.RSAKey.from_private_key_file(str(path))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, paramiko.PKey]]:
    directory = tmp_path_factory.mktemp("keys")
    made = {}
    for name, kind in (("a", "ed25519"), ("b", "ed25519"), ("ecdsa", "ecdsa"), ("rsa", "rsa")):
        path = directory / name
        made[name] = (path, keygen(path, kind))
    return made


def public_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


@pytest.mark.parametrize("name", ["a", "ecdsa", "rsa"])
def test_fingerprint_matches_ssh_keygen(keys: dict[str, tuple[Path, paramiko.PKey]], name: str) -> None:
    path, key = keys[name]
    printed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", f"{path}.pub"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[1]
    assert printed.startswith("SHA256:")
    assert fingerprint(key) == printed
    # The public half read back from the .pub file has the same fingerprint.
    kind, blob = Path(f"{path}.pub").read_text().split()[:2]
    assert fingerprint(paramiko.PKey.from_type_string(kind, base64.b64decode(blob))) == printed


def test_fingerprints_differ_between_keys(keys: dict[str, tuple[Path, paramiko.PKey]]) -> None:
    assert fingerprint(keys["a"][1]) != fingerprint(keys["b"][1])


def test_known_hosts_name() -> None:
    assert known_hosts_name("jetson", 22) == "jetson"
    assert known_hosts_name("jetson", 2222) == "[jetson]:2222"
    assert known_hosts_name("127.0.0.1", 40022) == "[127.0.0.1]:40022"
    assert known_hosts_name("::1", 2222) == "[::1]:2222"


def test_load_known_hosts_missing_file(tmp_path: Path) -> None:
    keys = load_known_hosts(tmp_path / "nope")
    assert isinstance(keys, paramiko.HostKeys)
    assert len(keys) == 0


def test_load_known_hosts_plain_skips_comments_and_markers(
    tmp_path: Path, keys: dict[str, tuple[Path, paramiko.PKey]]
) -> None:
    key_a, key_b, key_ec = keys["a"][1], keys["b"][1], keys["ecdsa"][1]
    path = tmp_path / "known_hosts"
    path.write_text(
        "# a comment line\n"
        "\n"
        f"@cert-authority *.example.com {public_line(key_b)}\n"
        f"@revoked revoked.example.com {public_line(key_b)}\n"
        f"   # indented comment {public_line(key_b)}\n"
        f"jetson,10.0.0.7 {public_line(key_a)}\n"
        f"[jetson]:2222 {public_line(key_ec)} trailing comment\n"
        "short line\n"
    )
    loaded = load_known_hosts(path)
    assert set(loaded.keys()) == {"jetson", "10.0.0.7", "[jetson]:2222"}
    assert loaded.lookup("jetson")["ssh-ed25519"] == key_a
    assert loaded.lookup("10.0.0.7")["ssh-ed25519"] == key_a
    assert loaded.lookup("[jetson]:2222")["ecdsa-sha2-nistp256"] == key_ec
    assert loaded.lookup("revoked.example.com") is None
    assert loaded.lookup("host.example.com") is None
    # Only our port matches; the default port entry is another name.
    assert loaded.lookup("[10.0.0.7]:2222") is None


def test_load_known_hosts_finds_hashed_entries(tmp_path: Path, keys: dict[str, tuple[Path, paramiko.PKey]]) -> None:
    key_a, key_b = keys["a"][1], keys["b"][1]
    path = tmp_path / "known_hosts"
    path.write_text(
        f"jetson {public_line(key_a)}\n"
        f"[127.0.0.1]:40022 {public_line(key_b)}\n"
        f"@cert-authority *.example.com {public_line(key_b)}\n"
    )
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], check=True, capture_output=True)
    text = path.read_text()
    assert "jetson" not in text and "127.0.0.1" not in text
    assert text.count("|1|") == 2
    loaded = load_known_hosts(path)
    assert loaded.lookup("jetson")["ssh-ed25519"] == key_a
    assert loaded.lookup("[127.0.0.1]:40022")["ssh-ed25519"] == key_b
    assert loaded.lookup("127.0.0.1") is None
    assert loaded.lookup("other") is None


def test_policy_refuses_unknown_key(tmp_path: Path, keys: dict[str, tuple[Path, paramiko.PKey]]) -> None:
    key = keys["a"][1]
    path = tmp_path / "ssh" / "known_hosts"
    accepted: list[tuple[str, str]] = []
    policy = KnownHostsPolicy(path, accept_new=False, on_accept=lambda h, fp: accepted.append((h, fp)))
    client = paramiko.SSHClient()
    with pytest.raises(UnknownHostKey) as info:
        policy.missing_host_key(client, "[127.0.0.1]:40022", key)
    message = str(info.value)
    assert fingerprint(key) in message
    assert "--accept-new-host-key" in message
    assert "[127.0.0.1]:40022" in message
    assert "\n" not in message
    assert accepted == []
    assert not path.exists()
    assert len(client.get_host_keys()) == 0


def test_policy_accepts_new_key_when_asked(tmp_path: Path, keys: dict[str, tuple[Path, paramiko.PKey]]) -> None:
    key_a, key_b = keys["a"][1], keys["b"][1]
    path = tmp_path / "fresh" / ".ssh" / "known_hosts"
    accepted: list[tuple[str, str]] = []
    policy = KnownHostsPolicy(path, accept_new=True, on_accept=lambda h, fp: accepted.append((h, fp)))
    client = paramiko.SSHClient()
    policy.missing_host_key(client, "[127.0.0.1]:40022", key_a)
    assert path.read_text() == f"[127.0.0.1]:40022 ssh-ed25519 {key_a.get_base64()}\n"
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    assert accepted == [("[127.0.0.1]:40022", fingerprint(key_a))]
    assert client.get_host_keys().lookup("[127.0.0.1]:40022")["ssh-ed25519"] == key_a
    # Appends, never rewrites, and what it wrote reads back (and OpenSSH can read it).
    policy.missing_host_key(client, "jetson", key_b)
    lines = path.read_text().splitlines()
    assert lines == [
        f"[127.0.0.1]:40022 ssh-ed25519 {key_a.get_base64()}",
        f"jetson ssh-ed25519 {key_b.get_base64()}",
    ]
    loaded = load_known_hosts(path)
    assert loaded.lookup("jetson")["ssh-ed25519"] == key_b
    assert loaded.lookup("[127.0.0.1]:40022")["ssh-ed25519"] == key_a
    found = subprocess.run(["ssh-keygen", "-F", "[127.0.0.1]:40022", "-f", str(path)], capture_output=True, text=True)
    assert found.returncode == 0 and key_a.get_base64() in found.stdout


def test_changed_key_error(tmp_path: Path, keys: dict[str, tuple[Path, paramiko.PKey]]) -> None:
    key = keys["b"][1]
    path = tmp_path / "known_hosts"
    error = changed_key_error("127.0.0.1", 40022, path, key)
    assert isinstance(error, HostKeyChanged)
    message = str(error)
    assert fingerprint(key) in message
    assert f"ssh-keygen -f {path} -R '[127.0.0.1]:40022'" in message
    assert "--accept-new-host-key" in message
    assert "[jetson]" not in str(changed_key_error("jetson", 22, path, key))


@pytest.mark.parametrize("bad", ["jetson ssh-ed25519 AAAA!!notbase64", "jetson ssh-ed25519 AAAA"])
def test_corrupt_known_hosts_line_is_skipped_or_explained(
    tmp_path: Path, keys: dict[str, tuple[Path, paramiko.PKey]], bad: str
) -> None:
    from edgekit.errors import EdgekitError

    key = keys["a"][1]
    path = tmp_path / "known_hosts"
    path.write_text(f"{bad}\ngood {public_line(key)}\n")
    try:
        loaded = load_known_hosts(path)
    except EdgekitError as exc:
        assert str(path) in str(exc)
    else:
        assert loaded.lookup("good")["ssh-ed25519"] == key
