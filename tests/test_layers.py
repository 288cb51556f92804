"""The package's layers hold: no import cycle, and the shared machinery imports no task.

Every ``import`` of a ``coffea_mlreco`` module, at module level or inside a function, is an edge of the graph
(read from the source with ``ast``, nothing imported). The rules:

- no cycle anywhere among the modules;
- ``core`` imports only ``core``; ``nn`` only ``nn``; ``inference`` only ``core`` and ``inference``;
  ``simulation``, ``training`` and ``evaluation`` only the layers below them — none of them a task package
  (``met``, ``ttbar``, ``ditau``, ``mem``, ``mlpf``), the processors or the registry (``tasks.py``);
- a task package imports no other task package and never the processors.
"""

from __future__ import annotations

import ast
from pathlib import Path

import coffea_mlreco.processors

import coffea_mlreco

PACKAGE = Path(coffea_mlreco.__file__).resolve().parent
PROCESSORS = (
    Path(coffea_mlreco.processors.__file__).resolve().parent
)  # processors/ installs as coffea_mlreco.processors
TASK_PACKAGES = {"met", "ttbar", "ditau", "mem", "mlpf"}
ALLOWED = {  # layer → the coffea_mlreco top-level names it may import
    "core": {"core"},
    "nn": {"nn"},
    "inference": {"core", "inference"},
    "simulation": {"core", "simulation"},
    "training": {"core", "inference", "nn", "training"},
    "evaluation": {"core", "inference", "evaluation"},
}


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (packages by their ``__init__``), processors included."""
    out = {}
    for root, prefix in ((PACKAGE, ("coffea_mlreco",)), (PROCESSORS, ("coffea_mlreco", "processors"))):
        for path in root.rglob("*.py"):
            parts = [*prefix, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports (``from X import y`` counts as ``X.y`` where that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def test_shared_layers_import_no_task() -> None:
    upward = [
        f"{name} imports {target}"
        for name, targets in _graph().items()
        if _top(name) in ALLOWED
        for target in sorted(targets)
        if _top(target) not in ALLOWED[_top(name)]
    ]
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_tasks_import_no_other_task() -> None:
    crossing = [
        f"{name} imports {target}"
        for name, targets in _graph().items()
        if _top(name) in TASK_PACKAGES
        for target in sorted(targets)
        if (_top(target) in TASK_PACKAGES and _top(target) != _top(name))
        or _top(target) in {"processors", "tasks", "reconstruction", "cli"}
    ]
    assert not crossing, "task packages importing each other:\n" + "\n".join(crossing)


def test_the_graph_sees_the_package() -> None:
    """The checks above are not vacuous: the graph holds every task and known edges."""
    graph = _graph()
    assert TASK_PACKAGES | set(ALLOWED) <= {_top(n) for n in graph}
    assert "coffea_mlreco.core.columns" in graph["coffea_mlreco.met.columns"]
    assert "coffea_mlreco.met.puppi" in graph["coffea_mlreco.processors.mlpf"] | graph["coffea_mlreco.met.columns"]
