"""Host key trust as OpenSSH has it, with real keys and certificates made by ssh-keygen.

What a server presents is built here as paramiko's Transport builds it from the wire: a plain
key, or a key whose ``public_blob`` keeps the certificate it came in.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from edgekit.errors import ConnectionFailed, HostKeyChanged, HostKeyRevoked, UnknownHostKey
from edgekit.ssh.hostkeys import (
    CERT_SUFFIX,
    Hop,
    HostKeyCheck,
    KnownHost,
    append_line,
    certificate_problem,
    fingerprint,
    host_key_order,
    host_matches,
    known_hosts_name,
    parse_certificate,
    parse_known_hosts,
)

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")

PARAMIKO_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")
PARAMIKO_ORDER = (*PARAMIKO_TYPES, "rsa-sha2-512", "rsa-sha2-256")
DEVICE = Hop("jetson-01.lab", 22, "device")
JUMP = Hop("bastion.lab", 2222, "jump host")


def keygen(path: Path, kind: str = "ed25519") -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", path.name, "-f", str(path)], check=True, capture_output=True
    )
    return path


def pub(path: Path) -> Path:
    return Path(f"{path}.pub")


def public_line(path: Path) -> str:
    """``<type> <base64>`` of a key pair's or certificate's .pub file."""
    kind, blob = (pub(path) if pub(path).exists() else path).read_text().split()[:2]
    return f"{kind} {blob}"


def presented(path: Path) -> paramiko.PKey:
    """The key paramiko's Transport makes of the host key blob in ``path`` (.pub or -cert.pub)."""
    kind, data = (pub(path) if pub(path).exists() else path).read_text().split()[:2]
    classes = {"ssh-ed25519": paramiko.Ed25519Key, "ecdsa-": paramiko.ECDSAKey, "ssh-rsa": paramiko.RSAKey}
    cls = next(found for prefix, found in classes.items() if kind.startswith(prefix))
    return cls(data=base64.b64decode(data))


def sign(
    ca: Path,
    key: Path,
    principals: str | None = "jetson-01.lab",
    validity: str = "-5m:+1h",
    host: bool = True,
    options: tuple[str, ...] = (),
) -> Path:
    """A certificate for ``key`` signed by ``ca``: ``<key>-cert.pub`` (made anew each time)."""
    command = ["ssh-keygen", "-q", "-s", str(ca), "-I", "edgekit-test", "-V", validity]
    command += ["-h"] if host else []
    command += ["-n", principals] if principals is not None else []
    for option in options:
        command += ["-O", option]
    subprocess.run([*command, str(pub(key))], check=True, capture_output=True)
    return Path(f"{key}-cert.pub")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("keys")
    kinds = {"a": "ed25519", "b": "ed25519", "ecdsa": "ecdsa", "rsa": "rsa", "ca": "ed25519", "ca2": "ed25519"}
    kinds["rsa_ca"] = "rsa"
    return {name: keygen(directory / name, kind) for name, kind in kinds.items()}


@pytest.fixture
def cert_dir(tmp_path: Path, keys: dict[str, Path]) -> Path:
    """Copies of the host keys, so each test's certificates are its own."""
    directory = tmp_path / "certs"
    directory.mkdir()
    for name in ("a", "ecdsa", "rsa"):
        shutil.copy(keys[name], directory / name)
        shutil.copy(pub(keys[name]), pub(directory / name))
    return directory


class Recorder:
    def __init__(self) -> None:
        self.accepted: list[tuple[str, str]] = []

    def __call__(self, host: str, fp: str) -> None:
        self.accepted.append((host, fp))


def check_with(known_hosts: Path, text: str | None, accept_new: bool = False) -> tuple[HostKeyCheck, Recorder]:
    if text is not None:
        known_hosts.write_text(text)
    recorder = Recorder()
    return HostKeyCheck(known_hosts, accept_new, recorder), recorder


@pytest.fixture
def known_hosts(tmp_path: Path) -> Path:
    return tmp_path / "known_hosts"


