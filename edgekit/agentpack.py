"""Pack ``edgekit/agent`` as one zipapp, byte-identical for identical sources.

Identical bytes give an identical sha256, so an unchanged agent is never uploaded twice.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import edgekit.agent

AGENT_DIR = Path(edgekit.agent.__file__).resolve().parent
# The package root is a stub on the device: the host package never travels.
PACKAGE_STUB = '"""edgekit device agent (zipapp)."""\n'
MAIN = "from edgekit.agent.__main__ import exit_process, main\n\nexit_process(main())\n"
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def _entry(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def build_agent(output: Path) -> str:
    """Write the zipapp to ``output`` and return its sha256."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w") as archive:
        _entry(archive, "__main__.py", MAIN.encode())
        _entry(archive, "edgekit/__init__.py", PACKAGE_STUB.encode())
        for source in sorted(AGENT_DIR.rglob("*.py")):
            relative = source.relative_to(AGENT_DIR.parent.parent).as_posix()
            _entry(archive, relative, source.read_bytes())
    return hashlib.sha256(output.read_bytes()).hexdigest()
