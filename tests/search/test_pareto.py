"""Accuracy against each measured cost: the Pareto front on hand-made points, the tables a
search writes, and candidates made equal in another cost than FLOPs (a fake one, no timing)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from helpers import FakeLatency, FakeTimer, NoisyLatency, demo_candidates

from effscale.compare import curve_plot
from effscale.compare import plot as compare_plot
from effscale.experiment.budgets import budget_recipe, get_budget
from effscale.experiment.rows import Row
from effscale.model.bases import get_base
from effscale.model.cost import CostMeter
from effscale.search import pareto, plot
from effscale.search.grid import budget_grid
from effscale.search.pareto import (
    Point,
    dominates,
    measured_costs,
    pareto_csv,
    pareto_front,
    pareto_tables,
    plot_pareto,
)
from effscale.search.recorded import RecordedSearch
from effscale.search.run import SearchSettings


def keys(points: list[Point]) -> list[str]:
    return [p.key for p in points]


# --------------------------------------------------------------------------- the front


def test_front_of_hand_made_points() -> None:
    points = [Point("a", 1.0, 0.50), Point("b", 2.0, 0.60), Point("c", 2.0, 0.55),
              Point("d", 3.0, 0.58), Point("e", 4.0, 0.70), Point("f", 0.5, 0.40)]
    # c: same cost as b, less accurate; d: costs more than b, less accurate
    assert keys(pareto_front(points)) == ["f", "a", "b", "e"]


def test_front_keeps_equal_points_and_drops_an_equal_cost_loser() -> None:
    points = [Point("x", 1.0, 0.5), Point("y", 1.0, 0.5), Point("z", 1.0, 0.4)]
    assert keys(pareto_front(points)) == ["x", "y"]
    assert not dominates(points[0], points[1]) and dominates(points[0], points[2])


def test_front_edge_cases() -> None:
    assert pareto_front([]) == []
    assert keys(pareto_front([Point("only", 3.0, 0.1)])) == ["only"]
    # strictly better in both: one point left
    assert keys(pareto_front([Point("worse", 2.0, 0.5), Point("better", 1.0, 0.6)])) == [
        "better"]
    # a cheaper point as accurate as a dearer one dominates it
    assert keys(pareto_front([Point("dear", 2.0, 0.6), Point("cheap", 1.0, 0.6)])) == [
        "cheap"]


# --------------------------------------------------------------------------- a search's tables


def row(name: str, acc: float, **attrs: float | str) -> Row:
    return Row(name, dict(attrs), accuracies=[acc])


ROWS = {
    "base": row("base", 0.50, flops=100, params=10, activations=1000, cost="latency",
                cost_value=0.010),
    "a": row("a", 0.62, flops=200, params=30, activations=1800, cost="latency",
             cost_value=0.021),
    "b": row("b", 0.60, flops=190, params=15, activations=2600, cost="latency",
             cost_value=0.019),
    "c": row("c", 0.55, flops=210, params=14, activations=2000, cost="latency",
             cost_value=0.020),
    "pending": Row("pending", {"flops": 205, "cost": "latency", "cost_value": 0.02}),
}


def test_tables_cover_every_measured_cost_as_ratios_to_the_base() -> None:
    tables = pareto_tables(ROWS)
    assert list(tables) == ["flops", "params", "activations", "latency"]
    flops = {e.candidate: e for e in tables["flops"]}
    assert set(flops) == {"base", "a", "b", "c"}  # only completed models
    assert flops["a"].ratio == 2.0 and flops["a"].value == 200
    assert [e.candidate for e in tables["flops"] if e.on_front] == ["base", "b", "a"]
    assert [e.candidate for e in tables["params"] if e.on_front] == ["base", "c", "b", "a"]
    assert [e.candidate for e in tables["latency"] if e.on_front] == ["base", "b", "a"]
    assert tables["latency"][1].ratio == pytest.approx(1.9)
    assert measured_costs(ROWS.values()) == ["flops", "params", "activations", "latency"]


def test_a_flops_search_has_the_counted_costs_only() -> None:
    rows = {"base": row("base", 0.5, flops=100, params=10), "a": row("a", 0.6, flops=200,
                                                                      params=20)}
    assert list(pareto_tables(rows)) == ["flops", "params"]


def test_csv_and_plot() -> None:
    tables = pareto_tables(ROWS)
    lines = list(csv.DictReader(io.StringIO(pareto_csv(tables))))
    assert len(lines) == 4 * 4
    first = lines[0]
    assert (first["cost"], first["candidate"], first["ratio"], first["on_front"]) == (
        "flops", "base", "1.0", "1")
    png = plot_pareto(tables, RecordedSearch.from_document(
        {"base": "b0", "dataset": "synthetic", "num_classes": 10, "cost_name": "latency",
         "grid": {"target": 2.0}}))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_plot_leaves_the_callers_matplotlib_as_it_was() -> None:
    """effscale's plots (search, Pareto, compare, curve) draw on a bare matplotlib Figure: a
    library caller's backend (a notebook's, say) and pyplot's figures stay as they were. They
    used to call ``matplotlib.use("Agg")`` and pyplot."""
    import matplotlib
    from matplotlib import pyplot

    previous = matplotlib.get_backend()
    pyplot.switch_backend("svg")  # a caller's backend, not effscale's Agg
    try:
        before = pyplot.get_fignums()
        png = plot_pareto(pareto_tables(ROWS), RecordedSearch.from_document(
            {"base": "b0", "dataset": "synthetic", "num_classes": 10, "grid": {"target": 2.0}}))
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.get_backend() == "svg" and pyplot.get_fignums() == before
    finally:
        pyplot.switch_backend(previous)
    plotting = [Path(m.__file__).read_text() for m in (plot, curve_plot, compare_plot, pareto)]
    assert not any("matplotlib.pyplot" in text or "matplotlib.use(" in text for text in plotting)


# --------------------------------------------------------------------------- another cost


def test_candidates_equal_in_another_cost_are_kept_in_its_window() -> None:
    fake = FakeLatency()
    kept, skipped = demo_candidates(fake)
    grid = [c for c in kept if not c.is_base]
    assert grid and fake.calls > 0
    for c in grid:
        assert c.cost == "latency" and abs(c.cost_ratio / 2 - 1) <= 0.05, c.key
        assert c.cost_value == pytest.approx(fake(get_base("b0", 10)) * c.cost_ratio)
        assert c.activations > 0 and c.flops > 0
        summary = c.summary()
        assert summary["cost"] == "latency" and summary["cost_ratio"] == round(c.cost_ratio, 4)
    # the same grid equal in FLOPs lands elsewhere: the cost, not FLOPs, was solved
    assert any(abs(c.flops_ratio / 2 - 1) > 0.05 for c in grid)
    assert all("in latency" in s.reason for s in skipped if "outside" in s.reason)


def test_a_candidate_whose_timing_missed_its_spread_bound_is_marked() -> None:
    """A latency search says which candidates' own timings are uncertain (kept and left out,
    in their trial attributes too), and how many of all its timings were."""
    meter = NoisyLatency()
    kept, skipped = demo_candidates(meter)
    noisy = [c for c in kept if c.full_resolution > 224]
    quiet = [c for c in kept if c.full_resolution <= 224]
    assert noisy and quiet
    assert all("could not get the spread" in c.cost_note for c in noisy)
    assert all(c.cost_note == "" for c in quiet)
    assert all(c.summary()["cost_note"] == c.cost_note for c in noisy)
    assert all("cost_note" not in c.summary() for c in quiet)
    assert all(s.cost_ratio is not None for s in skipped if "outside" in s.reason)
    missed = sum(1 for m in meter.results.values() if not m.timing.converged)
    summary = meter.spread_summary()
    assert summary.startswith(f"{missed} of {len(meter.results)} timings did not get their "
                              "spread (IQR/median) under 5%")
    worst = max(m.timing.rel_spread for m in meter.results.values())
    assert f"(worst {worst:.1%})" in summary and worst > 0.4


def test_a_timed_cost_that_met_its_bound_has_nothing_to_say() -> None:
    assert CostMeter("latency", use_cache=False).spread_summary() == ""
    quiet = NoisyLatency()
    quiet.measured(get_base("b0", 10))  # 224 px: met its bound
    assert quiet.spread_summary() == "" and quiet.note(get_base("b0", 10)) == ""


def _settings(cost: str = "flops", **more: object) -> SearchSettings:
    budget = get_budget("smoke")
    return SearchSettings(base="b0", dataset="synthetic", budget=budget,
                          recipe=budget_recipe(budget), grid=budget_grid(budget), cost=cost,
                          **more)


def test_cost_flops_keeps_the_identity_runs_always_had() -> None:
    plain = SearchSettings(base="b0", dataset="synthetic", budget=get_budget("smoke"),
                           recipe=budget_recipe(get_budget("smoke")),
                           grid=budget_grid(get_budget("smoke")))
    assert _settings("flops").identity("d") == plain.identity("d")
    assert "cost" not in plain.identity("d") and plain.cost_meter() is None
    params = _settings("params").identity("d")
    assert params["cost"] == {"name": "params", "batch": None}
    latency = _settings("latency", threads=1).identity("d")["cost"]
    assert latency["name"] == "latency" and latency["batch"] == 1
    assert latency["device"]["threads"] == 1
    train = _settings("train-step").cost_options()
    assert train.batch == get_budget("smoke").batch_size  # the proxy batch
    assert _settings("latency", cost_batch=8).cost_batch_used() == 8


def test_a_latency_search_re_times_its_base_and_says_how_far_the_machine_drifted() -> None:
    """Each timing's spread cannot show the machine slowing down between timings, nor a base
    timed in another session and read from the cache: the base is timed again after the
    candidates, and a change beyond the equal-cost window is a warning."""
    from effscale.model.cost import CostOptions
    from effscale.model.cost_timing import TimingPlan
    from effscale.search.run import cost_timing

    plan = TimingPlan(warmup=0, min_repeats=3, max_repeats=3)
    base = get_base("b0", 10)

    def meter(again: float) -> CostMeter:
        """20 ms while the candidates were timed; ``again`` after them."""
        timed = CostMeter("latency", CostOptions(plan=plan), use_cache=False,
                          timer=FakeTimer([0.020] * 3 + [again]))
        timed.measured(base)
        return timed

    record = cost_timing(meter(0.025), base, 0.05)
    assert (record["base_first_s"], record["base_again_s"], record["drift"]) == (0.02, 0.025,
                                                                               0.25)
    line = record["drift_line"]
    assert line.startswith("warning: latency: the base re-timed after the candidates at "
                           "25.00 ms, +25.0% from the 20.00 ms their ratios are to")
    assert "drifted by more than the ±5% window" in line
    assert cost_timing(meter(0.0202), base, 0.05)["drift_line"].endswith(
        "+1.0% from the 20.00 ms their ratios are to: within the ±5% window")
    # --flops-tolerance -1 keeps every candidate: no window to compare with (this crashed)
    assert cost_timing(meter(0.025), base, None)["drift_line"].endswith(
        "+25.0% from the 20.00 ms their ratios are to (no equal-cost window: every candidate "
        "is kept)")
    assert cost_timing(CostMeter("params"), base, 0.05) == {}