# --- fingerprints and names -------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "ecdsa", "rsa"])
def test_fingerprint_matches_ssh_keygen(keys: dict[str, Path], name: str) -> None:
    printed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub(keys[name]))], check=True, capture_output=True, text=True
    ).stdout.split()[1]
    assert printed.startswith("SHA256:")
    assert fingerprint(presented(keys[name])) == printed
    private = paramiko.PKey.from_path(keys[name])
    assert fingerprint(private) == printed


def test_fingerprints_differ_between_keys(keys: dict[str, Path]) -> None:
    assert fingerprint(presented(keys["a"])) != fingerprint(presented(keys["b"]))


def test_known_hosts_name() -> None:
    assert known_hosts_name("jetson", 22) == "jetson"
    assert known_hosts_name("jetson", 2222) == "[jetson]:2222"
    assert known_hosts_name("127.0.0.1", 40022) == "[127.0.0.1]:40022"
    assert known_hosts_name("::1", 2222) == "[::1]:2222"
    assert Hop("Jetson", 22, "device").name == "jetson"
    assert JUMP.name == "[bastion.lab]:2222"


# --- host patterns -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "hosts", "expected"),
    [
        ("jetson", "jetson", True),
        ("jetson", "JETSON", True),
        ("JETSON", "jetson", True),
        ("10.0.0.7", "jetson,10.0.0.7", True),
        ("jetson2", "jetson", False),
        ("jetson", "jetson2", False),
        ("jetson-01.lab", "*.lab", True),
        ("lab", "*.lab", False),
        ("jetson-01.lab", "jetson-0?.lab", True),
        ("jetson-10.lab", "jetson-0?.lab", False),
        ("good.lab", "*.lab,!bad.lab", True),
        ("bad.lab", "*.lab,!bad.lab", False),
        ("bad.lab", "!bad.lab,*.lab", False),
        ("other", "!bad.lab", False),
        ("[jetson]:2222", "[jetson]:2222", True),
        ("[jetson]:2222", "jetson", False),
        ("jetson", "[jetson]:2222", False),
        ("[jetson]:2222", "[jetson]:*", True),
        ("[jetson]:2222", "*", True),
        # Brackets are literal, not a character class as in fnmatch.
        ("j", "[a-z]", False),
        ("[a-z]", "[a-z]", True),
        ("a.b", "a?b", True),
        ("axb", "a.b", False),
    ],
)
def test_host_patterns_match_as_openssh(name: str, hosts: str, expected: bool) -> None:
    assert host_matches(name, hosts) is expected


def test_hashed_entries_match_only_their_name(known_hosts: Path, keys: dict[str, Path]) -> None:
    known_hosts.write_text(
        f"jetson {public_line(keys['a'])}\n"
        f"[127.0.0.1]:40022 {public_line(keys['b'])}\n"
        f"@cert-authority *.lab {public_line(keys['ca'])}\n"
    )
    subprocess.run(["ssh-keygen", "-H", "-f", str(known_hosts)], check=True, capture_output=True)
    text = known_hosts.read_text()
    assert "jetson" not in text and "127.0.0.1" not in text and text.count("|1|") == 2
    entries = parse_known_hosts(text)
    assert [entry.marker for entry in entries] == ["", "", "@cert-authority"]
    assert [entry.matches("jetson") for entry in entries] == [True, False, False]
    assert [entry.matches("JETSON") for entry in entries] == [True, False, False]
    assert [entry.matches("[127.0.0.1]:40022") for entry in entries] == [False, True, False]
    assert not any(entry.matches("127.0.0.1") for entry in entries)
    assert entries[1].blob == presented(keys["b"]).asbytes()


# --- the parser --------------------------------------------------------------------------


