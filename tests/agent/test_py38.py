"""The agent runs on the device's own python3, which is 3.8 on JetPack 5.

facts.py goes further back: the host runs it on any device before anything is installed,
JetPack 4.6 (Python 3.6) included, and that device must get a refusal, not a SyntaxError.
"""

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
FACTS = AGENT_DIR / "facts.py"
# What an annotation evaluated at import on 3.8 may be made of: names, typing.X and
# typing subscripts such as Dict[str, Optional[int]] or Callable[[int], str], and None / ...
ANNOTATION_NODES = {"Name", "Attribute", "Subscript", "Tuple", "List", "Index", "Load", "Constant"}


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


def annotations(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.AnnAssign, ast.arg)) and node.annotation is not None:
            yield node.annotation
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            yield node.returns


def annotation_problem(annotation: ast.AST) -> str | None:
    """Why an annotation fails on 3.8 when evaluated (no future import), or None."""
    for node in ast.walk(annotation):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in BUILTIN_GENERICS:
            return f"{node.value.id}[...] is 3.9+; use typing"
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return "X | Y is 3.10+; use typing.Optional or Union"
        if type(node).__name__ not in ANNOTATION_NODES:
            return f"{type(node).__name__} in an annotation"
        if isinstance(node, ast.Constant) and node.value not in (None, Ellipsis):
            return f"{node.value!r} in an annotation; quoted ones hide what they say from this check"
    return None


def has_future_annotations(tree: ast.Module) -> bool:
    return any(
        isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
        for n in tree.body
    )


def python36_problems(source: str) -> list[str]:
    """What keeps source from running on Python 3.6."""
    try:
        tree = ast.parse(source, feature_version=(3, 6))
    except SyntaxError as error:
        return [f"not 3.6 syntax: {error.msg}"]
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            problems.append(f"line {node.lineno}: from __future__ import is 3.7+ (annotations) or pointless")
        for module, _ in imported_modules(node):
            if module.split(".")[0] == "dataclasses":
                problems.append(f"line {node.lineno}: dataclasses is 3.7+")
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg in ("capture_output", "text"):
                    problems.append(f"line {node.lineno}: subprocess {keyword.arg}= is 3.7+")
    return problems


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
    if not has_future_annotations(tree):
        # Annotations are then evaluated at import: dict[str, int] or X | None fail on 3.8.
        for annotation in annotations(tree):
            problem = annotation_problem(annotation)
            assert problem is None, f"{module_id(path)}:{annotation.lineno}: {problem}"
    for node in runtime_nodes(tree):
        where = f"{module_id(path)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute):
            assert node.attr not in NEWER_STR_METHODS, f"{where}: str.{node.attr} is 3.9+"
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            assert node.value.id not in BUILTIN_GENERICS, f"{where}: {node.value.id}[...] is 3.9+"
        if isinstance(node, ast.keyword):
            assert node.arg not in ("kw_only", "slots"), f"{where}: dataclass {node.arg} is 3.10+"


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("def f(x: dict[str, int]) -> None: ...", "dict[...] is 3.9+"),
        ("def f() -> Optional[list[int]]: ...", "list[...] is 3.9+"),
        ("def f(x: int | None): ...", "X | Y is 3.10+"),
        ("x: 'dict[str, int]' = {}", "in an annotation"),
        ("def f(x: Dict[str, Optional[int]], y: typing.List[str]) -> None: ...", None),
        ("def f(g: Callable[[int], str]) -> Tuple[int, ...]: ...", None),
    ],
)
def test_annotation_check(source, problem):
    found = [annotation_problem(a) for a in annotations(ast.parse(source))]
    found = [p for p in found if p is not None]
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1
        assert problem in found[0]


def test_facts_is_python_36():
    assert python36_problems(FACTS.read_text()) == []
    assert not has_future_annotations(parse(FACTS))


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("from __future__ import annotations", "from __future__"),
        ("import subprocess\nsubprocess.run(['ls'], capture_output=True)", "capture_output= is 3.7+"),
        ("import subprocess\nsubprocess.run(['ls'], text=True)", "text= is 3.7+"),
        ("from dataclasses import dataclass", "dataclasses is 3.7+"),
        ("if (n := 1): pass", "not 3.6 syntax"),
        ("x = f'{n=}'", "not 3.6 syntax"),
        ("def f(a, /): pass", "not 3.6 syntax"),
    ],
)
def test_python36_check(source, problem):
    problems = python36_problems(source)
    assert len(problems) == 1
    assert problem in problems[0]


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
