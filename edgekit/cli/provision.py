from __future__ import annotations


def provision_command() -> None:
    """Provision a device."""
