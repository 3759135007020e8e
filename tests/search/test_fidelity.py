"""The fidelity check's summary: Kendall's tau between the proxy and the longer ranking."""

from __future__ import annotations

import pytest

from effscale.experiment.results import Row
from effscale.search.fidelity import describe, summarize


def _row(name: str, *accuracies: float) -> Row:
    row = Row(name, {})
    row.accuracies = list(accuracies)
    row.seconds = 60.0
    return row


def test_winner_held_and_tau() -> None:
    rows = {r.candidate: r for r in [
        _row("base", 0.50, 0.51), _row("a", 0.60, 0.61), _row("b", 0.58), _row("c", 0.55),
        _row("transfer/base", 0.56), _row("transfer/a", 0.66), _row("transfer/b", 0.67),
        _row("transfer/c", 0.60)]}
    summary = summarize(rows, "a", 2)
    assert summary["models"] == ["base", "a", "b", "c"]
    assert summary["kendall_tau"] == pytest.approx(4 / 6, abs=1e-3)  # one pair of 6 swapped
    assert summary["winner_held"] is False and summary["winner_after_check"] == "b"
    assert "did NOT hold" in describe(summary)


def test_no_summary_before_the_check_ran() -> None:
    assert summarize({"base": _row("base", 0.5), "a": _row("a", 0.6)}, "a", 2) == {}
