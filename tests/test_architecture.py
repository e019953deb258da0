"""The packages form layers that import one way, and no module imports itself back.

Every import counts: at the top of a module, inside a function, under ``if TYPE_CHECKING:``,
relative or absolute. The graph is built from the source with ``ast`` (nothing is imported), so
an import cycle hidden in a function body fails here before it fails at run time.

The layers, lowest first (README, "Architecture"):

    core                       value types, vocabulary, units, numbers
    storage                    one database, metadata, migrations
    exporters                  sources: engine scrapes, probes, TLS, NVML, DCGM; parsing
    collector                  scheduling, deltas, the metrics store, the query layer
    alerts                     rules, SLOs, evaluation, outbox, notifiers, silences
    dashboards                 chart data, figures, Grafana JSON
    web                        FastAPI app, routers, pages
    sim                        the simulated fleet (demo, tests)
    inferwatch                 the composition root: CLI, service, whole config, stores
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: package -> the packages it may import (besides itself); nothing may import ``inferwatch``
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "storage": {"core"},
    "exporters": {"core"},
    "collector": {"core", "storage", "exporters"},
    "alerts": {"core", "storage", "collector"},
    "dashboards": {"core", "collector", "alerts", "exporters"},
    "web": {"core", "storage", "collector", "alerts", "dashboards", "exporters"},
    "sim": {"core"},
    "inferwatch": {"core", "storage", "exporters", "collector", "alerts", "dashboards", "web", "sim"},
}


def module_graph(root: Path, packages: list[str]) -> dict[str, set[str]]:
    """module -> the project modules it imports, every import statement counted."""
    files: dict[str, Path] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join(parts)] = path

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in files.items():
        graph[module]  # noqa: B018 - every module is a node
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                names = [target, *(f"{target}.{a.name}" for a in node.names)]
            for name in names:
                found = resolve(name)
                if found is not None and found != module:
                    graph[module].add(found)
    return graph


def package_graph(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for a, targets in modules.items():
        out[a.split(".")[0]]  # noqa: B018
        for b in targets:
            if a.split(".")[0] != b.split(".")[0]:
                out[a.split(".")[0]].add(b.split(".")[0])
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph.get(start, ())))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


@pytest.fixture(scope="module")
def modules() -> dict[str, set[str]]:
    return module_graph(ROOT, list(ALLOWED))


def test_no_module_imports_itself_back(modules: dict[str, set[str]]) -> None:
    assert cycles(modules) == []


def test_packages_import_one_way(modules: dict[str, set[str]]) -> None:
    packages = package_graph(modules)
    assert cycles(packages) == []
    wrong = {pkg: sorted(targets - ALLOWED[pkg]) for pkg, targets in packages.items() if targets - ALLOWED[pkg]}
    assert wrong == {}, f"imports against the layering (package -> packages it may not import): {wrong}"
    importers = sorted(a for a, targets in modules.items() if "inferwatch" in {t.split(".")[0] for t in targets}
                       and not a.startswith("inferwatch"))
    assert importers == [], "the composition root is imported by nothing"


def test_every_product_package_is_in_the_layering() -> None:
    found = {p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in ("tests", "bench")}
    assert found == set(ALLOWED)


def test_the_graph_sees_imports_in_functions_and_under_type_checking(tmp_path: Path) -> None:
    """The checker itself: a cycle closed only by a function-level import, and one closed only
    under ``if TYPE_CHECKING:``, are both found; relative imports resolve."""
    pkg = tmp_path / "p"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from p import b\n")
    (pkg / "b.py").write_text("def f():\n    from p.a import x\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import y\n")
    (pkg / "d.py").write_text("from . import c\n")
    (pkg / "e.py").write_text("import p.a\n")
    graph = module_graph(tmp_path, ["p"])
    assert sorted(cycles(graph)) == [["p.a", "p.b"], ["p.c", "p.d"]]
    assert graph["p.e"] == {"p.a"}
