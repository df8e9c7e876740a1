"""Where to connect: ``[user@]host[:port]`` as deployers type it."""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.errors import EdgekitError


@dataclass(frozen=True)
class Target:
    host: str
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and self.port else self.host
        text = f"{self.user}@{host}" if self.user else host
        return f"{text}:{self.port}" if self.port else text


def parse_target(text: str) -> Target:
    """Parse ``[user@]host[:port]``; IPv6 literals go in brackets, as in ``[::1]:2222``."""
    user: str | None = None
    rest = text.strip()
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
        if not user:
            raise EdgekitError(f"The target {text!r} has an empty user name; write it as user@host.")
    port: int | None = None
    if rest.startswith("["):
        host, sep, tail = rest[1:].partition("]")
        if not sep:
            raise EdgekitError(f"The target {text!r} opens a bracket it never closes; write [::1]:22.")
        port_text = tail[1:] if tail.startswith(":") else tail
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
    else:
        host, port_text = rest, ""
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise EdgekitError(f"The port in {text!r} is not a number from 1 to 65535.")
        port = int(port_text)
    if not host:
        raise EdgekitError(f"The target {text!r} has no host name; write it as [user@]host[:port].")
    return Target(host=host, user=user, port=port)