def test_parser_reads_markers_lists_and_ports_and_skips_corrupt_lines(known_hosts: Path, keys: dict[str, Path]) -> None:
    a, b, ec, rsa, ca = (public_line(keys[name]) for name in ("a", "b", "ecdsa", "rsa", "ca"))
    a_type, a_data = a.split()
    good = [
        f"jetson,10.0.0.7 {a}",
        f"[jetson]:2222 {ec} a trailing comment",
        f"\t  other  {rsa}",
        f"@cert-authority *.lab {ca}",
        f"@revoked * {b}",
        "legacy ssh-dss AAAAB3NzaC1kc3MAAAADAAAA",
    ]
    corrupt = [
        "# a comment",
        "",
        f"   # indented comment {b}",
        "short line",
        f"jetson {a_type}",
        f"jetson {a_type} AAAA!!notbase64",
        f"jetson {a_type} AAAA",
        f"jetson {a_type} {a_data[:-8]}",  # truncated: paramiko would pad it with zeros
        f"jetson ssh-rsa {a_data}",  # the blob is an ed25519 key
        f"@revoked @cert-authority * {b}",  # one marker only
        f"@unknown-marker * {b}",
        f"|1|notbase64|abc= {a}",  # a broken hash
        f"|2|{base64.b64encode(bytes(20)).decode()}|abc= {a}",
        f"jetson ssh-foo {a_data}",
    ]
    known_hosts.write_text("\n".join(corrupt[:7] + good[:3] + corrupt[7:] + good[3:]) + "\n")
    entries = parse_known_hosts(known_hosts.read_text())
    assert [(entry.marker, entry.hosts, entry.key_type) for entry in entries] == [
        ("", "jetson,10.0.0.7", "ssh-ed25519"),
        ("", "[jetson]:2222", "ecdsa-sha2-nistp256"),
        ("", "other", "ssh-rsa"),
        ("@cert-authority", "*.lab", "ssh-ed25519"),
        ("@revoked", "*", "ssh-ed25519"),
        ("", "legacy", "ssh-dss"),
    ]
    assert entries[2].blob == presented(keys["rsa"]).asbytes()
    assert entries[0].matches("10.0.0.7") and not entries[1].matches("jetson")


def test_missing_known_hosts_is_empty(tmp_path: Path) -> None:
    check = HostKeyCheck(tmp_path / "nope", False, Recorder())
    assert check.entries_for("jetson") == []


def test_unreadable_known_hosts_is_explained(tmp_path: Path) -> None:
    check = HostKeyCheck(tmp_path, False, Recorder())  # a directory
    with pytest.raises(ConnectionFailed) as info:
        check.entries_for("jetson")
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


# --- plain keys --------------------------------------------------------------------------


def test_any_key_of_the_presented_type_is_accepted(known_hosts: Path, keys: dict[str, Path]) -> None:
    check, recorder = check_with(
        known_hosts,
        f"jetson-01.lab {public_line(keys['b'])}\n"
        f"other.lab {public_line(keys['a'])}\n"
        f"*.lab,!nothing {public_line(keys['ecdsa'])}\n"
        f"jetson-01.lab {public_line(keys['a'])}\n",
    )
    check.verify(DEVICE, presented(keys["a"]))
    check.verify(DEVICE, presented(keys["ecdsa"]))
    assert recorder.accepted == []


