"""The package's import graph (issue 24): no cycle, and no import against the layers.

Every ``import`` and ``from ... import`` in ``ledmus/`` counts, also those inside
functions (a lazy import is still a dependency, only a later one).  Layers, lowest first:
the shared utilities, then the solvers, systems, surrogates, coupler, evaluation and the
command line; a module may import its own layer and those below.  The package root holds
only ``__version__`` and imports nothing, so anything may import it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ledmus"

#: top-level module or subpackage of ledmus -> layer (a module imports only layers <= its own)
LAYERS = {
    **dict.fromkeys(
        (
            "atomic",
            "device",
            "validation",
            "metrics",
            "progress",
            "rundir",
            "trajectory",
            "plugins",
            "windows",
        ),
        0,
    ),
    "solvers": 1,
    **dict.fromkeys(("systems", "datasets"), 2),
    "surrogates": 3,
    "coupler": 4,
    "evaluation": 5,
    **dict.fromkeys(("cli", "cli_models", "__main__"), 6),
}


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The ledmus modules ``name`` imports (a ``from X import y`` counts as ``X.y`` when
    that is a module, else as ``X``)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" for alias in node.names] + [source]
            targets = [t for t in targets[:-1] if t in known] or [source]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        for target in targets:
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in known and target != name:
                found.add(target)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def layer(name: str) -> int | None:
    parts = name.split(".")
    return None if len(parts) == 1 else LAYERS.get(parts[1])


def test_every_module_has_a_layer(graph):
    missing = sorted({m for m in graph if len(m.split(".")) > 1 and layer(m) is None})
    assert not missing, f"give these a layer in LAYERS: {missing}"


def test_the_package_root_imports_nothing(graph):
    assert graph["ledmus"] == set()


def against_layers(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{m} -> {d}"
        for m, deps in sorted(graph.items())
        for d in sorted(deps)
        if d != "ledmus" and m != "ledmus" and layer(d) > layer(m)
    ]


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_against_the_layers(graph):
    assert not against_layers(graph), "\n".join(against_layers(graph))


def test_no_import_cycle(graph):
    assert not find_cycles(graph), find_cycles(graph)


def test_the_checks_see_lazy_imports_cycles_and_upward_imports(tmp_path):
    """The checks can fail: a planted lazy cycle between two modules and an import of the
    coupler by a solver are found."""
    (tmp_path / "ledmus").mkdir()
    (tmp_path / "ledmus" / "__init__.py").write_text("")
    (tmp_path / "ledmus" / "a.py").write_text("def f():\n    from .b import g\n")
    (tmp_path / "ledmus" / "b.py").write_text("from . import a\n")
    known = {
        "ledmus": tmp_path / "ledmus" / "__init__.py",
        "ledmus.a": tmp_path / "ledmus" / "a.py",
        "ledmus.b": tmp_path / "ledmus" / "b.py",
    }
    planted = {name: imports(name, path, known) for name, path in known.items()}
    assert planted == {"ledmus": set(), "ledmus.a": {"ledmus.b"}, "ledmus.b": {"ledmus.a"}}
    assert find_cycles(planted) == [["ledmus.a", "ledmus.b"]]
    upward = {"ledmus.solvers.fhn": {"ledmus.coupler.engine"}, "ledmus.coupler.engine": set()}
    assert against_layers(upward) == ["ledmus.solvers.fhn -> ledmus.coupler.engine"]


#: the modules that read a run's settings records (``ledmus.coupler.settings``): the
#: command line, the MUSCLE3 components' setup, and what both engines share; everything
#: else (solvers, systems, surrogates, validation, trajectory, the recorder, the
#: coordinator and its schedules, the mappers) gets plain values or its own small record
SETTINGS_READERS = {
    "ledmus.cli",
    "ledmus.coupler.components.common",
    "ledmus.coupler.engine",
    "ledmus.coupler.output",
    "ledmus.coupler.run",
}


def test_run_settings_stay_in_the_coupler_facade(graph):
    readers = {m for m, deps in graph.items() if "ledmus.coupler.settings" in deps}
    assert readers == SETTINGS_READERS
