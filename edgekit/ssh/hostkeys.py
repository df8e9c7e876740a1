"""Host key trust as OpenSSH has it: every hop's key is checked against known_hosts, never added silently.

Fabric 3 hard-codes ``AutoAddPolicy`` (fabric#2071) and paramiko's ``HostKeys`` keeps one key per
type and host and cannot read marker lines, so edgekit reads known_hosts itself: host patterns,
hashed names, ``[host]:port``, several keys per host, ``@revoked`` and ``@cert-authority`` with
OpenSSH host certificates. :class:`HostKeyCheck` installs that check on each hop's SSHClient.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import hmac
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from edgekit.errors import ConnectionFailed, HostKeyChanged, HostKeyRevoked, UnknownHostKey

CA_MARKER = "@cert-authority"
REVOKED_MARKER = "@revoked"
CERT_SUFFIX = "-cert-v01@openssh.com"
HOST_CERTIFICATE = 2
# How many SSH strings follow the type name in a public key (and in a certificate, after the nonce).
_KEY_FIELDS = {
    "ssh-ed25519": 1,
    "ecdsa-sha2-nistp256": 2,
    "ecdsa-sha2-nistp384": 2,
    "ecdsa-sha2-nistp521": 2,
    "ssh-rsa": 2,
}
# Key types OpenSSH knows and paramiko cannot load: a line with one still makes its host known.
_FOREIGN_KEY_TYPES = frozenset({"ssh-dss", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"})
# OpenSSH's default CASignatureAlgorithms, less the security-key ones paramiko cannot verify.
_CA_SIGNATURE_ALGORITHMS = frozenset(
    {"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "rsa-sha2-512", "rsa-sha2-256"}
)
_HASH_MAGIC = "|1|"
_LAST_PRINTABLE_TIME = 253402300799  # 9999-12-31: "forever" certificates end at 2**64 - 1


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form, so it can be compared with ``ssh-keygen -lf``."""
    return blob_fingerprint(key.asbytes())


