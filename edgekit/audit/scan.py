"""The audit itself: every rule over every file of a tree, ranked by a policy."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.audit.findings import Finding
from edgekit.audit.policy import Policy
from edgekit.audit.tree import Entry, entries, is_tarball
from edgekit.errors import UsageError

Rule = Callable[[Entry], Iterator[Finding]]


@dataclass(frozen=True)
class AuditReport:
    root: str
    policy: str
    files: int
    bytes: int
    seconds: float
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def clean(self) -> bool:
        return not self.errors

    def by_rule(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.rule] = counts.get(finding.rule, 0) + 1
        return dict(sorted(counts.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "policy": self.policy,
            "files": self.files,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "clean": self.clean,
            "by_rule": self.by_rule(),
            "findings": [f.to_dict() for f in self.findings],
        }


def rules() -> list[Rule]:
    """Every rule, content checks included; each reads only what it needs of a file."""
    from edgekit.audit import engines, licences, nvidia

    return [engines.check, nvidia.check, licences.check]


def audit(path: Path, policy: Policy, on_file: Callable[[Entry], None] = lambda entry: None) -> AuditReport:
    """The findings of every rule on every regular file under ``path`` (a directory or a tarball)."""
    if not path.exists():
        raise UsageError(f"{path} does not exist; pass a directory, a tarball or a root filesystem to audit.")
    if path.is_file() and not is_tarball(path):
        raise UsageError(f"{path} is neither a directory nor a tarball; pass the tree to audit or a .tar(.gz) of it.")
    started = time.monotonic()
    checks = rules()
    found: list[Finding] = []
    files = total = 0
    for entry in entries(path):
        files += 1
        total += entry.size
        on_file(entry)
        for check in checks:
            found.extend(policy.rank(finding) for finding in check(entry))
    # By path (a stable sort keeps each file's rules in order): a tarball's archive order is not a
    # directory's sorted walk, and both must give the same report.
    found.sort(key=lambda finding: finding.path)
    return AuditReport(str(path), policy.name, files, total, time.monotonic() - started, tuple(found))
