"""``edgekit audit PATH``: serialized engines, NVIDIA files and copyleft licences in a tree."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from edgekit.cli.connect import JsonOption
from edgekit.cli.output import console, err_console, print_json
from edgekit.errors import AuditFailed

if TYPE_CHECKING:
    from edgekit.audit.scan import AuditReport
    from edgekit.audit.tree import Entry

STYLE = {"error": "red", "warning": "yellow", "allowed": "dim"}


def audit_command(
    path: Annotated[Path, typer.Argument(help="A directory, a tarball or a root filesystem.", show_default=False)],
    policy: Annotated[
        str,
        typer.Option(help="overlay (nothing NVIDIA at all), rootfs (a whole L4T rootfs), or a TOML policy file."),
    ] = "overlay",
    sbom: Annotated[
        Path | None,
        typer.Option(help="Also write a CycloneDX JSON SBOM of the tree here (packages and flagged files)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Find serialized TensorRT engines (by content), NVIDIA files a product may not ship, and copyleft
    licences; exit 1 when the policy calls a finding an error."""
    from edgekit.audit.policy import load_policy
    from edgekit.audit.scan import audit

    chosen = load_policy(policy)
    inventory = None
    if sbom is not None:
        from edgekit.sbom import TreeInventory

        inventory = TreeInventory()
    with err_console.status(f"auditing {path}") as spinner:
        seen = [0]

        def tick(entry: Entry) -> None:
            # The SBOM reads its metadata files during the audit's walk: a tarball is unpacked once.
            if inventory is not None:
                inventory.see(entry)
            seen[0] += 1
            if seen[0] % 500 == 0:
                spinner.update(f"auditing {path}: {seen[0]} files")

        report = audit(path, chosen, on_file=tick)
    if as_json:
        print_json(report.to_dict())
    else:
        _show(report)
    if sbom is not None and inventory is not None:
        # Written whatever the verdict: the SBOM describes the tree, findings included.
        sbom.parent.mkdir(parents=True, exist_ok=True)
        sbom.write_bytes(inventory.sbom(path.resolve().name or "/", report.findings))
        err_console.print(f"SBOM written to {escape(str(sbom))}", highlight=False)
    if not report.clean:
        raise AuditFailed(
            f"{len(report.errors)} of the findings in {path} are errors under policy {report.policy}; remove those "
            "files, or allow them with a reason in a policy file (--policy FILE)."
        )


def _show(report: AuditReport) -> None:
    for finding in report.findings:
        style = STYLE[finding.severity]
        line = f"[{style}]{finding.severity:7}[/] {escape(finding.path)}  [bold]{finding.rule}[/]  "
        line += escape(finding.reason)
        if finding.allowed_because:
            line += f" [dim](allowed: {escape(finding.allowed_because)})[/]"
        console.print(line, highlight=False, soft_wrap=True)
    rate = report.files / report.seconds if report.seconds > 0 else float(report.files)
    console.print(
        f"{report.files} files ({report.bytes / 2**20:.1f} MiB) audited in {report.seconds:.1f} s ({rate:.0f} files/s) "
        f"under policy {escape(report.policy)}: {len(report.errors)} errors, "
        f"{sum(f.severity == 'warning' for f in report.findings)} warnings, "
        f"{sum(f.severity == 'allowed' for f in report.findings)} allowed",
        highlight=False,
        soft_wrap=True,
    )
