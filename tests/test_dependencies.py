"""pyproject's dependencies cover what the code relies on: every third-party module effscale
imports, and the argument parser's pydantic errors that cli/messages.py rewords."""

from __future__ import annotations

import ast
import re
import sys

import pytest
import typer
from helpers import REPO

import effscale.cli.messages

tomllib = pytest.importorskip("tomllib")  # python 3.11+

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# import name -> distribution name, where they differ
DISTRIBUTIONS = {"yaml": "pyyaml", "PIL": "pillow"}


def _floors() -> dict[str, str]:
    """distribution -> its ``>=`` floor ("" when unpinned) in ``[project] dependencies``."""
    floors = {}
    for spec in PYPROJECT["project"]["dependencies"]:
        match = re.match(r"([A-Za-z0-9_.-]+)\s*(?:>=\s*([\d.]+))?", spec)
        assert match, spec
        floors[match[1].lower()] = match[2] or ""
    return floors


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_every_module_imported_at_top_level_is_declared() -> None:
    """A module-level import of a third-party package (not one inside a function, which is an
    optional extra's, like fvcore's counter) names a declared dependency."""
    stdlib = set(sys.stdlib_module_names)
    imported = set()
    for path in (REPO / "effscale").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0
                     and node.module else [])
            imported.update(name.split(".")[0] for name in names)
    third_party = {DISTRIBUTIONS.get(n, n).lower() for n in imported
                   if n not in stdlib and n != "effscale" and n != "__future__"}
    assert sorted(third_party - set(_floors())) == []


def test_the_parsers_pydantic_errors_are_declared() -> None:
    """typer checks option values with pydantic from 0.29 on (0.28 printed click's "Invalid
    value for '--num-classes': 0 is not in the range x>=1."); messages.py reads pydantic 2's
    error dicts, so both are floors in pyproject."""
    floors = _floors()
    assert _version(floors["typer"]) >= (0, 29)
    assert _version(floors["pydantic"]) >= (2,)
    app = typer.Typer()

    @app.command()
    def main(num: int = typer.Option(1, "--num", min=1)) -> None:  # pragma: no cover
        pass

    command = typer.main.get_command(app)
    with pytest.raises(Exception) as caught:
        command.main(args=["--num", "0"], standalone_mode=False)
    assert hasattr(caught.value.__cause__, "errors"), "the installed typer has no pydantic cause"
    assert effscale.cli.messages.usage_message(caught.value) == "--num must be 1 or more, got 0"
