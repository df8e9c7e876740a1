"""The ``edgekit`` command: thin typer commands over the library API.

Only ``EdgekitError`` is caught here and shown as one sentence with its exit code;
anything else is a bug and keeps its traceback. Locals are never shown in tracebacks,
because keys and passwords pass through them.
"""

from __future__ import annotations

import sys

import typer

try:  # typer >= 0.29 vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # older typer depends on click, which the locked environment mypy checks in lacks
    from click import ClickException  # type: ignore[no-redef,import-not-found,unused-ignore]

from edgekit.cli import audit, calibrate, facts, logs, overlay, profiles, provision, releases, rollback, status, twin
from edgekit.cli.output import err_console
from edgekit.errors import EdgekitError

app = typer.Typer(
    name="edgekit",
    help="Deploy camera inference to NVIDIA Jetson devices.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.command("provision")(provision.provision_command)
app.command("calibrate")(calibrate.calibrate_command)
app.command("facts")(facts.facts_command)
app.command("status")(status.status_command)
app.command("logs")(logs.logs_command)
app.command("rollback")(rollback.rollback_command)
app.command("releases")(releases.releases_command)
app.command("prune")(releases.prune_command)
app.command("audit")(audit.audit_command)
app.add_typer(profiles.app, name="profiles")
app.add_typer(overlay.app, name="overlay")
app.add_typer(twin.app, name="twin")


def main() -> None:
    try:
        app(standalone_mode=False)
    except EdgekitError as exc:
        err_console.print(f"[bold red]{type(exc).__name__}:[/] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("Aborted.")
        sys.exit(130)
    except ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
