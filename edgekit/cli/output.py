"""Where the CLI writes: people read stderr, scripts read ``--json`` on stdout."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))
