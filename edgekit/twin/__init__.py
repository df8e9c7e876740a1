"""The Jetson twin: a Debian rootfs booted with systemd-nspawn, a local stand-in for a Jetson."""

from edgekit.twin.machine import TwinInfo, twin_boot, twin_down, twin_exec, twin_power_off, twin_status, twin_up

__all__ = ["TwinInfo", "twin_boot", "twin_down", "twin_exec", "twin_power_off", "twin_status", "twin_up"]
