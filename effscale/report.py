"""Outputs of a search, built from the study alone (so ``effscale report`` works mid-run and
from another machine): trials.csv, coefficients.yaml, configs/b0..b7.yaml, a plot, a summary.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from optuna.trial import TrialState

from effscale import __version__, atomic, stats
from effscale.candidates import BASE_KEY
from effscale.config import rules_from_dict, save_config
from effscale.derive import Coefficients, derive_config
from effscale.study import item_of, split_item

CHANCE_MARGIN = 0.05  # a base this close to chance accuracy learned nothing useful
CSV_FIELDS = [
    "candidate", "state", "alpha", "beta", "gamma", "resolution", "params", "flops",
    "flops_ratio", "nominal_ratio", "blocks", "seeds", "val_accuracy", "val_accuracy_std",
    "val_accuracy_per_epoch", "epochs_run", "train_seconds", "images_per_second", "failure",
    "aliases",
]


@dataclass
class Row:
    """One candidate, its trials over seeds merged."""

    candidate: str
    attrs: dict[str, Any]
    accuracies: list[float] = field(default_factory=list)
    correct: list[np.ndarray] = field(default_factory=list)
    per_epoch: list[list[float]] = field(default_factory=list)
    seconds: float = 0.0
    images_per_second: list[float] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def completed(self) -> bool:
        return bool(self.accuracies)

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies)) if self.accuracies else float("nan")

    @property
    def std(self) -> float:
        return stats.seed_std(self.accuracies)

    @property
    def mean_correct(self) -> np.ndarray | None:
        return np.mean(self.correct, axis=0) if self.correct else None

    def csv_row(self) -> dict[str, Any]:
        keep = {k: self.attrs.get(k, "") for k in CSV_FIELDS if k in self.attrs}
        state = "complete" if self.completed else (self.states[-1].lower() if self.states else "")
        return {
            **keep, "candidate": self.candidate, "state": state, "seeds": len(self.accuracies),
            "val_accuracy": round(self.mean, 5) if self.completed else "",
            "val_accuracy_std": round(self.std, 5) if len(self.accuracies) > 1 else "",
            "val_accuracy_per_epoch": " ".join(
                f"{a:.4f}" for a in (self.per_epoch[0] if self.per_epoch else [])),
            "epochs_run": len(self.per_epoch[0]) if self.per_epoch else 0,
            "train_seconds": round(self.seconds, 1),
            "images_per_second": round(float(np.mean(self.images_per_second)), 1)
            if self.images_per_second else "",
            "failure": "; ".join(self.failures),
        }


def collect_rows(study: optuna.Study) -> dict[str, Row]:
    """Merge trials per candidate; a PRUNED trial counts as run but not as a result."""
    rows: dict[str, Row] = {}
    for trial in study.get_trials(deepcopy=False):
        item = item_of(trial)
        if item is None or trial.state == TrialState.WAITING:
            continue
        candidate, _ = split_item(item)
        row = rows.setdefault(candidate, Row(candidate, {}))
        attrs = trial.user_attrs
        if attrs.get("failure_kind") in ("duplicate",):
            continue
        row.attrs.update({k: v for k, v in attrs.items() if not k.startswith("_")})
        row.states.append(trial.state.name)
        row.seconds += float(attrs.get("train_seconds", 0.0))
        if "images_per_second" in attrs:
            row.images_per_second.append(float(attrs["images_per_second"]))
        if attrs.get("failure"):
            row.failures.append(f"{attrs.get('failure_kind', 'error')}: {attrs['failure']}")
        if "val_accuracy_per_epoch" in attrs:
            row.per_epoch.append(list(attrs["val_accuracy_per_epoch"]))
        if trial.state == TrialState.COMPLETE and trial.value is not None:
            row.accuracies.append(float(trial.value))
            if "val_correct" in attrs:
                row.correct.append(stats.unpack_correct(attrs["val_correct"],
                                                        int(attrs["val_size"])))
    return rows


@dataclass
class Selection:
    """The winner and what can honestly be said about it."""

    winner: Row | None
    runner_up: Row | None
    base: Row | None
    ranked: list[Row]
    signal: bool
    verdict: str
    comparisons: list[stats.Comparison] = field(default_factory=list)
    tied: list[str] = field(default_factory=list)
    stability: dict[str, Any] = field(default_factory=dict)
    seed_std: float = 0.0  # pooled over every model with two or more seeds
    failed: list[Row] = field(default_factory=list)  # no result: diverged, errors, OOM
    noise_from_base_only: bool = False  # only the base ran under several seeds


def select(rows: dict[str, Row], num_classes: int, flops_window: tuple[float, float] | None
           = None) -> Selection:
    """Best mean validation accuracy among completed candidates in the FLOPs window; ties go
    to fewer measured FLOPs. Then the signal checks described in :mod:`effscale.stats`."""
    base = rows.get(BASE_KEY)
    ranked = [r for r in rows.values() if r.candidate != BASE_KEY and r.completed]
    if flops_window is not None:
        low, high = flops_window
        ranked = [r for r in ranked if low <= float(r.attrs.get("flops_ratio", 0)) <= high]
    ranked.sort(key=lambda r: (-round(r.mean, 6), float(r.attrs.get("flops", 0))))
    winner = ranked[0] if ranked else None
    runner = ranked[1] if len(ranked) > 1 else None
    selection = Selection(winner, runner, base, ranked, False, "")
    selection.failed = [r for r in rows.values() if not r.completed and r.failures
                        and r.states and r.states[-1] == "FAIL"]
    if winner is None:
        selection.verdict = "no candidate has completed yet"
        return selection
    chance = 1.0 / num_classes
    noise = stats.pooled_seed_std([r.accuracies for r in rows.values() if r.completed])
    selection.seed_std = noise
    selection.noise_from_base_only = noise > 0 and all(
        r.candidate == BASE_KEY for r in rows.values() if len(r.accuracies) >= 2)
    if base is not None and base.completed and base.mean < chance + CHANCE_MARGIN:
        selection.verdict = (
            f"NO SIGNAL: the base reached {base.mean:.1%} validation accuracy, within "
            f"{CHANCE_MARGIN:.0%} of chance ({chance:.1%}); the proxy did not learn, so the "
            "ranking of candidates is noise. Use a larger budget.")
        return selection
    _compare_all(selection, noise)
    return selection


def _compare_all(selection: Selection, noise: float) -> None:
    winner, base = selection.winner, selection.base
    assert winner is not None
    wc = winner.mean_correct
    others = [r for r in selection.ranked[1:] if r.mean_correct is not None]
    if wc is None:
        selection.signal = True
        selection.verdict = "winner chosen by accuracy alone (no per-example results stored)"
        return
    seeds = len(winner.accuracies)
    for row in others:
        comparison = stats.compare(winner.candidate, wc, row.candidate, row.mean_correct, noise,
                                   seeds_a=seeds, seeds_b=len(row.accuracies))
        selection.comparisons.append(comparison)
        if not comparison.separated:
            selection.tied.append(row.candidate)
    if base is not None and base.mean_correct is not None:
        vs_base = stats.compare(winner.candidate, wc, BASE_KEY, base.mean_correct, noise,
                                seeds_a=seeds, seeds_b=len(base.accuracies))
        selection.comparisons.insert(0, vs_base)
        beats_base = vs_base.separated and vs_base.margin > 0
        below_base = vs_base.separated and vs_base.margin < 0
    else:
        beats_base = below_base = False
    runner = selection.runner_up
    tied_runner = runner is not None and runner.candidate in selection.tied
    all_tied_with_base = base is not None and base.completed and noise > 0 and all(
        abs(r.mean - base.mean) <= 2 * noise * (1 / len(r.accuracies)
                                                + 1 / len(base.accuracies)) ** 0.5
        for r in selection.ranked)
    unmeasured = ("" if noise > 0 else "; seed noise not measured (no model has two seeds: use "
                  "--repeats 2 or more), so only example noise is counted")
    if selection.noise_from_base_only:
        # Measured on CIFAR-10 at the quick budget: the base's two seeds differed by 0.06
        # points, the compound phi=1 model's by 1.24 (effscale compare, README).
        unmeasured += ("; seed noise measured on the base only, and larger models can vary "
                       "more between seeds: --repeat-top 2 measures it on the best candidates")
    if below_base:
        unmeasured += (
            f"; even the winner is {abs(winner.mean - base.mean) * 100:.1f} points BELOW the base: "
            "at this budget the ~2x-FLOPs candidates are under-trained, so their ranking "
            "compares short-training speed as much as capacity")
    if all_tied_with_base:
        selection.verdict = ("NO SIGNAL: every candidate is within twice the seed noise of "
                             f"the base (seed std {noise:.2%}); the search cannot tell them apart")
    elif tied_runner:
        selection.signal = beats_base
        selection.verdict = (
            f"winner is statistically tied with {len(selection.tied)} candidate(s): "
            f"{', '.join(selection.tied[:6])}{' ...' if len(selection.tied) > 6 else ''}; "
            f"{'it does' if beats_base else 'it does not'} clearly beat the base{unmeasured}")
    else:
        selection.signal = True
        versus_base = (" and beats the base" if beats_base else ""
                       if below_base else " but not from the base")
        selection.verdict = "winner is separated from the runner-up" + versus_base + unmeasured


def coefficients_document(selection: Selection, settings: dict[str, Any]) -> dict[str, Any]:
    """What coefficients.yaml holds."""
    winner, base = selection.winner, selection.base
    doc: dict[str, Any] = {
        "base": settings["base"], "dataset": settings["dataset"], "signal": selection.signal,
        "verdict": selection.verdict, "method": stats.METHOD,
    }
    if winner is not None:
        doc.update(
            alpha=float(winner.attrs["alpha"]), beta=float(winner.attrs["beta"]),
            gamma=float(winner.attrs["gamma"]), candidate=winner.candidate,
            val_accuracy=round(winner.mean, 5), val_accuracy_std=round(winner.std, 5),
            seeds=len(winner.accuracies),
            flops_ratio_measured=float(winner.attrs.get("flops_ratio", 0.0)),
            flops_ratio_nominal=float(winner.attrs.get("nominal_ratio", 0.0)),
            proxy_resolution=int(winner.attrs.get("resolution", 0)),
        )
    if base is not None and base.completed:
        doc["base_val_accuracy"] = round(base.mean, 5)
        doc["base_val_accuracy_std"] = round(base.std, 5)
        doc["base_seeds"] = len(base.accuracies)
    doc["seed_std_pooled"] = round(selection.seed_std, 5)
    if selection.runner_up is not None:
        doc["runner_up"] = {"candidate": selection.runner_up.candidate,
                            "val_accuracy": round(selection.runner_up.mean, 5)}
    doc["comparisons"] = [c.describe() for c in selection.comparisons[:6]]
    doc["tied_with_winner"] = selection.tied
    if selection.stability:
        doc["rank_stability"] = selection.stability
    doc["tool_version"] = __version__
    return doc


def write_outputs(study: optuna.Study, run_dir: Path) -> Selection:
    """Write trials.csv, coefficients.yaml, configs/ and the plot for the study's current
    state. Files are replaced atomically, so a reader never sees a half-written one."""
    settings = study.user_attrs["settings"]
    rows = collect_rows(study)
    window = settings.get("flops_window")
    selection = select(rows, int(settings["num_classes"]), tuple(window) if window else None)
    selection.stability = _stability(study)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(run_dir / "trials.csv", rows)
    if selection.winner is not None:
        doc = coefficients_document(selection, settings)
        atomic.write_text(run_dir / "coefficients.yaml", yaml.safe_dump(doc, sort_keys=False))
        coeffs = Coefficients(doc["alpha"], doc["beta"], doc["gamma"], base=settings["base"])
        rules = rules_from_dict(settings["rules"])
        for phi in range(8):
            config = derive_config(coeffs, float(phi), settings["base"],
                                   int(settings["num_classes"]), rules)
            save_config(config, run_dir / "configs" / f"{config.name}.yaml")
        from effscale.plot import plot_search

        atomic.write_bytes(run_dir / "search.png", plot_search(rows, selection, settings))
    return selection


def _write_csv(path: Path, rows: dict[str, Row]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in sorted(rows.values(), key=lambda r: (r.candidate != BASE_KEY, r.candidate)):
        writer.writerow(row.csv_row())
    atomic.write_text(path, buffer.getvalue())


def _stability(study: optuna.Study) -> dict[str, Any]:
    by_seed: dict[int, dict[str, float]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        item = item_of(trial)
        if item is None:
            continue
        candidate, seed = split_item(item)
        if candidate != BASE_KEY and trial.value is not None:
            by_seed.setdefault(seed, {})[candidate] = float(trial.value)
    result = stats.rank_stability(by_seed)
    if result:
        result["kendall_tau"] = [round(t, 3) for t in result["kendall_tau"]]
        result["mean_kendall_tau"] = round(result["mean_kendall_tau"], 3)
    return result
