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

from effscale import __version__, atomic
from effscale.experiment import stats
from effscale.experiment.study import item_of, split_item
from effscale.model.config import rules_from_dict, save_config
from effscale.scaling.derive import Coefficients, derive_config
from effscale.search.candidates import BASE_KEY, TRANSFER_PREFIX

SKIP_MATCHED = ("smoke", "demo")  # budgets whose runs do not write configs/matched/
CHANCE_MARGIN = 0.05  # a base this close to chance accuracy learned nothing useful
CSV_FIELDS = [
    "candidate", "state", "alpha", "beta", "gamma", "resolution", "params", "flops",
    "flops_ratio", "full_resolution", "proxy_flops_ratio", "nominal_ratio", "blocks", "seeds",
    "val_accuracy", "val_accuracy_std",
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
    seed_dof: int = 0  # degrees of freedom of seed_std: sum(n_i - 1)
    untested: list[str] = field(default_factory=list)  # one seed on a side: no test possible


def select(rows: dict[str, Row], num_classes: int, flops_window: tuple[float, float] | None
           = None) -> Selection:
    """Best mean validation accuracy among completed candidates in the FLOPs window; ties go
    to fewer measured FLOPs. Then the signal checks described in :mod:`effscale.experiment.stats`."""
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
    noise, dof = stats.pooled_seed_noise([r.accuracies for r in rows.values() if r.completed])
    selection.seed_std, selection.seed_dof = noise, dof
    selection.noise_from_base_only = dof > 0 and all(
        r.candidate == BASE_KEY for r in rows.values() if len(r.accuracies) >= 2)
    if base is not None and base.completed and base.mean < chance + CHANCE_MARGIN:
        selection.verdict = (
            f"NO SIGNAL: the base reached {base.mean:.1%} validation accuracy, within "
            f"{CHANCE_MARGIN:.0%} of chance ({chance:.1%}); the proxy did not learn, so the "
            "ranking of candidates is noise. Use a larger budget.")
        return selection
    _compare_all(selection, noise, dof)
    return selection


def _names(names: list[str], most: int = 6) -> str:
    return ", ".join(names[:most]) + (" ..." if len(names) > most else "")


def _compare_all(selection: Selection, noise: float, dof: int) -> None:
    """The winner against the base and against every other ranked candidate, Holm-corrected
    as one family; ``signal`` only when the winner is separated above the base."""
    winner, base = selection.winner, selection.base
    assert winner is not None
    wc = winner.mean_correct
    if wc is None:
        selection.verdict = ("winner chosen by accuracy alone (no per-example results stored), "
                             "so whether it beats the base is untested")
        return
    seeds = len(winner.accuracies)
    family: list[stats.Comparison] = []
    has_base = base is not None and base.mean_correct is not None
    if has_base:
        family.append(stats.compare(winner.candidate, wc, BASE_KEY, base.mean_correct, noise,
                                    seeds_a=seeds, seeds_b=len(base.accuracies),
                                    noise_dof=dof))
    for row in selection.ranked[1:]:
        if row.mean_correct is not None:
            family.append(stats.compare(winner.candidate, wc, row.candidate, row.mean_correct,
                                        noise, seeds_a=seeds, seeds_b=len(row.accuracies),
                                        noise_dof=dof))
    selection.comparisons = stats.holm_family(family)
    vs_base = selection.comparisons[0] if has_base else None
    others = selection.comparisons[1:] if has_base else selection.comparisons
    selection.tied = [c.b for c in others if c.testable and not c.separated]
    selection.untested = [c.b for c in others if not c.testable]
    selection.signal = vs_base is not None and vs_base.separated and vs_base.margin > 0

    holm = (f"{stats.format_p(vs_base.p_adjusted, 'Holm p')} over {vs_base.family} comparisons"
            if vs_base is not None else "")
    if vs_base is None:
        base_part = "there is no base result, so whether the winner beats the base is untested"
    elif not vs_base.testable:
        base_part = (f"whether the winner beats the base is untested ({vs_base.margin * 100:+.2f}"
                     f" points; {stats.NOT_TESTABLE}: the winner has {seeds}, the base "
                     f"{vs_base.seeds_b})" if vs_base.untestable == stats.NOT_TESTABLE else
                     f"whether the winner beats the base is untested ({vs_base.untestable})")
    elif selection.signal:
        base_part = f"the winner beats the base by {vs_base.margin * 100:.2f} points ({holm})"
    elif vs_base.separated:
        base_part = (
            f"the winner does NOT beat the base: it is {abs(vs_base.margin) * 100:.2f} points "
            f"BELOW it ({holm}); at this budget the ~2x-FLOPs candidates are under-trained, "
            "so their ranking compares short-training speed as much as capacity")
    else:
        base_part = (f"NOT SEPARATED FROM THE BASE: the winner's {vs_base.margin * 100:+.2f} "
                     f"points ({holm}) are within the noise, so at this budget the search "
                     "cannot tell the candidates from the base")

    runner = selection.runner_up
    runner_cmp = next((c for c in others if runner is not None and c.b == runner.candidate),
                      None)
    if runner is None:
        runner_part = "there is no runner-up"
    elif runner_cmp is None:
        runner_part = "the runner-up has no per-example results, so it was not compared"
    elif runner_cmp.separated:
        runner_part = (f"it is separated from the runner-up {runner.candidate} "
                       f"({stats.format_p(runner_cmp.p_adjusted, 'Holm p')})")
    elif runner_cmp.testable:
        runner_part = (f"it is NOT separated from the runner-up: statistically tied with "
                       f"{len(selection.tied)} candidate(s): {_names(selection.tied)}")
    else:
        runner_part = f"whether it beats the runner-up {runner.candidate} is untested"
    if selection.untested:
        runner_part += (
            f"; its ranking against {len(selection.untested)} candidate(s) with a single seed "
            f"on a side ({_names(selection.untested)}) is untested: --repeat-top N (N >= 2) "
            "trains the best candidates under more seeds")
        if runner_cmp is not None and not runner_cmp.testable and selection.tied:
            runner_part += (f"; statistically tied with {len(selection.tied)} candidate(s): "
                            f"{_names(selection.tied)}")

    if dof == 0:
        noise_part = ("seed noise not measured (no model has two seeds: use --repeats 2 or "
                      "more), so only example noise is counted and nothing is testable")
    else:
        noise_part = (f"pooled seed std {noise:.2%} on {dof} degree(s) of freedom "
                      f"(t_0.975 = {stats.t_quantile(0.975, dof):.2f})")
        if selection.noise_from_base_only:
            # Measured on CIFAR-10 at the quick budget: the base's two seeds differed by 0.06
            # points, the compound phi=1 model's by 1.24 (effscale compare, README).
            noise_part += ("; seed noise measured on the base only, and larger models can "
                           "vary more between seeds: --repeat-top 2 measures it on the best "
                           "candidates")
    selection.verdict = f"{base_part}; {runner_part}; {noise_part}"


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
    doc["seed_dof"] = selection.seed_dof
    if selection.comparisons:
        doc["holm"] = (f"p-values Holm-adjusted over the {selection.comparisons[0].family} "
                       "comparisons of the winner (with the base and every other ranked "
                       "candidate); separated when the adjusted p < 0.05 and both sides have "
                       ">= 2 seeds")
    if selection.runner_up is not None:
        doc["runner_up"] = {"candidate": selection.runner_up.candidate,
                            "val_accuracy": round(selection.runner_up.mean, 5)}
    doc["comparisons"] = [c.describe() for c in selection.comparisons[:6]]
    doc["tied_with_winner"] = selection.tied
    doc["untested_against_winner"] = selection.untested
    if selection.stability:
        doc["rank_stability"] = selection.stability
    doc["tool_version"] = __version__
    return doc


def remembered_top(study: optuna.Study, attr: str, top: int) -> list[str]:
    """The ``top`` best grid candidates by the report's ranking, chosen once and stored in the
    study's user attribute ``attr``, so a resume or another worker gets the same ones even
    after later trainings have moved the ranking."""
    stored = study.user_attrs.get(attr)
    if stored is not None:
        return list(stored)
    settings = study.user_attrs["settings"]
    window = settings.get("flops_window")
    selection = select(grid_rows(collect_rows(study)), int(settings["num_classes"]),
                       tuple(window) if window else None)
    keys = [row.candidate for row in selection.ranked[:top]]
    study.set_user_attr(attr, keys)
    return keys


def grid_rows(rows: dict[str, Row]) -> dict[str, Row]:
    """The rows that take part in the ranking: everything but the fidelity check's."""
    return {k: v for k, v in rows.items() if not k.startswith(TRANSFER_PREFIX)}


def write_outputs(study: optuna.Study, run_dir: Path) -> Selection:
    """Write trials.csv, coefficients.yaml, configs/ and the plot for the study's current
    state. Files are replaced atomically, so a reader never sees a half-written one."""
    from effscale.search.run import fidelity

    settings = study.user_attrs["settings"]
    rows = collect_rows(study)
    window = settings.get("flops_window")
    selection = select(grid_rows(rows), int(settings["num_classes"]),
                       tuple(window) if window else None)
    selection.stability = _stability(study)
    factor = int(settings.get("identity", {}).get("budget", {}).get("transfer_factor", 2))
    check = fidelity.summarize(rows, selection.winner.candidate if selection.winner else None,
                               factor)
    if check:
        selection.verdict += "; " + fidelity.describe(check)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(run_dir / "trials.csv", rows)
    if selection.winner is not None:
        doc = coefficients_document(selection, settings)
        rules = rules_from_dict(settings["rules"])
        doc.update(_precision(doc, settings, rules))
        if check:
            doc["fidelity"] = check
        atomic.write_text(run_dir / "coefficients.yaml", yaml.safe_dump(doc, sort_keys=False))
        _write_families(doc, settings, rules, run_dir)
        from effscale.search.plot import plot_search

        atomic.write_bytes(run_dir / "search.png",
                           plot_search(grid_rows(rows), selection, settings))
    return selection


def _precision(doc: dict[str, Any], settings: dict[str, Any], rules: Any) -> dict[str, Any]:
    """The winner's cost at full size and at the proxy, and each coefficient with the values
    that build the same proxy model (see :mod:`effscale.search.aliases`)."""
    from effscale.model.bases import get_base
    from effscale.search.aliases import coefficient_aliases, phi_range
    from effscale.search.grid import GridSpec

    grid = settings.get("grid")
    if not grid:
        return {}
    spec = GridSpec(**grid)
    base = get_base(settings["base"])
    aliases = coefficient_aliases(base, doc["alpha"], doc["beta"], doc["gamma"], spec, rules)
    for name in ("alpha", "beta", "gamma"):
        aliases[name]["at_phi_7"] = phi_range(aliases[name]["same_model"], 7)
    return {"cost": settings.get("cost", ""), "aliases": aliases}


def _write_families(doc: dict[str, Any], settings: dict[str, Any], rules: Any,
                    run_dir: Path) -> None:
    """configs/b0..b7.yaml (alpha**phi, beta**phi, gamma**phi) and, unless the run skips it,
    configs/matched/b0..b7.yaml (each B_phi solved to 2**phi x B0's full-size FLOPs)."""
    from effscale.scaling.derive import match_flops

    coeffs = Coefficients(doc["alpha"], doc["beta"], doc["gamma"], base=settings["base"])
    classes = int(settings["num_classes"])
    for phi in range(8):
        config = derive_config(coeffs, float(phi), settings["base"], classes, rules)
        save_config(config, run_dir / "configs" / f"{config.name}.yaml")
    if settings.get("budget") in SKIP_MATCHED:
        # Solving B7 along a depth-heavy direction (alpha = 1.8: 61x the blocks) took minutes
        # on 2 cores, more than the demo itself; `effscale derive --coefficients
        # RUN/coefficients.yaml --match-flops` writes the family when it is wanted.
        return
    for phi in range(8):
        matched = match_flops(coeffs, float(phi), settings["base"], classes, rules,
                              counter="torch")
        save_config(matched.config, run_dir / "configs" / "matched" / f"{matched.config.name}.yaml")


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
        if candidate != BASE_KEY and not candidate.startswith(TRANSFER_PREFIX) \
                and trial.value is not None:
            by_seed.setdefault(seed, {})[candidate] = float(trial.value)
    result = stats.rank_stability(by_seed)
    if result:
        result["kendall_tau"] = [round(t, 3) for t in result["kendall_tau"]]
        result["mean_kendall_tau"] = round(result["mean_kendall_tau"], 3)
    return result