def blob_fingerprint(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def known_hosts_name(host: str, port: int) -> str:
    # OpenSSH records non-default ports as [host]:port; a bare host would not match.
    return host if port == 22 else f"[{host}]:{port}"


@dataclass(frozen=True)
class KnownHost:
    """One usable known_hosts line: its marker ("" for none), host field, key type and key blob."""

    marker: str
    hosts: str
    key_type: str
    blob: bytes

    def matches(self, name: str) -> bool:
        return host_matches(name, self.hosts)


def parse_known_hosts(text: str) -> list[KnownHost]:
    """The usable lines of a known_hosts file; comments and corrupt lines are skipped, as OpenSSH does."""
    return [entry for entry in map(_parse_line, text.splitlines()) if entry is not None]


def _parse_line(line: str) -> KnownHost | None:
    fields = line.split()
    if not fields or fields[0].startswith("#"):
        return None
    marker = ""
    if fields[0] in (CA_MARKER, REVOKED_MARKER):
        marker, fields = fields[0], fields[1:]
    if len(fields) < 3 or fields[0].startswith(("@", "#")):
        return None
    hosts, key_type = fields[0], fields[1]
    if hosts.startswith("|") and _hash_salt(hosts) is None:
        return None
    blob = _decode_key(key_type, fields[2])
    return None if blob is None else KnownHost(marker, hosts, key_type, blob)


def _decode_key(key_type: str, data: str) -> bytes | None:
    try:
        blob = base64.b64decode(data, validate=True)
    except binascii.Error:
        return None
    if key_type in _FOREIGN_KEY_TYPES:
        return blob if _blob_type(blob) == key_type else None
    key = load_public_key(blob)
    return blob if key is not None and key.get_name() == key_type else None


def load_public_key(blob: bytes) -> paramiko.PKey | None:
    """The plain public key ``blob`` encodes, or None for a corrupt blob or one of another kind."""
    key_type = _blob_type(blob)
    if key_type not in _KEY_FIELDS:
        return None
    try:
        key = paramiko.PKey.from_type_string(key_type, blob)
    except (ValueError, paramiko.SSHException):
        return None
    # paramiko pads a short blob with zeros and ignores trailing bytes; OpenSSH refuses both.
    return key if key.asbytes() == blob else None


def _blob_type(blob: bytes) -> str | None:
    try:
        return _Reader(blob).text()
    except ValueError:
        return None


def host_matches(name: str, hosts: str) -> bool:
    """Whether a known_hosts host field names ``name`` (a known_hosts name: ``host`` or ``[host]:port``).

    As OpenSSH's match_hostname: comma-separated ``*``/``?`` patterns, case-insensitive, where a
    matching ``!pattern`` rules the line out whatever else matches; or one hashed ``|1|salt|hash``.
    """
    name = name.lower()
    if hosts.startswith("|"):
        salt = _hash_salt(hosts)
        # As bytes: compare_digest refuses a str with non-ASCII in it, which a damaged line may hold.
        return salt is not None and hmac.compare_digest(_hashed_name(name, salt).encode(), hosts.encode())
    matched = False
    for pattern in hosts.lower().split(","):
        negated = pattern.startswith("!")
        if _glob_matches(name, pattern[1:] if negated else pattern):
            if negated:
                return False
            matched = True
    return matched


def _glob_matches(name: str, pattern: str) -> bool:
    # fnmatch would read "[127.0.0.1]:2222" as a character class; OpenSSH globs know only * and ?.
    regex = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.fullmatch(regex, name, re.DOTALL) is not None


def _hash_salt(hosts: str) -> bytes | None:
    salt, separator, _ = hosts.removeprefix(_HASH_MAGIC).partition("|")
    if not hosts.startswith(_HASH_MAGIC) or not separator:
        return None
    try:
        decoded = base64.b64decode(salt, validate=True)
    except binascii.Error:
        return None
    return decoded if len(decoded) == hashlib.sha1().digest_size else None


def _hashed_name(name: str, salt: bytes) -> str:
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"{_HASH_MAGIC}{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def host_key_order(entries: Sequence[KnownHost], available: Sequence[str]) -> list[str]:
    """Host key algorithms in OpenSSH's order for a host with these known_hosts ``entries``.

    Certificate types first when a @cert-authority line covers the host, then the types of the
    keys known for it, then the rest of ``available`` (paramiko's plain types) and their cert types.
    """
    certs = [algorithm + CERT_SUFFIX for algorithm in available]
    known_types = {entry.key_type for entry in entries if not entry.marker}
    first = certs if any(entry.marker == CA_MARKER for entry in entries) else []
    first = first + [algorithm for algorithm in available if _key_type(algorithm) in known_types]
    return first + [algorithm for algorithm in [*available, *certs] if algorithm not in first]


def _key_type(algorithm: str) -> str:
    # rsa-sha2-256/512 are signature algorithms over an ssh-rsa key.
    return "ssh-rsa" if algorithm.startswith("rsa-sha2-") else algorithm


@dataclass(frozen=True)
class HostCertificate:
    """The fields of an OpenSSH certificate (PROTOCOL.certkeys) that decide whether a host may use it."""

    key: bytes  # the certified plain public key, as a public key blob
    cert_type: int  # 1 user, 2 host
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int
    critical_options: tuple[str, ...]
    signature_key: bytes
    signature: bytes
    signed: bytes  # the certificate up to its signature: what the CA signed


def parse_certificate(blob: bytes) -> HostCertificate:
    """Parse an OpenSSH certificate blob; ValueError if it is malformed or of a type paramiko cannot use."""
    reader = _Reader(blob)
    cert_type_name = reader.text()
    key_type = cert_type_name.removesuffix(CERT_SUFFIX)
    if key_type == cert_type_name or key_type not in _KEY_FIELDS:
        raise ValueError(f"{cert_type_name} is not a certificate type edgekit can check")
    reader.string()  # nonce
    key = _ssh_string(key_type.encode()) + b"".join(_ssh_string(reader.string()) for _ in range(_KEY_FIELDS[key_type]))
    reader.uint64()  # serial
    cert_type = reader.uint32()
    reader.string()  # key id
    principals = tuple(_Reader.strings(reader.string()))
    valid_after, valid_before = reader.uint64(), reader.uint64()
    critical_options = _option_names(reader.string())
    _option_names(reader.string())  # extensions: none is defined for hosts, but they must be well formed
    reader.string()  # reserved
    signature_key = reader.string()
    signed = blob[: reader.offset]
    signature = reader.string()
    if not reader.done:
        raise ValueError("data after the certificate's signature")
    return HostCertificate(
        key, cert_type, principals, valid_after, valid_before, critical_options, signature_key, signature, signed
    )


def certificate_problem(cert: HostCertificate, host: str, trusted_cas: Collection[bytes], now: int) -> str | None:
    """Why OpenSSH would refuse ``cert`` from ``host`` (a phrase after "its host certificate"), or None.

    ``trusted_cas`` are the key blobs of the @cert-authority lines that cover the host.
    """
    ca = load_public_key(cert.signature_key)
    if ca is None:
        return "is signed by a key type edgekit cannot check"
    algorithm = _blob_type(cert.signature)
    if algorithm not in _CA_SIGNATURE_ALGORITHMS:
        return f"is signed with {algorithm}, which OpenSSH no longer accepts from a CA"
    if not ca.verify_ssh_sig(cert.signed, paramiko.Message(cert.signature)):
        return "has a signature that does not verify"
    if cert.signature_key not in trusted_cas:
        return f"is signed by CA {blob_fingerprint(cert.signature_key)}, which no @cert-authority line trusts for it"
    if cert.cert_type != HOST_CERTIFICATE:
        return "is a user certificate, not a host certificate"
    if now < cert.valid_after:
        return f"is not valid before {_utc(cert.valid_after)}"
    if now >= cert.valid_before:
        return f"expired at {_utc(cert.valid_before)}"
    # OpenSSH compares host principals exactly; an empty list allows any host.
    if cert.principals and host.lower() not in cert.principals:
        return f"is for {', '.join(cert.principals)}, not {host}"
    if cert.critical_options:
        return f"carries critical options ({', '.join(cert.critical_options)}), which no host certificate may"
    return None


def _utc(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(min(timestamp, _LAST_PRINTABLE_TIME)))


def _option_names(section: bytes) -> tuple[str, ...]:
    names = []
    reader = _Reader(section)
    while not reader.done:
        names.append(reader.text())
        reader.string()
    return tuple(names)


def _ssh_string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


class _Reader:
    """SSH wire format, strict: paramiko's Message pads a truncated field with zeros instead of failing."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    @property
    def done(self) -> bool:
        return self.offset == len(self.data)

    def take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise ValueError("truncated SSH data")
        self.offset += size
        return self.data[self.offset - size : self.offset]

    def uint32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def uint64(self) -> int:
        return int.from_bytes(self.take(8), "big")

    def string(self) -> bytes:
        return self.take(self.uint32())

    def text(self) -> str:
        return self.string().decode()

    @classmethod
    def strings(cls, data: bytes) -> list[str]:
        reader = cls(data)
        found = []
        while not reader.done:
            found.append(reader.text())
        return found


class HostKeyCheck:
    """OpenSSH's known_hosts checking for every hop: refuse unknown keys unless ``accept_new``.

    An accepted key is appended to ``known_hosts`` and told to ``on_accept(name, fingerprint)``;
    a changed or revoked key is refused whatever ``accept_new`` says.
    """

    def __init__(self, known_hosts: Path, accept_new: bool, on_accept: Callable[[str, str], None]) -> None:
        self.known_hosts = known_hosts
        self.accept_new = accept_new
        self.on_accept = on_accept

    def install(
        self, client: paramiko.SSHClient, connect_kwargs: dict[str, object], host: str, port: int, role: str
    ) -> None:
        """role is "device" or "jump host"; host/port are the hop's real HostName and port (port 22 if None)."""
        hop = Hop(host, port, role)
        # With no key of its own, paramiko compares nothing itself and hands every key to the policy.
        client.get_host_keys().clear()
        client.set_missing_host_key_policy(_HopPolicy(self, hop))
        connect_kwargs["transport_factory"] = functools.partial(self.transport, hop)

    def transport(
        self, hop: Hop, sock: socket.socket | paramiko.Channel | paramiko.ProxyCommand, **options: Any
    ) -> paramiko.Transport:
        """SSHClient's transport_factory: paramiko's Transport, offering host key algorithms in OpenSSH's order."""
        transport = _HostKeyTransport(sock, **options)
        security = transport.get_security_options()
        security.key_types = host_key_order(self.entries_for(hop.name), security.key_types)
        return transport

    def verify(self, hop: Hop, key: paramiko.PKey) -> None:
        """Accept ``key`` from ``hop`` as OpenSSH would, or raise the error that says why not."""
        entries = self.entries_for(hop.name)
        cert, cert_problem = _presented_certificate(key)
        self._refuse_revoked(hop, entries, key, cert)
        if cert is not None:
            trusted = [entry.blob for entry in entries if entry.marker == CA_MARKER]
            cert_problem = certificate_problem(cert, hop.host, trusted, int(time.time()))
            if cert_problem is None:
                return
        # As OpenSSH: a certificate that is not accepted still leaves its plain key to be checked.
        known = [entry for entry in entries if not entry.marker]
        if any(entry.blob == key.asbytes() for entry in known):
            return
        if known:
            raise self._changed(hop, known, key)
        if not self.accept_new:
            raise self._unknown(hop, key, cert_problem)
        self._remember(hop, key)
        self.on_accept(hop.name, fingerprint(key))

    def entries_for(self, name: str) -> list[KnownHost]:
        """The known_hosts lines (marked or not) that cover the known_hosts name ``name``."""
        try:
            text = self.known_hosts.read_text(errors="replace")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ConnectionFailed(
                f"edgekit cannot read {self.known_hosts} ({exc.strerror}); fix its permissions or pass another "
                "--known-hosts."
            ) from exc
        return [entry for entry in parse_known_hosts(text) if entry.matches(name)]

    def _remember(self, hop: Hop, key: paramiko.PKey) -> None:
        try:
            append_line(self.known_hosts, f"{hop.name} {key.get_name()} {key.get_base64()}\n")
        except OSError as exc:
            raise ConnectionFailed(
                f"edgekit cannot add the {hop.role}'s host key to {self.known_hosts} ({exc.strerror}); fix its "
                "permissions or pass another --known-hosts."
            ) from exc

    def _refuse_revoked(
        self, hop: Hop, entries: Sequence[KnownHost], key: paramiko.PKey, cert: HostCertificate | None
    ) -> None:
        revoked = {entry.blob for entry in entries if entry.marker == REVOKED_MARKER}
        if key.asbytes() in revoked:
            raise HostKeyRevoked(
                f"The host key of the {hop.role} {hop.name} ({fingerprint(key)}) is marked @revoked in "
                f"{self.known_hosts}, so edgekit will not connect; give the {hop.role} a new host key, then "
                "connect again."
            )
        if cert is not None and cert.signature_key in revoked:
            raise HostKeyRevoked(
                f"The host certificate of the {hop.role} {hop.name} is signed by CA "
                f"{blob_fingerprint(cert.signature_key)}, which {self.known_hosts} marks @revoked, so edgekit will "
                f"not connect; give the {hop.role} a certificate from a CA that is not revoked, then connect again."
            )

    def _changed(self, hop: Hop, known: Sequence[KnownHost], key: paramiko.PKey) -> HostKeyChanged:
        # The keys of the presented type were replaced; when none is of that type, all known ones were.
        same_type = [entry for entry in known if entry.key_type == key.get_name()] or known
        old = ", ".join(f"{blob_fingerprint(entry.blob)} ({entry.key_type})" for entry in same_type)
        return HostKeyChanged(
            f"The host key of the {hop.role} {hop.name} changed: {self.known_hosts} holds {old} but it now "
            f"presents {fingerprint(key)} ({key.get_name()}), which means a re-installed {hop.role} or someone "
            f"in the middle; if it was re-installed, run `ssh-keygen -f {self.known_hosts} -R '{hop.name}'` and "
            "connect again with --accept-new-host-key."
        )

    def _unknown(self, hop: Hop, key: paramiko.PKey, cert_problem: str | None) -> UnknownHostKey:
        found = f"its {key.get_name()} key is {fingerprint(key)}"
        if cert_problem is None:
            return UnknownHostKey(
                f"The {hop.role} {hop.name} is not in {self.known_hosts} ({found}); check that fingerprint on the "
                f"{hop.role} and connect again with --accept-new-host-key to trust it."
            )
        return UnknownHostKey(
            f"The {hop.role} {hop.name} is not in {self.known_hosts} ({found}, and its host certificate "
            f"{cert_problem}); give the {hop.role} a valid certificate, or check that fingerprint on it and "
            "connect again with --accept-new-host-key to trust the key alone."
        )


@dataclass(frozen=True)
class Hop:
    """One host of a connection: the device or a jump host, as its known_hosts lines name it."""

    host: str
    port: int
    role: str  # "device" or "jump host"

    @property
    def name(self) -> str:
        # OpenSSH lowercases the host name before it looks it up, adds it or checks a certificate.
        return known_hosts_name(self.host.lower(), self.port)


def _presented_certificate(key: paramiko.PKey) -> tuple[HostCertificate | None, str | None]:
    """The certificate a host presented with ``key``, or why it cannot be used."""
    blob = key.public_blob
    if blob is None or not blob.key_type.endswith(CERT_SUFFIX):
        return None, None
    try:
        cert = parse_certificate(blob.key_blob)
    except ValueError as exc:
        return None, f"is malformed ({exc})"
    if cert.key != key.asbytes():
        return None, "certifies another key than the one the host signed with"
    return cert, None


def append_line(path: Path, line: str) -> None:
    """Atomically replace ``path`` by its content plus ``line``, keeping its mode (0600 for a new file)."""
    # Through a symlinked known_hosts (dotfile managers) to the file itself, which the link keeps naming.
    path = path.resolve()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        old, mode = path.read_bytes(), stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        old, mode = b"", 0o600
    if old and not old.endswith(b"\n"):
        old += b"\n"
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(old + line.encode())
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    # The rename itself is only durable once the directory is on disk.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class _HostKeyTransport(paramiko.Transport):
    """A Transport that offers exactly the host key algorithms its key_types name, in that order."""

    @property
    def preferred_keys(self) -> Sequence[str]:
        # paramiko's own property appends every type's cert variant after all plain types, so a
        # certificate would never be chosen, and the cert types listed here would get a second suffix.
        disabled = set((self.disabled_algorithms or {}).get("keys", ()))
        return tuple(algorithm for algorithm in self.get_security_options().key_types if algorithm not in disabled)


class _HopPolicy(paramiko.MissingHostKeyPolicy):
    """paramiko's hook into :meth:`HostKeyCheck.verify`, called for every key since the client knows none."""

    def __init__(self, check: HostKeyCheck, hop: Hop) -> None:
        self.check = check
        self.hop = hop

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        # hostname is what paramiko dialled; the hop already holds it, with the role to name in errors.
        self.check.verify(self.hop, key)
