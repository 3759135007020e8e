"""Accuracy against every measured cost: the Pareto front of a search's trained models.

A search's candidates are equal in one cost (FLOPs by default, or ``--cost``), but each is
measured in others too: FLOPs, parameters and activations always, the search's own cost when
it is another. For each cost, the front is the models that no other model beats on both
counts (costs no more and is at least as accurate, better in one), so one run answers "best at
2x FLOPs" and "best at 2x latency here" together. Costs are shown as ratios to the base's.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass

from effscale.experiment.rows import Row
from effscale.search.candidates import BASE_KEY
from effscale.search.design import design
from effscale.search.recorded import RecordedSearch

# cost name -> the trial attribute that holds its full-size value
COUNTED = {"flops": "flops", "params": "params", "activations": "activations"}
CSV_FIELDS = ["cost", "candidate", "value", "ratio", "val_accuracy", "seeds", "on_front"]


@dataclass(frozen=True)
class Point:
    """One model in one cost: its cost (any unit, lower is better) and its accuracy."""

    key: str
    cost: float
    accuracy: float


def dominates(a: Point, b: Point) -> bool:
    """``a`` costs no more and is at least as accurate as ``b``, and is better in one."""
    return (a.cost <= b.cost and a.accuracy >= b.accuracy
            and (a.cost < b.cost or a.accuracy > b.accuracy))


def pareto_front(points: Iterable[Point]) -> list[Point]:
    """The points no other point dominates, cheapest first (equal points are all kept)."""
    ordered = sorted(points, key=lambda p: (p.cost, -p.accuracy, p.key))
    front: list[Point] = []
    best = float("-inf")  # the best accuracy among strictly cheaper points
    i = 0
    while i < len(ordered):
        same = [p for p in ordered[i:] if p.cost == ordered[i].cost]
        top = same[0].accuracy
        if top > best:
            front += [p for p in same if p.accuracy == top]
            best = top
        i += len(same)
    return front


@dataclass(frozen=True)
class Entry:
    """One model's row in one cost's table."""

    cost: str
    candidate: str
    value: float
    ratio: float  # over the base's value (the value itself when there is no base)
    accuracy: float
    seeds: int
    on_front: bool


def _value(row: Row, cost: str) -> float | None:
    attr = COUNTED.get(cost)
    if attr is None:
        attr = "cost_value" if design(row).cost == cost else ""
    value = row.attrs.get(attr)
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def measured_costs(rows: Iterable[Row]) -> list[str]:
    """The costs the rows carry: FLOPs, params, activations where recorded, then the search's
    own cost when it is another."""
    rows = list(rows)
    names = [c for c in COUNTED if any(_value(r, c) is not None for r in rows)]
    extra = [d.cost for r in rows if (d := design(r)).cost]
    return names + [c for c in dict.fromkeys(extra) if c not in names]


def pareto_tables(rows: dict[str, Row]) -> dict[str, list[Entry]]:
    """For each measured cost, every completed model (the base included) with its cost, its
    ratio to the base's and whether it is on the front; cheapest first."""
    done = [r for r in rows.values() if r.completed]
    base = rows.get(BASE_KEY)
    tables: dict[str, list[Entry]] = {}
    for cost in measured_costs(done):
        valued = [(r, v) for r in done if (v := _value(r, cost)) is not None]
        reference = _value(base, cost) if base is not None else None
        points = {r.candidate: Point(r.candidate, v / reference if reference else v, r.mean)
                  for r, v in valued}
        front = {p.key for p in pareto_front(points.values())}
        entries = [Entry(cost, r.candidate, v, points[r.candidate].cost, r.mean,
                         len(r.accuracies), r.candidate in front) for r, v in valued]
        tables[cost] = sorted(entries, key=lambda e: (e.ratio, -e.accuracy, e.candidate))
    return tables


def pareto_csv(tables: dict[str, list[Entry]]) -> str:
    """pareto.csv: one line per model and cost."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for entries in tables.values():
        for e in entries:
            writer.writerow({"cost": e.cost, "candidate": e.candidate, "value": f"{e.value:.6g}",
                             "ratio": round(e.ratio, 4), "val_accuracy": round(e.accuracy, 5),
                             "seeds": e.seeds, "on_front": int(e.on_front)})
    return buffer.getvalue()


def plot_pareto(tables: dict[str, list[Entry]], settings: RecordedSearch) -> bytes:
    """PNG bytes: one panel per cost, accuracy against the cost ratio, the front as a step
    line, the base as a square and the search's equal-cost target as a dotted line."""
    from matplotlib.figure import Figure  # no pyplot: no backend or figure left behind

    costs = list(tables) or ["flops"]
    fig = Figure(figsize=(4.2 * len(costs), 4), dpi=110)
    axes = fig.subplots(1, len(costs), squeeze=False)
    searched, target = settings.cost_name, settings.target
    for ax, cost in zip(axes[0], costs):
        entries = tables.get(cost, [])
        others = [e for e in entries if e.candidate != BASE_KEY]
        ax.scatter([e.ratio for e in others], [e.accuracy * 100 for e in others],
                   c=["tab:red" if e.on_front else "tab:blue" for e in others], s=30, zorder=3)
        for e in others:
            ax.annotate(e.candidate, (e.ratio, e.accuracy * 100), fontsize=6,
                        textcoords="offset points", xytext=(4, 2))
        for e in entries:
            if e.candidate == BASE_KEY:
                ax.plot([e.ratio], [e.accuracy * 100], "s", color="black", label="base")
        front = [e for e in entries if e.on_front]
        if front:
            ax.step([e.ratio for e in front], [e.accuracy * 100 for e in front], where="post",
                    color="tab:red", linewidth=1, label="Pareto front")
        if cost == searched:
            ax.axvline(target, color="tab:green", linestyle=":", label="equal-cost target")
        ax.set_xlabel(f"{cost} ÷ base's (full size)")
        ax.set_ylabel("validation accuracy (%)")
        ax.set_title(f"{cost}" + (" (the search's cost)" if cost == searched else ""))
        ax.grid(alpha=0.3)
        if entries:
            ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{settings.base} on {settings.dataset}: accuracy "
                 "against each measured cost", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
