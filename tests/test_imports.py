"""workflow/rxbench's imports, read with `ast` (nothing is imported): no
cycle, and no import that runs back up the layer order below. Imports
inside functions count as much as those at the top: a lazy import is still
a dependency."""

from __future__ import annotations

import ast
from pathlib import Path
import pytest

pytestmark = pytest.mark.unit

PKG = Path(__file__).resolve().parents[1] / "workflow" / "rxbench"

# lowest first; a module may import its own layer's modules (without a
# cycle) and those of the layers below, never one above
LAYERS = [
    ("base", ["rxbench", "rxbench.util", "rxbench.state", "rxbench.result", "rxbench.queues", "rxbench.netdev_nl",
              "rxbench.versions", "rxbench.provenance"]),
    ("hosts", ["rxbench.hosts", "rxbench.hosts.*", "rxbench.proc", "rxbench.measure"]),
    ("stacks", ["rxbench.stacks", "rxbench.stacks.*"]),
    ("cells", ["rxbench.cells"]),
    ("platforms", ["rxbench.platforms", "rxbench.platforms.*", "rxbench.lease"]),
    ("config", ["rxbench.config"]),
    ("runner", ["rxbench.analysis", "rxbench.record", "rxbench.ndr", "rxbench.runner"]),
    ("analysis", ["rxbench.aggregate", "rxbench.reference", "rxbench.stats", "rxbench.estimate"]),
    ("presenting", ["rxbench.present", "rxbench.present.*", "rxbench.plots", "rxbench.tables",
                    "rxbench.paper"]),
    ("cli", ["rxbench.bench", "rxbench.cli", "rxbench.__main__"]),
]

# Known exceptions, each named with its reason: nothing else may run back up.
# (None today: the last one, g5k re-resolving the configuration, went when
# the walltime came to be sized in config.resolve.)
ALLOWED_UPWARD: set[tuple[str, str]] = set()

# the only modules that may import by a computed name: the two registries
BY_NAME = {"rxbench.stacks.registry", "rxbench.platforms"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """The rxbench modules `name` imports (a `from X import y` where y is a
    module counts as importing X.y)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}
    return {m for m in found if m in MODULES and m != name}


GRAPH = {m: imports(m) for m in MODULES}


def layer_of(name: str) -> int:
    for i, (_, members) in enumerate(LAYERS):
        for pat in members:
            if name == pat or (pat.endswith(".*") and name.startswith(pat[:-1])):
                return i
    raise AssertionError(f"{name} is in no layer of tests/test_imports.py: place it")


def test_every_module_has_a_layer():
    for m in MODULES:
        layer_of(m)


def test_no_import_runs_back_up():
    upward = sorted((m, d, LAYERS[layer_of(m)][0], LAYERS[layer_of(d)][0])
                    for m, deps in GRAPH.items() for d in deps
                    if layer_of(d) > layer_of(m) and (m, d) not in ALLOWED_UPWARD)
    assert not upward, "imports that run back up the layers:\n" + "\n".join(
        f"  {m} ({lm}) imports {d} ({ld})" for m, d, lm, ld in upward)


def test_the_allowed_exceptions_still_exist():
    # an exception that is gone is taken off the list, so it cannot come back unseen
    for m, d in ALLOWED_UPWARD:
        assert d in GRAPH.get(m, ()), f"{m} no longer imports {d}: remove it from ALLOWED_UPWARD"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}        # 1: on the path, 2: done
    path: list[str] = []

    def visit(m):
        state[m] = 1
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return path[path.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_catch_what_they_look_for():
    # the cycle finder and the reading of relative imports, on known cases
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert "rxbench.stacks.registry" in GRAPH["rxbench.cells"]
    assert "rxbench.platforms.base" in GRAPH["rxbench.record"]
    assert layer_of("rxbench.platforms.g5k.lease") > layer_of("rxbench.stacks.eth")
    # an upward import is found (a made-up one added to a copy of the graph)
    graph = {**GRAPH, "rxbench.stacks.eth": GRAPH["rxbench.stacks.eth"] | {"rxbench.runner"}}
    assert any(layer_of(d) > layer_of(m) for m, deps in graph.items() for d in deps)


def test_only_the_registries_import_by_name():
    """importlib.import_module / __import__ hide an import from the checks
    above: only the two registries (stacks, platforms) may use them."""
    users = set()
    for m, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "import_module" or \
                    isinstance(node, ast.Name) and node.id == "__import__":
                users.add(m)
    assert users <= BY_NAME, f"imports by a computed name outside the registries: " \
                             f"{sorted(users - BY_NAME)}"
