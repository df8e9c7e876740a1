"""scripts/bench-transfer: its figures, targets and table from given samples, not a twin's speed."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import pytest
from script_modules import SCRIPTS_LIB, load_script

SIZE = 50_000_000


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench_transfer")


def rows(bench: ModuleType, seconds: dict[str, float], resent_up: int) -> dict[tuple[str, str], object]:
    """Rows for every case and tool: ``seconds`` per tool for every case, one round each."""
    found = {}
    for case in bench.CASES:
        for tool in bench.TOOLS:
            up = SIZE + resent_up if case == "c" else SIZE
            found[case, tool] = bench.Row.of(case, tool, [bench.Sample(seconds[tool], up, 1000)])
    return found


def test_a_row_is_best_median_and_spread_of_its_rounds(bench: ModuleType) -> None:
    samples = [bench.Sample(7.0, 100, 10), bench.Sample(6.0, 120, 12), bench.Sample(6.5, 110, 11)]
    row = bench.Row.of("a", "edgekit", samples)
    assert (row.best_s, row.median_s, row.spread_s) == (6.0, 6.5, 1.0)
    assert (row.up_best, row.up_worst, row.down_best) == (100, 120, 10)


def test_throughput_ratio_compares_best_times(bench: ModuleType) -> None:
    found = rows(bench, {"edgekit": 7.0, "scp": 6.3, "rsync": 7.7}, 0)
    assert bench.throughput_ratio(found, "scp") == pytest.approx(0.9)
    assert bench.throughput_ratio(found, "rsync") == pytest.approx(1.1)


def test_resent_counts_what_went_up_beyond_one_copy_in_the_worst_round(bench: ModuleType) -> None:
    row = bench.Row.of("c", "rsync", [bench.Sample(9, SIZE + 500_000, 0), bench.Sample(9, SIZE + 2_000_000, 0)])
    assert bench.resent_fraction(row, SIZE) == pytest.approx(0.04)
    # Less than one copy (nothing re-sent, and the framing too small to show) is no waste, not a gain.
    assert bench.resent_fraction(bench.Row.of("c", "x", [bench.Sample(9, SIZE - 10, 0)]), SIZE) == 0


@pytest.mark.parametrize(
    ("edgekit_s", "resent", "provision_s", "arrived", "met"),
    [
        (6.9, 2_000_000, 2.5, False, [True, True, True, True]),
        (7.1, 2_500_000, 3.0, True, [False, False, False, False]),
    ],
)
def test_targets(
    bench: ModuleType, edgekit_s: float, resent: int, provision_s: float, arrived: bool, met: list[bool]
) -> None:
    found = rows(bench, {"edgekit": edgekit_s, "scp": 6.3, "rsync": 6.5}, resent)
    reprovision = bench.Row.of(bench.PROVISION_CASE, "edgekit", [bench.Sample(provision_s, 40_000, 9_000)])
    assert [v.met for v in bench.verdicts(found, SIZE, reprovision, arrived)] == met


def test_the_report_shows_every_row_the_ratios_and_the_targets(bench: ModuleType) -> None:
    found = rows(bench, {"edgekit": 6.5, "scp": 6.4, "rsync": 6.6}, 1_000_000)
    reprovision = bench.Row.of(bench.PROVISION_CASE, "edgekit", [bench.Sample(2.0, 40_000, 9_000)])
    verdicts = bench.verdicts(found, SIZE, reprovision, False)

    lines = bench.report_lines(found, SIZE, reprovision, verdicts)

    assert lines[0].split() == "case tool best s median s spread s MB/s up MB down MB".split()
    table = lines[1:11]
    assert table[0].startswith("first upload                   edgekit ")
    assert table[0].split()[-6:] == ["6.50", "6.50", "0.00", "7.69", "50.000", "0.001"]
    assert table[-1].startswith("re-provision, nothing changed  edgekit     2.00")
    assert "(a) edgekit/scp: time 1.02, up 1.00, edgekit/rsync: time 0.98, up 1.00" in lines
    assert "(c) scp re-sends 2.0% of the file" in lines
    assert lines[-4:] == [
        "target: (a) throughput edgekit/scp >= 0.90: 0.98: met",
        "target: (c) edgekit re-sends < 5% of the file: 2.0%: met",
        "target: re-provision with nothing changed < 3 s: 2.00 s: met",
        "target: re-provision sends no blob: none arrived: met",
    ]


def test_the_proxy_gets_the_twins_host_key_under_its_own_port(bench: ModuleType, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("[127.0.0.1]:2222 ssh-ed25519 AAAAkey\n[127.0.0.1]:2223 ssh-ed25519 AAAAother\n")
    assert bench.proxied_known_hosts(known_hosts, 2222, 40111) == "[127.0.0.1]:40111 ssh-ed25519 AAAAkey\n"


def test_scp_and_rsync_check_the_twins_key_behind_the_proxy(bench: ModuleType) -> None:
    options = bench.ssh_options("/twin/id", "/twin/known_hosts", 2222)
    pairs = dict(zip(options[::2], options[1::2], strict=True))
    assert pairs["-i"] == "/twin/id" and pairs["-F"] == "/dev/null"
    assert {o for o in options if "=" in o} == {
        "UserKnownHostsFile=/twin/known_hosts",
        "HostKeyAlias=[127.0.0.1]:2222",
        "StrictHostKeyChecking=yes",
        "BatchMode=yes",
    }


def test_wrapper_runs_the_script() -> None:
    wrapper = SCRIPTS_LIB.parent / "bench-transfer"
    assert os.access(wrapper, os.X_OK)
    assert "scripts/lib/bench_transfer.py" in wrapper.read_text()
