"""Outputs of a search, built from the study alone (so ``effscale report`` works mid-run and
from another machine): trials.csv, coefficients.yaml, configs/b0..b7.yaml, a plot, a summary,
and accuracy against every measured cost (pareto.csv, pareto.png).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from optuna.trial import TrialState

from effscale import __version__, atomic
from effscale.experiment import stats
from effscale.experiment.queue import item_of, split_item
from effscale.experiment.results import Row, collect_rows
from effscale.experiment.rundir import run_settings
from effscale.model.bases import get_base
from effscale.model.config import rules_from_dict
from effscale.scaling.derive import (
    CHECKED_KEY,
    Coefficients,
    derive_family,
    match_flops,
    reach_text,
    save_family,
)
from effscale.search import fidelity
from effscale.search.aliases import coefficient_aliases, phi_range
from effscale.search.candidates import BASE_KEY
from effscale.search.confirm import ConfirmPlan, current_decision, stage_costs
from effscale.search.decision import METHOD as DECISION_METHOD
from effscale.search.design import Design, design
from effscale.search.estimate_stages import estimate_vs_actual
from effscale.search.grid import GridSpec
from effscale.search.ladder import ladder_summary
from effscale.search.pareto import pareto_csv, pareto_tables, plot_pareto
from effscale.search.plot import plot_search
from effscale.search.refine import ROUNDS_ATTR as REFINE_ROUNDS
from effscale.search.refine import STOP_ATTR as REFINE_STOP
from effscale.search.refine import answer_position
from effscale.search.results import Selection, grid_rows, is_screening, select, with_decision

SKIP_MATCHED = ("smoke", "demo")  # budgets whose runs do not write configs/matched/
CSV_FIELDS = [
    "candidate", "state", "alpha", "beta", "gamma", "resolution", "params", "flops",
    "flops_ratio", "full_resolution", "proxy_flops_ratio", "nominal_ratio", "blocks", "seeds",
    "val_accuracy", "val_accuracy_std",
    "val_accuracy_per_epoch", "epochs_run", "train_seconds", "images_per_second", "failure",
    "aliases", "activations", "cost", "cost_value", "cost_ratio", "cost_note",
]


UNDECIDED_HEADER = ("UNDECIDED: effscale search did not decide for these coefficients "
                    "({why}).\nThis family follows an answer the data did not support; "
                    "read {run}coefficients.yaml before you train it.")


def coefficients_document(selection: Selection, settings: dict[str, Any]) -> dict[str, Any]:
    """What coefficients.yaml holds. The winner's accuracy is its confirmation mean when
    there is a confirmation (unbiased by the selection), else its screening mean."""
    winner, base, decision = selection.winner, selection.base, selection.decision
    doc: dict[str, Any] = {
        "base": settings["base"], "dataset": settings["dataset"],
        "decided": selection.decided, "signal": selection.signal,
        "verdict": selection.verdict, "method": DECISION_METHOD,
    }
    confirmed = decision.winner if decision is not None else None
    confirmed_base = decision.base if decision is not None else None
    if winner is not None:
        shown = confirmed if confirmed is not None and confirmed.candidate == winner.candidate \
            else winner
        won = design(winner)
        alpha, beta, gamma = won.coefficients
        doc.update(
            alpha=alpha, beta=beta, gamma=gamma, candidate=winner.candidate,
            val_accuracy=round(shown.mean, 5), val_accuracy_std=round(shown.std, 5),
            seeds=len(shown.accuracies),
            accuracy_from="confirmation" if shown is not winner else "screening",
            screening_val_accuracy=round(winner.mean, 5),
            flops_ratio_measured=won.flops_ratio or 0.0,
            flops_ratio_nominal=won.nominal_ratio or 0.0,
            proxy_resolution=won.resolution or 0,
        )
    shown_base = confirmed_base or base
    if shown_base is not None and shown_base.completed:
        doc["base_val_accuracy"] = round(shown_base.mean, 5)
        doc["base_val_accuracy_std"] = round(shown_base.std, 5)
        doc["base_seeds"] = len(shown_base.accuracies)
    if decision is not None:
        doc["confirmation"] = decision.to_dict()
    doc["screening_verdict"] = selection.screening_verdict or selection.verdict
    doc["screening_seed_std_pooled"] = round(selection.seed_std, 5)
    doc["screening_seed_dof"] = selection.seed_dof
    if selection.runner_up is not None:
        doc["runner_up"] = {"candidate": selection.runner_up.candidate,
                            "screening_val_accuracy": round(selection.runner_up.mean, 5)}
    doc["screening_comparisons"] = [c.describe() for c in selection.comparisons[:6]]
    doc["tied_with_winner"] = decision.tied if decision is not None else selection.tied
    if selection.stability:
        doc["rank_stability"] = selection.stability
    phi = search_phi(settings)
    if winner is not None and phi != 1:
        doc["multipliers_at_phi"] = {k: doc[k] for k in ("alpha", "beta", "gamma")}
        doc.update(zip(("alpha", "beta", "gamma"), search_coefficients(design(winner), settings)))
    doc[CHECKED_KEY] = [phi]
    doc["reach"] = reach_text([phi])
    doc["tool_version"] = __version__
    return doc


def search_phi(settings: dict[str, Any]) -> float:
    """The phi a search's candidates cost: log2 of its target (1 for 2x the base)."""
    target = float((settings.get("grid") or {}).get("target", 2.0))
    return round(math.log2(target), 6)


