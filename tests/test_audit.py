"""edgekit audit over a whole tree: the rules together, a directory and its tarball alike, the
policies (built-in and TOML, with an allow-list whose reasons are printed) and the command."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from edgekit.audit.policy import BUILT_IN, load_policy
from edgekit.audit.scan import audit
from edgekit.errors import UsageError

METADATA = """\
Metadata-Version: 2.4
Name: strongcopyleft
Version: 1.0
License-Expression: AGPL-3.0-only
"""


def plan(version: tuple[int, int, int, int] = (10, 3, 0, 26), size: int = 256) -> bytes:
    """The header TensorRT's trtexec reads: the magic, a zero word, and the version at 24..27."""
    return b"ftrt" + struct.pack("<I", 0) + bytes(16) + bytes(version) + bytes(size - 28)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "opt/app/models").mkdir(parents=True)
    (root / "opt/app/models/weights.bin").write_bytes(plan())
    (root / "usr/src/tensorrt/bin").mkdir(parents=True)
    (root / "usr/src/tensorrt/bin/trtexec").write_bytes(b"#!/bin/sh\n")
    dist = root / "usr/lib/python3/dist-packages/strongcopyleft-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(METADATA)
    (root / "etc/edgekit").mkdir(parents=True)
    (root / "etc/edgekit/camera.json").write_text("{}\n")
    return root


def rules_of(report_findings: object) -> list[tuple[str, str]]:
    return [(f.path, f.rule) for f in report_findings]  # type: ignore[attr-defined]


def test_every_rule_finds_its_file_and_nothing_else(tree: Path) -> None:
    report = audit(tree, BUILT_IN["overlay"])
    assert rules_of(report.findings) == [
        ("opt/app/models/weights.bin", "engine/plan"),
        ("usr/lib/python3/dist-packages/strongcopyleft-1.0.dist-info/METADATA", "licence/agpl"),
        ("usr/src/tensorrt/bin/trtexec", "nvidia/not-redistributable"),
    ]
    assert "10.3.0.26" in report.findings[0].reason
    assert report.files == 4 and not report.clean and len(report.errors) == 3


def test_a_tarball_gives_the_same_findings_as_its_directory(tree: Path, tmp_path: Path) -> None:
    tarball = tmp_path / "tree.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(tree, arcname=".")
    from_dir, from_tar = audit(tree, BUILT_IN["overlay"]), audit(tarball, BUILT_IN["overlay"])
    assert [f.to_dict() for f in from_tar.findings] == [f.to_dict() for f in from_dir.findings]
    assert (from_tar.files, from_tar.bytes) == (from_dir.files, from_dir.bytes)


def test_the_rootfs_policy_expects_copyleft_but_not_engines_or_nvidia_tools(tree: Path) -> None:
    report = audit(tree, load_policy("rootfs"))
    severities = {f.rule: f.severity for f in report.findings}
    assert severities == {"engine/plan": "error", "nvidia/not-redistributable": "error", "licence/agpl": "allowed"}
    [licence] = [f for f in report.findings if f.rule == "licence/agpl"]
    assert licence.allowed_because and "copyleft packages are expected" in licence.allowed_because


def test_a_policy_file_allows_with_a_reason_and_ranks_rules(tree: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[rules]\n"licence/agpl" = "warning"\n\n'
        '[[allow]]\npath = "usr/src/tensorrt/*"\nreason = "the build image only, never flashed (LEGAL-42)"\n'
    )
    report = audit(tree, load_policy(str(policy)))
    ranked = {f.rule: (f.severity, f.allowed_because) for f in report.findings}
    assert ranked == {
        "engine/plan": ("error", None),
        "licence/agpl": ("warning", None),
        "nvidia/not-redistributable": ("allowed", "the build image only, never flashed (LEGAL-42)"),
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[rules]\nengine = 'fatal'\n", "use one of error, warning, allowed"),
        ("[[allow]]\npath = 'x'\n", "needs a reason and a path or a package"),
        ("[rule]\n", "unknown sections ['rule']"),
        ("not toml = = 1\n", "is not readable TOML"),
    ],
)
def test_a_broken_policy_is_one_sentence(tmp_path: Path, text: str, message: str) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(text)
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_policy(str(policy))


def test_a_path_that_is_not_a_tree_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        audit(tmp_path / "missing", BUILT_IN["overlay"])
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(UsageError, match="neither a directory nor a tarball"):
        audit(tmp_path / "notes.txt", BUILT_IN["overlay"])


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from edgekit.cli import main; main()", "audit", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, COLUMNS="200"),
        timeout=120,
    )


def test_the_command_prints_one_line_per_finding_and_exits_1(tree: Path) -> None:
    done = run_cli(str(tree))
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith(("error", "warning", "allowed"))]
    assert len(lines) == 3 and "opt/app/models/weights.bin  engine/plan" in lines[0]
    assert "AuditFailed: 3 of the findings" in done.stderr and "Traceback" not in done.stderr
    as_json = json.loads(run_cli(str(tree), "--json").stdout)
    assert as_json["by_rule"] == {"engine/plan": 1, "licence/agpl": 1, "nvidia/not-redistributable": 1}
    assert not as_json["clean"]


def test_a_clean_tree_exits_0(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hostname").write_text("jetson\n")
    done = run_cli(str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "1 files" in done.stdout and "0 errors" in done.stdout


def test_a_tarball_member_reads_right_wherever_a_rule_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Members are read forwards once, keeping a head and a sliding window; a read anywhere, a
    whole-member read and a read behind the window all give the member's own bytes."""
    from edgekit.audit import tree

    monkeypatch.setattr(tree, "HEAD_BYTES", 1000)
    monkeypatch.setattr(tree, "WINDOW_BYTES", 3000)
    monkeypatch.setattr(tree, "CHUNK_BYTES", 512)
    data = bytes(range(256)) * 200  # 51,200 bytes, every offset distinguishable by position
    source = tmp_path / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(data)
    tarball = tmp_path / "t.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(source / "big.bin", arcname="big.bin")
    seen = []
    # Read while the walk holds the archive open, as the audit's rules do.
    for entry in tree.walk_tarball(tarball):
        reads = [(0, 64), (40_000, 500), (45_000, 100), (500, 800), (20_000, 50), (50_000, -1), (0, -1)]
        for offset, size in reads:
            want = data[offset:] if size < 0 else data[offset : offset + size]
            assert entry.read(offset, size) == want, (offset, size)
        seen.append(entry.path)
    assert seen == ["big.bin"]
