"""The shape ARCHITECTURE.md promises: packages import only the packages before them in the pipeline, no
import cycles (lazy imports included), a short top level, and modules and functions of a readable size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "qatune"
# The pipeline's order; the top-level modules (errors, io, layout, ...) come before all of it.
ORDER = ["data", "models", "answering", "evaluation", "training", "sweep", "report", "study", "serving", "cli"]
BESIDE = {"publishing": "serving"}  # export and push sit beside serving, after the study


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        out[name] = ast.parse(path.read_text(), str(path))
    return out


def _rank(module: str) -> int:
    """0 for `qatune` and its top-level modules, else the place of the module's subpackage in ORDER."""
    parts = module.split(".")
    if len(parts) == 1 or not (PACKAGE / parts[1]).is_dir():
        return 0
    return ORDER.index(BESIDE.get(parts[1], parts[1])) + 1


def _imports(tree: ast.Module) -> list[tuple[ast.ImportFrom | ast.Import, str, bool]]:
    """(node, imported qatune module, under `if TYPE_CHECKING`) for every import, lazy ones too."""
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found: list[tuple[ast.ImportFrom | ast.Import, str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("qatune"):
            found += [(node, node.module, id(node) in typing_only)]
        elif isinstance(node, ast.Import):
            found += [(node, a.name, id(node) in typing_only) for a in node.names if a.name.startswith("qatune")]
    return found


def test_packages_import_only_what_comes_before_them():
    upward = [
        f"{name} (line {node.lineno}) imports {target}"
        for name, tree in _modules().items()
        for node, target, typing_only in _imports(tree)
        if not typing_only and _rank(target) > _rank(name)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    modules = _modules()
    graph = {name: set() for name in modules}
    for name, tree in modules.items():
        for _, target, _ in _imports(tree):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target not in (name, "qatune"):
                graph[name].add(target)
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(nxt) :] + [node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_a_short_top_level_and_readable_modules_and_functions():
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py",))
    assert len(top) <= 12, top
    long_modules, long_functions = [], []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if len(text.splitlines()) > 350:
            long_modules.append(path.name)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno:
                if node.end_lineno - node.lineno + 1 > 60:
                    long_functions.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert not long_modules and not long_functions, (long_modules, long_functions)