def test_a_known_key_of_a_hashed_entry_with_a_port_is_accepted(known_hosts: Path, keys: dict[str, Path]) -> None:
    check, _ = check_with(known_hosts, f"{JUMP.name} {public_line(keys['rsa'])}\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(known_hosts)], check=True, capture_output=True)
    check.verify(JUMP, presented(keys["rsa"]))
    with pytest.raises(UnknownHostKey):
        check.verify(Hop("bastion.lab", 22, "jump host"), presented(keys["rsa"]))


def test_unknown_key_is_refused(known_hosts: Path, keys: dict[str, Path]) -> None:
    check, recorder = check_with(known_hosts, f"other.lab {public_line(keys['a'])}\n")
    with pytest.raises(UnknownHostKey) as info:
        check.verify(JUMP, presented(keys["a"]))
    message = str(info.value)
    assert message.startswith(f"The jump host {JUMP.name} is not in {known_hosts}")
    assert fingerprint(presented(keys["a"])) in message
    assert "--accept-new-host-key" in message and "\n" not in message
    assert recorder.accepted == []
    assert known_hosts.read_text() == f"other.lab {public_line(keys['a'])}\n"


def test_accepted_key_is_appended_and_reported(tmp_path: Path, keys: dict[str, Path]) -> None:
    known_hosts = tmp_path / "fresh" / ".ssh" / "known_hosts"
    check, recorder = check_with(known_hosts, None, accept_new=True)
    check.verify(JUMP, presented(keys["rsa"]))
    assert known_hosts.read_text() == f"{JUMP.name} {public_line(keys['rsa'])}\n"
    assert stat.S_IMODE(known_hosts.stat().st_mode) == 0o600
    assert stat.S_IMODE(known_hosts.parent.stat().st_mode) == 0o700
    assert recorder.accepted == [(JUMP.name, fingerprint(presented(keys["rsa"])))]
    # Known now: nothing asked, nothing added; another host is added after it.
    check.verify(JUMP, presented(keys["rsa"]))
    check.verify(Hop("JETSON-01.lab", 22, "device"), presented(keys["a"]))
    assert known_hosts.read_text().splitlines() == [
        f"{JUMP.name} {public_line(keys['rsa'])}",
        f"jetson-01.lab {public_line(keys['a'])}",
    ]
    assert len(recorder.accepted) == 2
    found = subprocess.run(["ssh-keygen", "-F", JUMP.name, "-f", str(known_hosts)], capture_output=True, text=True)
    assert found.returncode == 0 and public_line(keys["rsa"]).split()[1] in found.stdout


def test_append_keeps_content_and_mode_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text("# mine\nlast line without newline")
    path.chmod(0o644)
    append_line(path, "new line\n")
    assert path.read_text() == "# mine\nlast line without newline\nnew line\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["known_hosts"]


def test_append_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "known_hosts"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "known_hosts"
    link.symlink_to(real)
    append_line(link, "new\n")
    assert link.is_symlink() and real.read_text() == "old\nnew\n"


def test_a_failed_append_leaves_the_old_file(
    tmp_path: Path, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "known_hosts"
    path.write_text("old\n")

    def no_replace(source: str, target: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_replace)
    check = HostKeyCheck(path, True, Recorder())
    with pytest.raises(ConnectionFailed, match="No space left on device"):
        check.verify(DEVICE, presented(keys["a"]))
    assert path.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["known_hosts"]


def test_changed_key_of_the_device_names_both_fingerprints_and_the_fix(
    known_hosts: Path, keys: dict[str, Path]
) -> None:
    text = (
        f"jetson-01.lab {public_line(keys['b'])}\n"
        f"*.lab {public_line(keys['ca'])}\n"
        f"jetson-01.lab {public_line(keys['ecdsa'])}\n"
    )
    for accept_new in (False, True):
        check, recorder = check_with(known_hosts, text, accept_new)
        with pytest.raises(HostKeyChanged) as info:
            check.verify(DEVICE, presented(keys["a"]))
        message = str(info.value)
        assert message.startswith("The host key of the device jetson-01.lab changed")
        for old in ("b", "ca"):
            assert fingerprint(presented(keys[old])) in message
        assert fingerprint(presented(keys["ecdsa"])) not in message  # another type, still trusted
        assert fingerprint(presented(keys["a"])) in message
        assert f"`ssh-keygen -f {known_hosts} -R 'jetson-01.lab'`" in message
        assert message.endswith("connect again with --accept-new-host-key.")
        assert "\n" not in message
        assert recorder.accepted == []
        assert known_hosts.read_text() == text


def test_changed_key_of_a_jump_host_names_its_own_entry(known_hosts: Path, keys: dict[str, Path]) -> None:
    check, _ = check_with(
        known_hosts,
        f"{DEVICE.name} {public_line(keys['a'])}\n{JUMP.name} {public_line(keys['b'])}\n",
        accept_new=True,
    )
    check.verify(DEVICE, presented(keys["a"]))
    with pytest.raises(HostKeyChanged) as info:
        check.verify(JUMP, presented(keys["a"]))
    message = str(info.value)
    assert message.startswith(f"The host key of the jump host {JUMP.name} changed")
    assert f"-R '{JUMP.name}'" in message
    assert "jetson-01.lab" not in message
    assert fingerprint(presented(keys["b"])) in message and fingerprint(presented(keys["a"])) in message


def test_a_type_not_known_for_a_known_host_counts_as_changed(known_hosts: Path, keys: dict[str, Path]) -> None:
    check, _ = check_with(known_hosts, f"jetson-01.lab {public_line(keys['ecdsa'])}\n", accept_new=True)
    with pytest.raises(HostKeyChanged) as info:
        check.verify(DEVICE, presented(keys["a"]))
    message = str(info.value)
    assert f"{fingerprint(presented(keys['ecdsa']))} (ecdsa-sha2-nistp256)" in message
    assert f"{fingerprint(presented(keys['a']))} (ssh-ed25519)" in message


def test_revoked_key_is_refused_whatever_else_says_yes(known_hosts: Path, keys: dict[str, Path]) -> None:
    a = public_line(keys["a"])
    for text in (f"@revoked * {a}\njetson-01.lab {a}\n", f"@revoked *.lab {a}\n"):
        check, recorder = check_with(known_hosts, text, accept_new=True)
        with pytest.raises(HostKeyRevoked) as info:
            check.verify(DEVICE, presented(keys["a"]))
        message = str(info.value)
        assert "device jetson-01.lab" in message and "@revoked" in message and str(known_hosts) in message
        assert fingerprint(presented(keys["a"])) in message and "\n" not in message
        assert recorder.accepted == [] and known_hosts.read_text() == text
    # A @revoked line for other hosts does not cover this one.
    check, _ = check_with(known_hosts, f"@revoked other.lab {a}\njetson-01.lab {a}\n")
    check.verify(DEVICE, presented(keys["a"]))


# --- certificates ------------------------------------------------------------------------


def ca_line(ca: Path, hosts: str = "*.lab") -> str:
    return f"@cert-authority {hosts} {public_line(ca)}\n"


@pytest.mark.parametrize(("host_key", "ca"), [("a", "ca"), ("ecdsa", "ca"), ("rsa", "rsa_ca"), ("a", "rsa_ca")])
def test_valid_host_certificate_is_accepted_without_a_plain_entry(
    known_hosts: Path, keys: dict[str, Path], cert_dir: Path, host_key: str, ca: str
) -> None:
    cert = sign(keys[ca], cert_dir / host_key)
    key = presented(cert)
    assert key.public_blob is not None and key.public_blob.key_type.endswith(CERT_SUFFIX)
    check, recorder = check_with(known_hosts, ca_line(keys[ca]), accept_new=True)
    check.verify(DEVICE, key)
    assert recorder.accepted == [] and known_hosts.read_text() == ca_line(keys[ca])


def test_certificate_without_principals_is_valid_for_any_host(
    known_hosts: Path, keys: dict[str, Path], cert_dir: Path
) -> None:
    check, _ = check_with(known_hosts, ca_line(keys["ca"], "*"))
    check.verify(JUMP, presented(sign(keys["ca"], cert_dir / "a", principals=None)))


@pytest.mark.parametrize(
    ("signing", "reason"),
    [
        ({"validity": "-2d:-1d"}, "expired at"),
        ({"validity": "+1d:+2d"}, "is not valid before"),
        ({"principals": "jetson-02.lab,other"}, "is for jetson-02.lab, other, not jetson-01.lab"),
        ({"ca": "ca2"}, "is signed by CA SHA256:"),
        ({"host": False}, "is a user certificate"),
        ({"options": ("force-command=ls",)}, "carries critical options (force-command)"),
    ],
)
def test_invalid_certificate_is_refused_and_says_why(
    known_hosts: Path, keys: dict[str, Path], cert_dir: Path, signing: dict[str, object], reason: str
) -> None:
    ca = keys[str(signing.pop("ca", "ca"))]
    cert = sign(ca, cert_dir / "a", **signing)  # type: ignore[arg-type]
    check, recorder = check_with(known_hosts, ca_line(keys["ca"]))
    with pytest.raises(UnknownHostKey) as info:
        check.verify(DEVICE, presented(cert))
    message = str(info.value)
    assert f"its host certificate {reason}" in message, message
    assert fingerprint(presented(keys["a"])) in message and "--accept-new-host-key" in message
    assert "\n" not in message and recorder.accepted == []


def test_certificate_of_a_ca_for_other_hosts_is_not_trusted(
    known_hosts: Path, keys: dict[str, Path], cert_dir: Path
) -> None:
    check, _ = check_with(known_hosts, ca_line(keys["ca"], "*.example.com,!jetson-01.lab"))
    with pytest.raises(UnknownHostKey, match="no @cert-authority line trusts"):
        check.verify(DEVICE, presented(sign(keys["ca"], cert_dir / "a")))


def test_refused_certificate_falls_back_to_its_plain_key(
    known_hosts: Path, keys: dict[str, Path], cert_dir: Path
) -> None:
    expired = presented(sign(keys["ca"], cert_dir / "a", validity="-2d:-1d"))
    check, recorder = check_with(known_hosts, ca_line(keys["ca"]) + f"jetson-01.lab {public_line(keys['a'])}\n")
    check.verify(DEVICE, expired)
    # With --accept-new-host-key OpenSSH trusts the plain key alone, and so does edgekit.
    check, recorder = check_with(known_hosts, ca_line(keys["ca"]), accept_new=True)
    check.verify(DEVICE, expired)
    assert recorder.accepted == [(DEVICE.name, fingerprint(presented(keys["a"])))]
    assert known_hosts.read_text() == ca_line(keys["ca"]) + f"jetson-01.lab {public_line(keys['a'])}\n"


def test_certificate_from_a_revoked_ca_or_for_a_revoked_key_is_refused(
    known_hosts: Path, keys: dict[str, Path], cert_dir: Path
) -> None:
    cert = presented(sign(keys["ca"], cert_dir / "a"))
    check, _ = check_with(known_hosts, ca_line(keys["ca"]) + f"@revoked * {public_line(keys['ca'])}\n", True)
    with pytest.raises(HostKeyRevoked) as info:
        check.verify(DEVICE, cert)
    assert fingerprint(presented(keys["ca"])) in str(info.value) and "CA" in str(info.value)
    check, _ = check_with(known_hosts, ca_line(keys["ca"]) + f"@revoked * {public_line(keys['a'])}\n", True)
    with pytest.raises(HostKeyRevoked, match="is marked @revoked"):
        check.verify(DEVICE, cert)


def certificate_blob(path: Path) -> bytes:
    return base64.b64decode(path.read_text().split()[1])


def test_tampered_certificate_does_not_verify(keys: dict[str, Path], cert_dir: Path) -> None:
    blob = certificate_blob(sign(keys["ca"], cert_dir / "a", principals="jetson-01.lab"))
    forged = parse_certificate(blob.replace(b"jetson-01.lab", b"jetson-02.lab"))
    trusted = [presented(keys["ca"]).asbytes()]
    assert certificate_problem(forged, "jetson-02.lab", trusted, int(time.time())) == (
        "has a signature that does not verify"
    )
    assert certificate_problem(parse_certificate(blob), "jetson-01.lab", trusted, int(time.time())) is None


def test_certificate_fields_and_malformed_blobs(keys: dict[str, Path], cert_dir: Path) -> None:
    blob = certificate_blob(sign(keys["rsa_ca"], cert_dir / "rsa", principals="a,b", validity="20300615:20310101"))
    cert = parse_certificate(blob)
    assert cert.key == presented(keys["rsa"]).asbytes()
    assert cert.cert_type == 2 and cert.principals == ("a", "b") and cert.critical_options == ()
    assert cert.signature_key == presented(keys["rsa_ca"]).asbytes()
    assert time.gmtime(cert.valid_after)[:2] == (2030, 6)
    assert certificate_problem(cert, "a", [cert.signature_key], int(time.time())) == (
        f"is not valid before {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(cert.valid_after))}"
    )
    forever = dataclasses.replace(cert, valid_before=2**64 - 1)
    assert certificate_problem(forever, "b", [cert.signature_key], 2**40) is None
    assert certificate_problem(forever, "b", [cert.signature_key], 2**64) == "expired at 9999-12-31 23:59:59 UTC"
    for broken in (blob[:-1], blob + b"\x00", blob[:40], base64.b64decode(public_line(keys["a"]).split()[1])):
        with pytest.raises(ValueError):
            parse_certificate(broken)


def test_certificate_with_the_wrong_key_is_not_used(known_hosts: Path, keys: dict[str, Path], cert_dir: Path) -> None:
    cert = sign(keys["ca"], cert_dir / "a")
    other = presented(keys["b"])
    other.public_blob = presented(cert).public_blob
    check, _ = check_with(known_hosts, ca_line(keys["ca"]))
    with pytest.raises(UnknownHostKey, match="certifies another key"):
        check.verify(DEVICE, other)


# --- host key algorithm order, the transport, install() -----------------------------------


def entry(marker: str, key_type: str) -> KnownHost:
    return KnownHost(marker, "*", key_type, b"")


def test_host_key_order_without_known_keys_is_paramikos() -> None:
    certs = [algorithm + CERT_SUFFIX for algorithm in PARAMIKO_ORDER]
    assert host_key_order([], PARAMIKO_ORDER) == [*PARAMIKO_ORDER, *certs]


def test_host_key_order_prefers_known_types_then_certificates_of_a_ca() -> None:
    rsa_first = host_key_order([entry("", "ssh-rsa"), entry("@revoked", "ssh-ed25519")], PARAMIKO_ORDER)
    assert rsa_first[:3] == ["rsa-sha2-512", "rsa-sha2-256", "ssh-ed25519"]
    ecdsa_first = host_key_order([entry("", "ecdsa-sha2-nistp384")], PARAMIKO_ORDER)
    assert ecdsa_first[:2] == ["ecdsa-sha2-nistp384", "ssh-ed25519"]
    with_ca = host_key_order([entry("", "ssh-rsa"), entry("@cert-authority", "ssh-ed25519")], PARAMIKO_ORDER)
    assert with_ca[:8] == [algorithm + CERT_SUFFIX for algorithm in PARAMIKO_ORDER] + ["rsa-sha2-512", "rsa-sha2-256"]
    for order in (rsa_first, ecdsa_first, with_ca):
        assert sorted(order) == sorted(host_key_order([], PARAMIKO_ORDER))


@pytest.fixture
def sock() -> Iterator[socket.socket]:
    ours, theirs = socket.socketpair()
    yield ours
    ours.close()
    theirs.close()


def test_transport_offers_the_order_once_each(known_hosts: Path, keys: dict[str, Path], sock: socket.socket) -> None:
    check, _ = check_with(known_hosts, ca_line(keys["ca"]) + f"jetson-01.lab {public_line(keys['rsa'])}\n")
    transport = check.transport(DEVICE, sock, disabled_algorithms={"keys": ["rsa-sha2-256" + CERT_SUFFIX]})
    offered = list(transport.preferred_keys)
    assert offered[:7] == [
        "ssh-ed25519" + CERT_SUFFIX,
        "ecdsa-sha2-nistp256" + CERT_SUFFIX,
        "ecdsa-sha2-nistp384" + CERT_SUFFIX,
        "ecdsa-sha2-nistp521" + CERT_SUFFIX,
        "rsa-sha2-512" + CERT_SUFFIX,
        "rsa-sha2-512",
        "rsa-sha2-256",
    ]
    assert len(offered) == len(set(offered)) == 11
    assert all(name.count(CERT_SUFFIX) <= 1 for name in offered)


def test_install_empties_the_client_store_and_sets_the_transport_factory(
    known_hosts: Path, keys: dict[str, Path], sock: socket.socket
) -> None:
    client = paramiko.SSHClient()
    client.get_host_keys().add("jetson-01.lab", "ssh-ed25519", presented(keys["b"]))
    connect_kwargs: dict[str, object] = {"key_filename": ["id"]}
    check, _ = check_with(known_hosts, f"jetson-01.lab {public_line(keys['ecdsa'])}\n")
    check.install(client, connect_kwargs, "Jetson-01.lab", 22, "device")
    assert len(client.get_host_keys()) == 0
    assert connect_kwargs["key_filename"] == ["id"]
    factory = connect_kwargs["transport_factory"]
    assert callable(factory)
    transport = factory(sock, disabled_algorithms=None)
    assert isinstance(transport, paramiko.Transport)
    assert transport.preferred_keys[0] == "ecdsa-sha2-nistp256"


def test_a_damaged_hashed_entry_matches_nothing_and_breaks_nothing() -> None:
    # compare_digest refuses a str with non-ASCII in it: the line must just not match.
    damaged = "|1|c2FsdHNhbHRzYWx0c2FsdHNhbHQ=|hashé== ssh-ed25519 AAAA"
    assert host_matches("jetson", damaged.split()[0]) is False
