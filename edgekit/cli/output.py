"""Where the CLI writes: people read stderr, scripts read ``--json`` on stdout."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

console = Console()
# One sentence stays one line, whatever the terminal width: scripts grep it.
err_console = Console(stderr=True, soft_wrap=True)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))
