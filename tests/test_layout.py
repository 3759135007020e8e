"""The package's layers: every effscale import (module level, inside functions, under
TYPE_CHECKING) goes down the layer list, so there is no import circle, hidden or not."""

from __future__ import annotations

import ast
from pathlib import Path

import effscale

PACKAGE = Path(effscale.__file__).parent
# Top to bottom; a module may import its own layer or any layer below it.
LAYERS = ["cli", "report", "compare", "search", "experiment", "train", "scaling", "datasets",
          "model", "ground"]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    if module == "effscale":
        return "face"
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else "ground"


def layers(graph: dict[str, set[str]]) -> list[str]:
    """LAYERS with the package face (``effscale/__init__``) just above the highest layer it
    imports: what it re-exports may not import it back, the layers above may."""
    highest = min((LAYERS.index(layer(target)) for target in graph["effscale"]),
                  default=LAYERS.index("ground"))
    return [*LAYERS[:highest], "face", *LAYERS[highest:]]


def imports() -> dict[str, set[str]]:
    """module -> the effscale modules it imports, wherever the import statement stands."""
    known = {module_name(p) for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = module_name(path)
        targets = graph.setdefault(source, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names]
                targets.update(n if n in known else node.module for n in names
                               if n.startswith("effscale"))
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith("effscale."))
        targets.discard(source)
    return graph


def test_every_import_goes_down_the_layers() -> None:
    graph = imports()
    order = layers(graph)
    upward = [(source, target) for source, targets in graph.items() for target in targets
              if order.index(layer(target)) < order.index(layer(source))]
    assert upward == []


def test_no_import_circle() -> None:
    graph = imports()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target):], target])
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_layer_test_sees_a_hidden_import() -> None:
    """An import inside a function counts (the 0.1 circles hid there)."""
    source = "def f():\n    from effscale.cli.main import app\n"
    found = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)]
    assert found and found[0].module == "effscale.cli.main"
