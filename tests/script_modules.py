"""The Python files under scripts/lib, loaded as the modules their wrappers run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS_LIB = Path(__file__).resolve().parents[1] / "scripts" / "lib"


def load_script(name: str) -> ModuleType:
    # scripts/lib is not a package; load the file the wrapper runs.
    spec = importlib.util.spec_from_file_location(name, SCRIPTS_LIB / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
