"""Whether this run boots Jetson twins: a plain ``pytest`` without root leaves the e2e tier out and says how
to run it; scripts/test requires the tier, so a machine that cannot boot twins fails there instead of passing."""

from __future__ import annotations

import os
import shutil

import pytest

# scripts/test sets this: the tier then runs whatever this machine lacks, and fails where it cannot boot.
REQUIRE_ENV = "EDGEKIT_E2E"
_HINT = pytest.StashKey[str]()


def e2e_blocker(euid: int, nspawn: str | None, required: bool) -> str | None:
    """Why this run cannot boot a twin, or None when the e2e tier runs."""
    if required:
        return None
    if euid != 0:
        return "they need root"
    if nspawn is None:
        return "they need systemd-nspawn"
    return None


def deselected_hint(count: int, blocker: str) -> str:
    return f"{count} e2e tests deselected ({blocker}); `sudo scripts/test` installs what they need and runs everything"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    e2e = [item for item in items if item.get_closest_marker("e2e") is not None]
    if not e2e:
        return
    required = os.environ.get(REQUIRE_ENV) == "required"
    blocker = e2e_blocker(os.geteuid(), shutil.which("systemd-nspawn"), required)
    if blocker is None:
        return
    items[:] = [item for item in items if item.get_closest_marker("e2e") is None]
    config.hook.pytest_deselected(items=e2e)
    config.stash[_HINT] = deselected_hint(len(e2e), blocker)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    hint = config.stash.get(_HINT, None)
    if hint is not None:
        terminalreporter.write_line(hint, yellow=True, bold=True)
