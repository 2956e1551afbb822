"""No import cycles among the project's modules.

Every ``import`` statement counts: at module level, under ``if TYPE_CHECKING:``, and inside
functions (a lazy import still ties two modules together). Imports are read with `ast`,
nothing is executed. Modules are named as installed: ``convert/`` is ``tmax_local.convert``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Package directories and the module name each maps to (pyproject's package-dir).
PACKAGES = {"tmax_local": ROOT / "tmax_local", "tmax_local.convert": ROOT / "convert"}

# Cycles allowed on purpose: none. (The approval parser/wrapper cycle was removed by the
# "parse, then expand" split: syntax parses, wrappers expands and calls it.)
ALLOWED_CYCLES: set[frozenset[str]] = set()


def module_files(packages: dict[str, Path]) -> dict[str, Path]:
    """Module name → file, for every .py file under the package directories."""
    found: dict[str, Path] = {}
    for name, directory in packages.items():
        for path in sorted(directory.rglob("*.py")):
            rel = path.relative_to(directory).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if any(p in ("data", "__pycache__") for p in parts):
                continue
            found[".".join([name, *parts])] = path
    return found


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import statement in ``tree``."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                yield base, alias.name


def import_graph(packages: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the project modules it imports."""
    files = module_files(packages)
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for target, name in _imports(tree, module, path.name == "__init__.py"):
            if name is not None and f"{target}.{name}" in files:
                target = f"{target}.{name}"  # `from pkg import submodule`
            while target and target not in files:  # `import a.b.c` of a non-module name
                target = target.rpartition(".")[0]
            if target and target != module:
                graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_among_project_modules() -> None:
    graph = import_graph(PACKAGES)
    assert "tmax_local.convert.api" in graph and "tmax_local.tui.app" in graph
    bad = [sorted(c) for c in cycles(graph) if c not in ALLOWED_CYCLES]
    assert not bad, f"import cycles: {bad}"


def test_the_allowed_cycle_is_still_there() -> None:
    """An allowance that no longer matches a cycle must be removed, not left to hide one."""
    found = set(cycles(import_graph(PACKAGES)))
    assert found >= ALLOWED_CYCLES, sorted(map(sorted, ALLOWED_CYCLES - found))


def test_the_checker_finds_type_checking_and_lazy_cycles(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n"
    )
    (pkg / "b.py").write_text("from .sub import c\n")
    (pkg / "sub" / "c.py").write_text("def f():\n    from .. import a\n")
    (pkg / "d.py").write_text("import pkg.a\n")
    graph = import_graph({"pkg": pkg})
    assert graph["pkg.d"] == {"pkg.a"}
    assert cycles(graph) == [frozenset({"pkg.a", "pkg.b", "pkg.sub.c"})]
