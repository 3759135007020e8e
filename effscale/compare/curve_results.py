"""A scaling curve's outputs: its table (curve.csv, curve.yaml), per phi the first direction
against every other direction (Holm per phi, with the power line), and its figure (curve.png).

Method: the directions are named before the run, so there is no selection to correct for; at
each phi the first direction (the found coefficients, or the first named set) is compared
with every other direction that reached that phi, by :func:`effscale.experiment.stats.compare`
on the seed noise pooled over that phi's models, and the comparisons are Holm-adjusted
together (one family per phi). The power line is the smallest true difference each
comparison detects with 80 % power at the first Holm step's level, now and with more seeds
(:func:`effscale.search.decision.power_of`). A point's accuracy interval is the 95 % t
interval of its mean over seeds on the noise pooled over every model of the curve.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml

from effscale import __version__, atomic
from effscale.compare.curve import curve_key
from effscale.compare.models import CompareModel
from effscale.compare.recorded import RecordedCompare
from effscale.experiment import stats
from effscale.experiment.rows import Row, collect_rows
from effscale.scaling.derive import phi_label
from effscale.search.candidates import BASE_KEY
from effscale.search.decision import Power, power_of

CSV_FIELDS = ["direction", "phi", "model", "cost", "cost_ratio", "flops_ratio", "target_ratio",
              "full_resolution", "proxy_px", "seeds", "val_accuracy", "ci_low", "ci_high"]


@dataclass
class PhiFamily:
    """At one phi: the first direction against each other one, Holm-adjusted, with power."""

    phi: float
    first: str
    comparisons: list[stats.Comparison] = field(default_factory=list)
    power: list[Power] = field(default_factory=list)
    seed_std: float = 0.0
    seed_dof: int = 0

    def lines(self) -> list[str]:
        """One line per other direction: separated or not, and what could be detected."""
        label = f"φ={phi_label(self.phi)}"
        if not self.comparisons:
            return [f"{label}: {self.first} has no result to compare yet"]
        out = []
        for c in self.comparisons:
            other = c.b.rsplit("-phi", 1)[0]
            if not c.testable:
                verdict = f"not testable ({c.untestable})"
            elif c.separated:
                verdict = "separated " + ("ABOVE" if c.margin > 0 else "BELOW")
            else:
                verdict = "within the noise"
            power = next((p for p in self.power if p.versus == c.b), None)
            reach = ("" if power is None or math.isnan(power.detectable) else
                     f"; detects {power.detectable * 100:.2f} points with 80 % power")
            out.append(f"{label}: {self.first} vs {other}: {c.margin * 100:+.2f} points (95 % "
                       f"interval {c.low * 100:+.2f} to {c.high * 100:+.2f}, "
                       f"{stats.format_p(c.p_adjusted, 'adjusted p')} over {c.family}) -> "
                       f"{verdict}{reach}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"phi": self.phi, "direction": self.first,
                "seed_std_pooled": round(self.seed_std, 5), "seed_dof": self.seed_dof,
                "separated_from_all": bool(self.comparisons)
                and all(c.separated for c in self.comparisons),
                "lines": self.lines(),
                "comparisons": [c.describe() for c in self.comparisons],
                "power": [{"versus": p.versus, "detectable": _round(p.detectable),
                           "alpha": round(p.alpha, 5),
                           "more_seeds": {k: _round(v) for k, v in p.more.items()}}
                          for p in self.power]}


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 5)


def _done(row: Row | None) -> bool:
    return row is not None and row.completed and row.mean_correct is not None


def phi_family(rows: dict[str, Row], names: list[str], phi: float) -> PhiFamily:
    """The first of ``names`` (directions) against every other at ``phi``."""
    first = names[0]
    family = PhiFamily(phi, first)
    mine = rows.get(curve_key(first, phi))
    others = [rows[k] for k in (curve_key(n, phi) for n in names[1:]) if _done(rows.get(k))]
    at_phi = ([mine] if _done(mine) else []) + others
    noise, dof = stats.pooled_seed_noise([r.accuracies for r in at_phi])
    family.seed_std, family.seed_dof = noise, dof
    if mine is None or not _done(mine):
        return family
    family.comparisons = stats.holm_family([
        stats.compare(mine.candidate, mine.mean_correct, r.candidate, r.mean_correct, noise,
                      seeds_a=len(mine.accuracies), seeds_b=len(r.accuracies), noise_dof=dof)
        for r in others]) if others else []
    testable = sum(c.testable for c in family.comparisons)
    alpha = stats.ALPHA / max(1, testable)  # the first Holm step: the strictest level
    family.power = [power_of(c, noise, dof, len(at_phi), alpha)
                    for c in family.comparisons if c.testable]
    return family


def families(rows: dict[str, Row], names: list[str], phis: list[float]) -> list[PhiFamily]:
    return [phi_family(rows, names, phi) for phi in phis]


def interval(row: Row | None, noise: float, dof: int) -> tuple[float, float] | None:
    """The 95 % t interval of a point's mean accuracy on the curve's pooled seed noise
    (``None`` without measured noise)."""
    if row is None or not row.completed or dof < 1 or noise <= 0:
        return None
    half = stats.t_quantile(0.975, dof) * noise / math.sqrt(len(row.accuracies))
    return row.mean - half, row.mean + half


def records(models: list[CompareModel], rows: dict[str, Row]) -> list[dict[str, Any]]:
    """The table: one record per point (the base as every direction's phi 0)."""
    noise, dof = stats.pooled_seed_noise([r.accuracies for r in rows.values() if r.completed])
    out = []
    for model in models:
        key = BASE_KEY if model.kind == "base" else model.full.name
        row = rows.get(key)
        done = row is not None and row.completed
        ci = interval(row, noise, dof)
        out.append({
            "direction": model.label, "phi": model.phi if model.phi is not None else 0.0,
            "model": key, "cost": model.full.cost,
            "cost_ratio": round(model.full.cost_ratio, 4),
            "flops_ratio": round(model.full.flops_ratio, 4),
            "target_ratio": round(model.target_ratio, 4) if model.kind != "base" else 1.0,
            "full_resolution": model.full.config.resolution, "proxy_px": model.px,
            "seeds": len(row.accuracies) if row is not None else 0,
            "val_accuracy": round(row.mean, 5) if done else None,
            "ci_low": round(ci[0], 5) if ci else None, "ci_high": round(ci[1], 5) if ci else None,
        })
    return out


def checked_phis(rows: dict[str, Row], first: str, phis: list[float]) -> list[float]:
    """The phi at which the first direction has a finished result: how far it was checked."""
    return [p for p in phis if _done(rows.get(curve_key(first, p)))]


def write_curve_outputs(study: optuna.Study, models: list[CompareModel],
                        settings: RecordedCompare, run_dir: Path) -> dict[str, Any]:
    """curve.csv, curve.yaml and curve.png, atomically, for the study's current state;
    returns curve.yaml's document."""
    from effscale.compare.curve_plot import plot_curve

    rows = collect_rows(study)
    table = records(models, rows)
    names, phis = list(settings.directions), list(settings.phis)
    per_phi = families(rows, names, phis)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
    writer.writeheader()
    writer.writerows(table)
    atomic.write_text(run_dir / "curve.csv", buffer.getvalue())
    doc = {
        "base": settings.base, "dataset": settings.dataset, "budget": settings.budget,
        "phis": phis, "directions": names, "tested": names[0], "target": settings.target,
        "window": settings.window, "left_out": list(settings.left_out),
        "checked_phi": checked_phis(rows, names[0], phis),
        "method": stats.METHOD, "points": table,
        "families": [f.to_dict() for f in per_phi], "tool_version": __version__,
    }
    atomic.write_text(run_dir / "curve.yaml", yaml.safe_dump(json.loads(json.dumps(doc)),
                                                               sort_keys=False))
    atomic.write_bytes(run_dir / "curve.png", plot_curve(table, settings))
    return doc
