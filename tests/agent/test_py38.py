"""The agent runs on the device's own python3, which is 3.8 on JetPack 5."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
AGENT_DIR = REPO_ROOT / "edgekit" / "agent"
MODULES = sorted(AGENT_DIR.rglob("*.py"))
THIRD_PARTY_ALLOWED = {"numpy", "cv2"}
# In sys.stdlib_module_names of the Python running the tests, but not in 3.8.
NEWER_STDLIB = {"graphlib", "tomllib", "zoneinfo"}
NEWER_STR_METHODS = {"removeprefix", "removesuffix"}
BUILTIN_GENERICS = {"dict", "frozenset", "list", "set", "tuple", "type"}


def module_id(path: Path) -> str:
    return path.relative_to(AGENT_DIR).as_posix()


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path), feature_version=(3, 8))


def import_time_nodes(tree: ast.Module):
    """Nodes executed when the module is imported: not inside function bodies."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            pending.extend(ast.iter_child_nodes(node))


def runtime_nodes(tree: ast.Module):
    """Nodes that are evaluated at run time, i.e. everything but annotations."""
    pending = [tree]
    while pending:
        node = pending.pop()
        yield node
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns"):
                continue
            children = value if isinstance(value, list) else [value]
            pending.extend(c for c in children if isinstance(c, ast.AST))


def imported_modules(node: ast.AST):
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name, [alias.name]
    elif isinstance(node, ast.ImportFrom) and node.level == 0:
        yield node.module or "", [alias.name for alias in node.names]


def test_the_agent_has_modules():
    assert {"__main__.py", "service.py", "backends/onnxruntime.py"} <= set(map(module_id, MODULES))


@pytest.mark.parametrize("path", MODULES, ids=module_id)
def test_module_is_python_38(path):
    tree = parse(path)
    has_annotations = any(
        isinstance(n, ast.AnnAssign) or getattr(n, "returns", None) or getattr(n, "annotation", None)
        for n in ast.walk(tree)
    )
    future = any(
        isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
        for n in tree.body
    )
    # Without it, dict[str, int] or X | None in an annotation fails on 3.8 at import.
    assert future or not has_annotations, "needs `from __future__ import annotations`"
    for node in runtime_nodes(tree):
        where = f"{module_id(path)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute):
            assert node.attr not in NEWER_STR_METHODS, f"{where}: str.{node.attr} is 3.9+"
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            assert node.value.id not in BUILTIN_GENERICS, f"{where}: {node.value.id}[...] is 3.9+"
        if isinstance(node, ast.keyword):
            assert node.arg not in ("kw_only", "slots"), f"{where}: dataclass {node.arg} is 3.10+"


@pytest.mark.parametrize("path", MODULES, ids=module_id)
def test_module_never_imports_the_host_package(path):
    for node in ast.walk(parse(path)):
        for module, names in imported_modules(node):
            parts = module.split(".")
            if parts[0] != "edgekit":
                continue
            inside_agent = parts[1:2] == ["agent"] or (len(parts) == 1 and names == ["agent"])
            assert inside_agent, f"{module_id(path)} imports {module} from the host package"


@pytest.mark.parametrize("path", MODULES, ids=module_id)
def test_module_imports_only_stdlib_numpy_and_cv2_at_import_time(path):
    for node in import_time_nodes(parse(path)):
        for module, _ in imported_modules(node):
            top = module.split(".")[0]
            assert top not in NEWER_STDLIB, f"{module_id(path)} imports {top}, new after 3.8"
            assert top in sys.stdlib_module_names or top in THIRD_PARTY_ALLOWED, (
                f"{module_id(path)} imports {module} at import time; "
                "import runtimes lazily inside the backend that needs them"
            )


def test_ruff_passes_for_python_38():
    ruff = Path(sys.executable).with_name("ruff")
    done = subprocess.run(
        [str(ruff), "check", "--target-version", "py38", "edgekit/agent"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
