"""The shape ARCHITECTURE.md promises: packages import only the packages before them in the pipeline, no
import cycles (lazy imports included), a short top level, and modules and functions of a readable size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "qatune"
# The pipeline's order; the top-level modules (errors, io, layout, ...) come before all of it.
ORDER = [
    "data",
    "models",
    "answering",
    "documents",
    "evaluation",
    "training",
    "sweep",
    "report",
    "study",
    "serving",
    "cli",
]
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


# Untyped JSON objects (`io.JsonObject`, `dict[str, Any]`) live only where JSON enters or leaves: a record's
# to_dict/from_dict, and these places, each a file or wire edge.
JSON_EDGES = {
    "qatune.io": {"JsonObject", "read_jsonl"},  # the alias itself; JSON Lines as read
    "qatune.data.squad": {"Row", "plausible_answers", "to_squad"},  # a question as the file holds it; the file written
    "qatune.data.formats.readers": {"_annotation", "_squad_answer"},  # an annotation tool's export as read
    "qatune.evaluation.results": {"EvalResult.metrics"},  # Scores.to_dict under its older name
    "qatune.training.trackers": {"_saved_ids"},  # tracker-ids.json as read
    "qatune.sweep.spec": {"SweepSpec.raw"},  # the sweep file as the user wrote it
    "qatune.sweep.runner": {"SweepRun.best", "_spec", "run_sweep"},  # `sweep run --json`; a config given as a mapping
    "qatune.sweep.worker": {"compact"},  # a trial's history as Optuna's JSON user attribute
    "qatune.study.spec": {"StudySpec.raw", "_mapping"},  # the study file as written, its sections before checks
    "qatune.study.cache": {"StageCache.__init__"},  # stages.json as read
    "qatune.study.run": {"_dump_answers", "_load_answers"},  # the questions stage's cached JSON
    "qatune.report.results": {"StudyResults.study"},  # the study file, for the report's "reproduce" section
    "qatune.report.evaluation": {"evaluation_summary", "write_evaluation_report"},  # evaluation.json / --metrics
    "qatune.publishing.export": {"export_onnx", "_write_export"},  # qatune-onnx.json's content
    "qatune.serving.responses": {"error_responses"},  # FastAPI's `responses` argument
    "qatune.cli.answer": {"_prediction_json", "cmd_ask"},  # `ask --json` output
}
UNTYPED = ("JsonObject", "dict[str, Any]")


def _untyped_places(tree: ast.Module) -> set[str]:
    """The functions, class fields and module names whose annotations (or alias values) are untyped JSON."""
    found: set[str] = set()

    def visit(node: ast.AST, where: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if not isinstance(child, ast.ClassDef):
                    notes = [a.annotation for a in ast.walk(child.args) if isinstance(a, ast.arg) and a.annotation]
                    if any(u in ast.unparse(n) for n in [*notes, child.returns] if n for u in UNTYPED):
                        found.add(".".join([*where, child.name]))
                visit(child, [*where, child.name])
                continue
            typed = isinstance(child, ast.AnnAssign) and any(u in ast.unparse(child.annotation) for u in UNTYPED)
            alias = isinstance(child, ast.Assign) and not where and any(u in ast.unparse(child.value) for u in UNTYPED)
            if typed or alias:
                target = child.target if isinstance(child, ast.AnnAssign) else child.targets[0]
                is_field = where and isinstance(target, ast.Name) and where[-1][0].isupper()
                name = [*where, target.id] if is_field or not where else where  # type: ignore[union-attr]
                found.add(".".join(name))
            visit(child, where)

    visit(tree, [])
    return found


def test_untyped_json_only_at_its_edges():
    stray = sorted(
        f"{module}: {place}"
        for module, tree in _modules().items()
        for place in _untyped_places(tree)
        if place.rsplit(".", 1)[-1] not in ("to_dict", "from_dict") and place not in JSON_EDGES.get(module, set())
    )
    assert not stray, "untyped JSON inside the package (give it a record, or list a real edge):\n" + "\n".join(stray)
    modules = _modules()
    stale = {m: places - _untyped_places(modules[m]) for m, places in JSON_EDGES.items()}
    assert not any(stale.values()), f"edges listed that hold no untyped JSON any more: {stale}"
