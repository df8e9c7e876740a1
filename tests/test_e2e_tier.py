"""The e2e tier leaves a plain ``pytest`` without root, and never a scripts/test run."""

from __future__ import annotations

import os

import pytest
from e2e_tier import REQUIRE_ENV, deselected_hint, e2e_blocker

pytest_plugins = ["pytester"]


@pytest.mark.parametrize(
    ("euid", "nspawn", "required", "blocker"),
    [
        (0, "/usr/bin/systemd-nspawn", False, None),
        (1000, "/usr/bin/systemd-nspawn", False, "they need root"),
        (1000, None, False, "they need root"),
        (0, None, False, "they need systemd-nspawn"),
        # scripts/test: the tests run, and fail where no twin can boot.
        (1000, None, True, None),
        (0, None, True, None),
    ],
)
def test_blocker(euid: int, nspawn: str | None, required: bool, blocker: str | None) -> None:
    assert e2e_blocker(euid, nspawn, required) == blocker


def test_hint_names_the_command() -> None:
    assert deselected_hint(3, "they need root") == (
        "3 e2e tests deselected (they need root); `sudo scripts/test` installs what they need and runs everything"
    )


TWO_TIERS = """
import pytest

def test_unit():
    pass

@pytest.mark.e2e
def test_twin():
    pass
"""


@pytest.fixture
def tiers(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest("from e2e_tier import pytest_collection_modifyitems, pytest_terminal_summary\n")
    pytester.makeini("[pytest]\nmarkers =\n    e2e: boots a twin\n")
    pytester.makepyfile(TWO_TIERS)
    return pytester


def test_without_root_the_tier_is_deselected_with_the_hint(
    tiers: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = tiers.runpytest_inprocess()
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["1 e2e tests deselected (they need root); `sudo scripts/test`*"])


def test_scripts_test_runs_the_tier_without_root(tiers: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "required")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = tiers.runpytest_inprocess()
    result.assert_outcomes(passed=2)
    assert "deselected" not in result.stdout.str()