def search_coefficients(chosen: Design, settings: dict[str, Any]
                        ) -> tuple[float, float, float]:
    """A candidate's (alpha, beta, gamma) as ``derive`` applies them. The grid holds the
    multipliers at the search's phi and derive applies ``alpha**phi``, so the coefficient is
    ``depth**(1/phi)``: >= 1 whether the search grew or shrank (the multipliers themselves
    at phi = 1)."""
    phi = search_phi(settings)
    values = chosen.coefficients
    if phi == 1:
        return values
    return tuple(round(v ** (1 / phi), 6) for v in values)  # type: ignore[return-value]


def family_phis(settings: dict[str, Any]) -> tuple[int, ...]:
    """The family a search writes to configs/: B0-B7 when it grew, B0 down to B-3 when it
    shrank (a shrinking answer is checked below the base, not above it)."""
    return tuple(range(8)) if search_phi(settings) > 0 else (0, -1, -2, -3)


def undecided_reason(selection: Selection) -> str:
    """Why a run's answer is not decided, in a few words ("" when it is)."""
    if selection.decided:
        return ""
    decision = selection.decision
    if decision is None:
        return "screening only, no confirmation"
    if decision.verdict.startswith("NO SIGNAL"):
        return "the proxy did not learn: the base is near chance on confirmation"
    if decision.overturned_by:
        return f"the confirmation overturned the screening's pick ({decision.overturned_by})"
    if decision.shrinking:
        return ("no shrinking direction is separated above the other confirmed ones on "
                f"{decision.seeds} confirmation seeds")
    vs = decision.vs_base
    if vs is not None and vs.separated and vs.margin < 0:
        return "the winner is below the base on confirmation"
    return (f"winner vs base within the noise on {decision.seeds} confirmation seeds"
            if vs is not None and vs.testable else "winner vs base not testable")


