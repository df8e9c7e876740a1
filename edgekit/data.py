"""Where the folders edgekit ships beside its code are: device_profiles/ and firmware_overlay/.

They live at the repository's top level, and the wheel carries them as ``edgekit/_data/``
(pyproject.toml, force-include). An installed edgekit has that packaged copy; a source
checkout (``uv run``, an editable install) has none and reads the top-level folders, so
the tree keeps one copy of each and both ways of running see the same files.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Literal

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def data_dir(name: Literal["device_profiles", "firmware_overlay"]) -> Path:
    packaged = files("edgekit") / "_data" / name
    # Only a folder on disk will do: profiles are globbed, and overlay files are hashed, uploaded
    # and handed to systemd-analyze by path. pip and uv always unpack a wheel, never run it zipped.
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return _SOURCE_ROOT / name
