"""The systemd notify protocol, reimplemented so the agent needs no ``systemd`` package.

The protocol is documented as stable: one datagram of newline-separated KEY=VALUE pairs
sent to the socket named by $NOTIFY_SOCKET.
"""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send ``message`` to systemd; False when not run under a notify unit or the send failed."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        # Unset, or a vsock address that only a VM guest would be given.
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError:
        # systemd says to ignore notify failures: the service must keep working without it.
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings, or None when systemd does not watch this process."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        # The variables were inherited from a parent that systemd does watch.
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    # Half the timeout, as sd_watchdog_enabled(3) recommends, so one slow frame is no kill.
    return value / 2e6