def search_answer(study: optuna.Study, rows: dict[str, Row] | None = None
                  ) -> tuple[Selection, dict[str, Any]]:
    """The study's answer as it stands: the screening's ranking with the confirmation's
    decision applied, and the fidelity of the screening's pick (screening vs confirmation
    ranking). The one place the CLI, coefficients.yaml and report.html take it from."""
    settings = run_settings(study)
    rows = collect_rows(study) if rows is None else rows
    window = settings.get("flops_window")
    num_classes = int(settings["num_classes"])
    plan = ConfirmPlan.from_settings(settings)
    selection = select(grid_rows(rows), num_classes, tuple(window) if window else None,
                       plan.target)
    selection.stability = _stability(study)
    with_decision(selection, current_decision(study, plan, num_classes, rows), plan.top > 0)
    pick = selection.screening_pick
    decision = selection.decision
    check = fidelity.summarize(rows, pick.candidate if pick else None, plan.factor,
                               decision.tied_with(pick.candidate)
                               if decision is not None and pick is not None else None,
                               shrinking=plan.target < 1)
    return selection, check


def write_outputs(study: optuna.Study, run_dir: Path) -> Selection:
    """Write trials.csv, coefficients.yaml, configs/ and the plot for the study's current
    state. Files are replaced atomically, so a reader never sees a half-written one. An
    undecided answer is marked in coefficients.yaml (``decided: false``, ``caveat``) and in
    a header line of every config it writes."""

    settings = run_settings(study)
    rows = collect_rows(study)
    selection, check = search_answer(study, rows)
    plan = ConfirmPlan.from_settings(settings)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(run_dir / "trials.csv", rows)
    if tables := pareto_tables(grid_rows(rows)):
        atomic.write_text(run_dir / "pareto.csv", pareto_csv(tables))
        atomic.write_bytes(run_dir / "pareto.png", plot_pareto(tables, settings))
    if selection.winner is not None:
        doc = coefficients_document(selection, settings)
        rules = rules_from_dict(settings["rules"])
        doc.update(_precision(doc, settings, rules))
        doc.update(_cost(selection, settings))
        if check:
            doc["fidelity"] = check
            doc["fidelity_line"] = fidelity.describe(check)
        doc.update(refinement_document(selection, rows, settings, study.user_attrs))
        if plan.top:
            doc["stages"] = stage_costs(study)
        doc["ladder"] = ladder_summary(study, rows)
        if (estimated := estimate_vs_actual(study)) is not None:
            doc["estimate_vs_actual"] = estimated
        header = "" if selection.decided else UNDECIDED_HEADER.replace(
            "{why}", undecided_reason(selection))
        if header:
            doc["caveat"] = header.format(run="").replace("\n", " ")
        atomic.write_text(run_dir / "coefficients.yaml", yaml.safe_dump(doc, sort_keys=False))
        _write_families(doc, settings, rules, run_dir, header)

        atomic.write_bytes(run_dir / "search.png",
                           plot_search(grid_rows(rows), selection, settings))
    return selection


def refinement_document(selection: Selection, rows: dict[str, Any], settings: dict[str, Any],
                        attrs: dict[str, Any]) -> dict[str, Any]:
    """The answer's position on the equal-cost curve (interior, at a feasible bound, at an
    edge the refinement did not get past) and the refinement rounds that ran."""
    found = answer_position(selection.winner, rows, settings, attrs)
    if found is None:
        return {}
    return {"position": found.to_dict(), "position_line": found.text,
            "refinement": {"rounds": attrs.get(REFINE_ROUNDS, []),
                           "stopped": attrs.get(REFINE_STOP) or ""}}


def _precision(doc: dict[str, Any], settings: dict[str, Any], rules: Any) -> dict[str, Any]:
    """The winner's cost at full size and at the proxy, and each coefficient with the values
    that build the same proxy model (see :mod:`effscale.search.aliases`)."""

    grid = settings.get("grid")
    if not grid or search_phi(settings) != 1:  # aliases are of phi = 1 grid points
        return {}
    spec = GridSpec(**grid)
    base = get_base(settings["base"])
    aliases = coefficient_aliases(base, doc["alpha"], doc["beta"], doc["gamma"], spec, rules)
    for name in ("alpha", "beta", "gamma"):
        aliases[name]["at_phi_7"] = phi_range(aliases[name]["same_model"], 7)
    return {"cost": settings.get("cost", ""), "aliases": aliases}


