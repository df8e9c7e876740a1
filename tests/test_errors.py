"""The exception tree drawn in edgekit/errors.py is the one the code has."""

from __future__ import annotations

import importlib
import pkgutil
import re

import edgekit
from edgekit import errors
from edgekit.errors import EdgekitError

# Modules that import heavy or device-only packages are still walked: every host module.
HOST_MODULES = [
    name for _, name, _ in pkgutil.walk_packages(edgekit.__path__, "edgekit.") if not name.startswith("edgekit.agent")
]


def subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= subclasses(sub)
    return found


def test_every_exception_class_is_in_the_drawn_tree() -> None:
    for name in HOST_MODULES:
        importlib.import_module(name)
    drawn = re.findall(r"[─ ]\s*(\w+)\s", errors.__doc__ or "")
    assert "EdgekitError" in errors.__doc__
    classes = {cls.__name__ for cls in subclasses(EdgekitError)}
    assert classes <= set(drawn), sorted(classes - set(drawn))


def test_the_tree_draws_each_class_under_its_real_parent() -> None:
    lines = [line for line in (errors.__doc__ or "").splitlines() if re.search(r"(├|└)── \w+", line)]
    for line in lines:
        name = re.search(r"── (\w+)", line).group(1)  # type: ignore[union-attr]
        depth = line.index("──")
        parents = [
            re.search(r"── (\w+)", other).group(1)  # type: ignore[union-attr]
            for other in lines[: lines.index(line)]
            if other.index("──") == depth - 4
        ]
        parent = parents[-1] if parents else "EdgekitError"
        cls = next(c for c in subclasses(EdgekitError) if c.__name__ == name)
        assert cls.__mro__[1].__name__ == parent, (name, parent)
