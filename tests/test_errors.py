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


def test_every_agent_error_kind_has_its_own_host_exception() -> None:
    from pathlib import Path

    from edgekit.errors import AgentFailed, agent_failure

    agent = Path(errors.__file__).parent / "agent"
    raised = set()
    for source in agent.rglob("*.py"):
        raised |= set(re.findall(r'AgentError\(\s*"(\w+)"', source.read_text()))
    assert raised, "the agent raises AgentError with a kind"
    classes = {kind: type(agent_failure(kind, "m")) for kind in raised}
    assert all(cls is not AgentFailed and cls.kind == kind for kind, cls in classes.items()), classes
    assert len(set(classes.values())) == len(raised)
    # A kind from a newer agent is still a device error with its message.
    unknown = agent_failure("quantum", "The agent says no.")
    assert type(unknown) is AgentFailed and str(unknown) == "The agent says no." and unknown.exit_code == 5