def _cost(selection: Selection, settings: dict[str, Any]) -> dict[str, Any]:
    """The cost the candidates are equal in, and the winner's measured ratio of it when it is
    not FLOPs (``flops_ratio_measured`` is always there)."""
    name = settings.get("cost_name", "flops")
    doc: dict[str, Any] = {"cost_name": name}
    winner = selection.winner
    won = design(winner)
    if name != "flops" and won.cost_ratio is not None:
        doc["cost_ratio_measured"] = won.cost_ratio
        if won.cost_note:
            doc["cost_note"] = won.cost_note
    return doc


def _write_families(doc: dict[str, Any], settings: dict[str, Any], rules: Any,
                    run_dir: Path, header: str = "") -> None:
    """configs/b0..b7.yaml (alpha**phi, beta**phi, gamma**phi; b0 to b-3 for a shrinking
    search) and, unless the run skips it, configs/matched/ (the same phis, each B_phi solved
    to 2**phi x B0's full-size FLOPs, whatever the search's cost: ``effscale derive
    --coefficients RUN/coefficients.yaml --match latency`` matches a family on a timed
    cost)."""

    coeffs = Coefficients(doc["alpha"], doc["beta"], doc["gamma"], base=settings["base"])
    classes = int(settings["num_classes"])
    save_family(derive_family(coeffs, family_phis(settings), settings["base"], classes, rules),
                run_dir / "configs", header.format(run="../"))
    if settings.get("budget") in SKIP_MATCHED:
        # Solving B7 along a depth-heavy direction (alpha = 1.8: 61x the blocks) took minutes
        # on 2 cores, more than the demo itself; `effscale derive --coefficients
        # RUN/coefficients.yaml --match-flops` writes the family when it is wanted.
        return
    save_family([match_flops(coeffs, float(phi), settings["base"], classes, rules,
                             counter="torch").config for phi in family_phis(settings)],
                run_dir / "configs" / "matched", header.format(run="../../"))


def csv_record(row: Row) -> dict[str, Any]:
    """A row of trials.csv."""
    keep = {k: row.attrs.get(k, "") for k in CSV_FIELDS if k in row.attrs}
    state = "complete" if row.completed else (row.states[-1].lower() if row.states else "")
    return {
        **keep, "candidate": row.candidate, "state": state, "seeds": len(row.accuracies),
        "val_accuracy": round(row.mean, 5) if row.completed else "",
        "val_accuracy_std": round(row.std, 5) if len(row.accuracies) > 1 else "",
        "val_accuracy_per_epoch": " ".join(
            f"{a:.4f}" for a in (row.per_epoch[0] if row.per_epoch else [])),
        "epochs_run": len(row.per_epoch[0]) if row.per_epoch else 0,
        "train_seconds": round(row.seconds, 1),
        "images_per_second": round(float(np.mean(row.images_per_second)), 1)
        if row.images_per_second else "",
        "failure": "; ".join(row.failures),
    }


def _write_csv(path: Path, rows: dict[str, Row]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in sorted(rows.values(), key=lambda r: (r.candidate != BASE_KEY, r.candidate)):
        writer.writerow(csv_record(row))
    atomic.write_text(path, buffer.getvalue())


def _stability(study: optuna.Study) -> dict[str, Any]:
    by_seed: dict[int, dict[str, float]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        item = item_of(trial)
        if item is None:
            continue
        candidate, seed = split_item(item)
        if candidate != BASE_KEY and is_screening(candidate) and trial.value is not None:
            by_seed.setdefault(seed, {})[candidate] = float(trial.value)
    result = stats.rank_stability(by_seed)
    if result:
        result["kendall_tau"] = [round(t, 3) for t in result["kendall_tau"]]
        result["mean_kendall_tau"] = round(result["mean_kendall_tau"], 3)
    return result
