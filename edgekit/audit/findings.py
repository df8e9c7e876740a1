"""What an audit reports: one finding per file and rule, with the reason in one sentence."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# How a policy (edgekit.audit.policy) ranks a finding.
SEVERITIES = ("error", "warning", "allowed")


@dataclass(frozen=True)
class Finding:
    # Posix path relative to the scanned root (a tarball's member name without "./").
    path: str
    # "<family>/<name>", e.g. "engine/plan", "nvidia/not-redistributable", "licence/gpl"; the
    # family is what a policy ranks by default.
    rule: str
    # One sentence: what was found and, for NVIDIA files, the licence clause that applies.
    reason: str
    # What the file belongs to when known: a Python distribution or a Debian package.
    package: str | None = None
    # Set by the policy: error, warning or allowed (then ``allowed_because`` says why).
    severity: str = "error"
    allowed_because: str | None = None

    @property
    def family(self) -> str:
        return self.rule.split("/", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
