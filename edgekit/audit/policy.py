"""What an audit's findings mean for a tree: error, warning or allowed, from a TOML policy.

A policy ranks rules (a full rule such as ``nvidia/conditional`` wins over its family such as
``nvidia``) and allow-lists paths (fnmatch patterns on the relative path) or packages, each
with a reason that the report prints next to the finding it allowed::

    [rules]
    engine = "error"
    "nvidia/conditional" = "warning"
    licence = "warning"

    [[allow]]
    path = "opt/vendor/lib/libnvinfer.so.*"
    reason = "shipped under our NVIDIA distribution agreement, ticket LEGAL-42"

Two are built in. ``overlay`` (the default) is for what edgekit adds to an image: it must hold
no engine and no NVIDIA file at all, conditional runtime files included, and copyleft Python
packages are errors for AGPL and warnings for GPL and LGPL. ``rootfs`` is for a whole L4T root
filesystem, where the OS's own GPL packages and JetPack's runtime are expected: only engines and
NVIDIA files no product may redistribute fail.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.audit.findings import SEVERITIES, Finding
from edgekit.errors import UsageError


@dataclass(frozen=True)
class Allow:
    reason: str
    path: str | None = None
    package: str | None = None

    def matches(self, finding: Finding) -> bool:
        if self.path is not None and not fnmatch.fnmatchcase(finding.path, self.path):
            return False
        return self.package is None or finding.package == self.package


@dataclass(frozen=True)
class Policy:
    name: str
    rules: dict[str, str]
    allow: tuple[Allow, ...] = ()
    # Why a whole rule is allowed, when it is (printed with each finding it allows).
    allowed_rules_because: dict[str, str] = field(default_factory=dict)

    def rank(self, finding: Finding) -> Finding:
        for entry in self.allow:
            if entry.matches(finding):
                return dataclasses.replace(finding, severity="allowed", allowed_because=entry.reason)
        key = finding.rule if finding.rule in self.rules else finding.family
        severity = self.rules.get(key, "error")
        because = self.allowed_rules_because.get(key) if severity == "allowed" else None
        if severity == "allowed" and because is None:
            because = f"policy {self.name} allows {key}"
        return dataclasses.replace(finding, severity=severity, allowed_because=because)


BUILT_IN = {
    "overlay": Policy(
        "overlay",
        {
            "engine": "error",
            "nvidia": "error",
            "licence/agpl": "error",
            "licence/gpl": "warning",
            "licence/lgpl": "warning",
            "licence": "warning",
        },
    ),
    "rootfs": Policy(
        "rootfs",
        {
            "engine": "error",
            "nvidia": "error",
            "nvidia/conditional": "allowed",
            "licence": "allowed",
        },
        allowed_rules_because={
            "nvidia/conditional": "policy rootfs: JetPack's runtime libraries belong to the L4T rootfs NVIDIA ships",
            "licence": "policy rootfs: the OS's own copyleft packages are expected in a root filesystem",
        },
    ),
}


def load_policy(spec: str) -> Policy:
    """A built-in policy by name, or a TOML policy file."""
    if spec in BUILT_IN:
        return BUILT_IN[spec]
    path = Path(spec)
    if not path.is_file():
        raise UsageError(
            f"The policy {spec!r} is neither a built-in ({', '.join(BUILT_IN)}) nor a file; "
            "name a built-in or a TOML file."
        )
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"The policy {path} is not readable TOML ({exc}); fix it.") from None
    return _parsed(path, data)


def _parsed(path: Path, data: dict[str, Any]) -> Policy:
    unknown = sorted(set(data) - {"rules", "allow", "base"})
    if unknown:
        raise UsageError(f"The policy {path} has unknown sections {unknown}; it takes base, rules and [[allow]].")
    base = BUILT_IN.get(str(data.get("base", "overlay")))
    if base is None:
        raise UsageError(f"The policy {path} names base {data['base']!r}; use one of {', '.join(BUILT_IN)}.")
    rules = dict(base.rules)
    for rule, severity in (data.get("rules") or {}).items():
        if severity not in SEVERITIES:
            raise UsageError(f"The policy {path} ranks {rule} as {severity!r}; use one of {', '.join(SEVERITIES)}.")
        rules[str(rule)] = str(severity)
    allow = []
    for index, item in enumerate(data.get("allow") or [], start=1):
        if not isinstance(item, dict) or not item.get("reason") or not (item.get("path") or item.get("package")):
            raise UsageError(
                f"Allow entry {index} of the policy {path} needs a reason and a path or a package; add them."
            )
        allow.append(Allow(str(item["reason"]), item.get("path"), item.get("package")))
    return Policy(str(path), rules, tuple(allow), dict(base.allowed_rules_because))
