"""The docs' claims that code can check: the budgets table (docs/budgets.md) and the
README's first command."""

from __future__ import annotations

import re

import pytest
from helpers import REPO

from effscale.experiment.budgets import BUDGETS, default_budget

README = (REPO / "README.md").read_text()
BUDGETS_PAGE = (REPO / "docs" / "budgets.md").read_text()


def _budget_rows() -> dict[str, list[str]]:
    rows = {}
    for line in BUDGETS_PAGE.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in BUDGETS and len(cells) >= 8:
            rows[cells[0]] = cells
    return rows


@pytest.mark.parametrize("name", list(BUDGETS))
def test_budgets_table_matches_the_budgets(name: str) -> None:
    row = _budget_rows()[name]
    budget = BUDGETS[name]
    train, val = (re.sub(r"[^0-9all]", "", part.split("(")[0]) for part in row[1].split("/"))
    assert train == (f"{budget.train_size}" if budget.train_size else "all")
    assert val == str(budget.val_size)
    assert row[2] == str(budget.epochs)
    assert row[3].startswith(f"{budget.resolution}")


def test_the_first_command_runs_a_budget_that_learns() -> None:
    block = README.split("<!-- install -->")[1].split("<!-- /install -->")[0]
    command = block.split("&&")[-1].strip().strip("`").strip()
    assert command == "effscale search --dataset synthetic"
    assert default_budget("synthetic") == "demo" and default_budget("cifar10") == "quick"
