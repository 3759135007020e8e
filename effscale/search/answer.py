"""A search's answer, computed once from its study.

:func:`answer_of` reads the study and returns a :class:`SearchAnswer`: the screening's
ranking with the confirmation's decision applied, every model's result, the fidelity of the
screening's pick, the answer's position on the equal-cost curve, the proxy ladder, what each
stage cost, and the family the answer scales to. Everything a run shows is read from that
one object: coefficients.yaml (:attr:`SearchAnswer.document`), answer.json
(:meth:`SearchAnswer.to_json`), configs/ (:attr:`SearchAnswer.family`), the CLI's printing
and report.html. Nothing downstream recomputes the verdict, re-derives the family or reads
coefficients.yaml back. It is built from the study alone, so ``effscale report`` gives the
same answer mid-run and from another machine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from effscale import __version__
from effscale.experiment import stats
from effscale.experiment.queue import item_of, split_item
from effscale.experiment.rows import Row, collect_rows
from effscale.experiment.rundir import run_settings
from effscale.model.bases import get_base
from effscale.model.config import ModelConfig, ScalingRules
from effscale.model.flops import config_params
from effscale.scaling.derive import CHECKED_KEY, Coefficients, derive_family, reach_text
from effscale.search import fidelity as fidelity_check
from effscale.search.aliases import coefficient_aliases, phi_range
from effscale.search.candidates import BASE_KEY, CONFIRM_PREFIX, LADDER_PREFIX
from effscale.search.confirm import ConfirmPlan, current_decision, stage_costs
from effscale.search.decision import METHOD as DECISION_METHOD
from effscale.search.decision import Decision
from effscale.search.design import Design, design
from effscale.search.edges import Position
from effscale.search.estimate_stages import estimate_vs_actual
from effscale.search.ladder import ladder_summary
from effscale.search.recorded import RecordedSearch
from effscale.search.refine import ROUNDS_ATTR as REFINE_ROUNDS
from effscale.search.refine import STOP_ATTR as REFINE_STOP
from effscale.search.refine import answer_position
from effscale.search.selection import Selection, grid_rows, is_screening, select, with_decision

ANSWER_SCHEMA = 1  # answer.json's layout version: raised when a field changes meaning

UNDECIDED_HEADER = ("UNDECIDED: effscale search did not decide for these coefficients "
                    "({why}).\nThis family follows an answer the data did not support; "
                    "read {run}coefficients.yaml before you train it.")


# --------------------------------------------------------------------------- the parts


@dataclass(frozen=True)
class ModelResult:
    """One model's trainings in one stage, merged over seeds: what it is and what it scored."""

    key: str  # the candidate's key, without its stage's prefix ("base", "a1.00_b1.00_g1.400")
    stage: str  # "screening", "confirmation" or "ladder"
    design: Design
    state: str  # "complete", or the last trial's state in lower case
    accuracies: tuple[float, ...]
    seeds: tuple[int, ...]
    seconds: float
    failures: tuple[str, ...] = ()

    @property
    def completed(self) -> bool:
        return bool(self.accuracies)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.accuracies)) if self.accuracies else None

    @property
    def std(self) -> float | None:
        return stats.seed_std(list(self.accuracies)) if len(self.accuracies) > 1 else None

    @classmethod
    def of(cls, row: Row) -> ModelResult:
        key, stage = row.candidate, "screening"
        for prefix, name in ((CONFIRM_PREFIX, "confirmation"), (LADDER_PREFIX, "ladder")):
            if key.startswith(prefix):
                key, stage = key[len(prefix):], name
        state = "complete" if row.completed else (row.states[-1].lower() if row.states else "")
        return cls(key, stage, design(row), state, tuple(float(a) for a in row.accuracies),
                   tuple(row.seeds), float(row.seconds), tuple(row.failures))

    def to_dict(self) -> dict[str, Any]:
        d = self.design
        return {
            "key": self.key, "stage": self.stage, "state": self.state,
            "alpha": d.alpha, "beta": d.beta, "gamma": d.gamma,
            "proxy_resolution": d.resolution, "full_resolution": d.full_resolution,
            "params": d.params, "flops_ratio": d.flops_ratio,
            "proxy_flops_ratio": d.proxy_flops_ratio, "nominal_ratio": d.nominal_ratio,
            "cost": d.cost, "cost_ratio": d.cost_ratio,
            "val_accuracy": _round(self.mean), "val_accuracy_std": _round(self.std),
            "accuracies": [round(a, 5) for a in self.accuracies], "seeds": list(self.seeds),
            "train_seconds": round(self.seconds, 1), "failures": list(self.failures),
        }


@dataclass(frozen=True)
class FamilyMember:
    """One config of the family the answer scales to: B_phi and its parameter count."""

    phi: int
    config: ModelConfig
    params: int  # counted on the meta device, nothing allocated

    @property
    def blocks(self) -> int:
        return sum(stage.repeats for stage in self.config.stages)

    def to_dict(self) -> dict[str, Any]:
        p = self.config.provenance
        return {
            "name": self.config.name, "phi": self.phi,
            "depth_multiplier": p.depth_multiplier if p else None,
            "width_multiplier": p.width_multiplier if p else None,
            "resolution_multiplier": p.resolution_multiplier if p else None,
            "resolution": self.config.resolution, "blocks": self.blocks,
            "last_stage_channels": self.config.stages[-1].channels, "params": self.params,
        }


def _round(value: float | None, digits: int = 5) -> float | None:
    return None if value is None else round(value, digits)


def json_safe(value: Any) -> Any:
    """``value`` as strict JSON holds it: numpy scalars as Python numbers, tuples as lists,
    NaN and infinities as ``null``."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------- the answer


@dataclass(frozen=True)
class SearchAnswer:
    """The answer of a search as its study stands (see the module's docstring).

    The mappings are read-only by convention: nothing that reads an answer changes it."""

    settings: RecordedSearch
    selection: Selection  # the screening's ranking, the decision applied
    rows: Mapping[str, Row]  # every model's merged trials, as the study holds them
    models: tuple[ModelResult, ...]
    fidelity: Mapping[str, Any]  # the screening's pick against the confirmation
    position: Position | None  # on the equal-cost curve (None: no winner or shrinking)
    ladder: Mapping[str, Any]
    stages: Mapping[str, Any]  # each stage's trainings and seconds ({}: no confirmation)
    estimate: tuple[Mapping[str, Any], ...] | None  # each stage's estimate against actual
    coefficients: Coefficients | None  # as ``derive`` applies them (None: no winner)
    family: tuple[FamilyMember, ...]
    document: Mapping[str, Any] = field(default_factory=dict)  # coefficients.yaml

    # --- what is decided

    @property
    def decision(self) -> Decision | None:
        return self.selection.decision

    @property
    def decided(self) -> bool:
        return self.selection.decided

    @property
    def verdict(self) -> str:
        return self.selection.verdict

    @property
    def winner(self) -> Row | None:
        """The winner when decided, else the screening's (or confirmation's) pick."""
        return self.selection.winner

    @property
    def undecided_reason(self) -> str:
        """Why the answer is not decided, in a few words ("" when it is)."""
        return undecided_reason(self.selection)

    @property
    def caveat(self) -> str:
        """The undecided warning in one line ("" when decided or nothing was picked)."""
        return self.config_header("").replace("\n", " ")

    def config_header(self, run: str) -> str:
        """The first lines of every config an undecided answer writes (``run``: the path
        from the config's folder to the run's, "../" for configs/); "" when decided."""
        if self.decided or self.winner is None:
            return ""
        return UNDECIDED_HEADER.format(why=self.undecided_reason, run=run)

    @property
    def phi(self) -> float:
        """The phi the search's candidates cost (1 for 2x the base)."""
        return self.settings.phi

    def to_json(self) -> dict[str, Any]:
        """answer.json: the whole answer as data (``schema`` says its layout's version)."""
        selection, decision = self.selection, self.decision
        pick = selection.screening_pick
        return json_safe({
            "schema": ANSWER_SCHEMA, "tool_version": __version__,
            "base": self.settings.base, "dataset": self.settings.dataset,
            "budget": self.settings.budget,
            "decided": self.decided, "signal": selection.signal, "verdict": self.verdict,
            "undecided_reason": self.undecided_reason, "caveat": self.caveat,
            "winner": self.winner.candidate if self.winner is not None else None,
            "named_by": selection.named_by if self.winner is not None else None,
            "screening_pick": pick.candidate if pick is not None else None,
            "runner_up": selection.runner_up.candidate if selection.runner_up else None,
            "coefficients": None if self.coefficients is None else {
                "alpha": self.coefficients.alpha, "beta": self.coefficients.beta,
                "gamma": self.coefficients.gamma, "phi_searched": self.phi},
            "screening": {
                "ranked": [r.candidate for r in selection.ranked],
                "verdict": selection.screening_verdict or selection.verdict,
                "seed_std_pooled": round(selection.seed_std, 5),
                "seed_dof": selection.seed_dof,
                "comparisons": [c.describe() for c in selection.comparisons],
            },
            "decision": decision.to_dict() if decision is not None else None,
            "models": [m.to_dict() for m in self.models],
            "fidelity": dict(self.fidelity),
            "position": self.position.to_dict() if self.position is not None else None,
            "ladder": dict(self.ladder), "stages": dict(self.stages),
            "estimate_vs_actual": list(self.estimate) if self.estimate is not None else None,
            "family": [member.to_dict() for member in self.family],
        })


def answer_of(study: optuna.Study, rows: dict[str, Row] | None = None,
              document: Mapping[str, Any] | None = None) -> SearchAnswer:
    """The study's answer as it stands: the one function every output takes it from.
    ``document`` is the run's settings document when the caller already holds it (else the
    study's)."""
    document = run_settings(study) if document is None else document
    settings = RecordedSearch.from_document(document)
    rows = collect_rows(study) if rows is None else rows
    selection, check = _select(study, settings, rows)
    attrs = study.user_attrs
    winner = selection.winner
    position = answer_position(winner, rows, document, attrs)
    coefficients = (Coefficients(*search_coefficients(design(winner), settings.phi),
                                 base=settings.base) if winner is not None else None)
    members: tuple[FamilyMember, ...] = ()
    if coefficients is not None:
        members = family_of(coefficients, settings.base, settings.num_classes, settings.rules,
                            settings.family_phis)
    plan = ConfirmPlan.from_settings(document)
    answer = SearchAnswer(
        settings=settings, selection=selection, rows=rows,
        models=tuple(ModelResult.of(r) for r in
                     sorted(rows.values(), key=lambda r: (r.candidate != BASE_KEY,
                                                          r.candidate))),
        fidelity=check, position=position, ladder=ladder_summary(study, rows),
        stages=stage_costs(study) if plan.top else {},
        estimate=tuple(e) if (e := estimate_vs_actual(study)) is not None else None,
        coefficients=coefficients, family=members)
    if winner is None:
        return answer
    return replace(answer, document=_document(answer, attrs))


def family_of(coefficients: Coefficients, base: str, num_classes: int,
              rules: ScalingRules | None = None, phis: tuple[int, ...] = tuple(range(8))
              ) -> tuple[FamilyMember, ...]:
    """``base`` scaled by ``coefficients`` at each phi (B0-B7 by default), each config with
    its parameters: what configs/ holds and report.html's family tables show."""
    configs = derive_family(coefficients, phis, base, num_classes, rules)
    members = []
    for phi, config in zip(phis, configs, strict=True):
        members.append(FamilyMember(phi, config, config_params(config)))
    return tuple(members)


def _select(study: optuna.Study, settings: RecordedSearch, rows: dict[str, Row]
            ) -> tuple[Selection, dict[str, Any]]:
    """The screening's ranking with the confirmation's decision applied, and the fidelity
    of the screening's pick (screening against confirmation ranking)."""
    num_classes = settings.num_classes
    plan = ConfirmPlan.from_settings(dict(settings.document))
    selection = select(grid_rows(rows), num_classes, settings.flops_window, plan.target)
    selection.stability = _stability(study)
    with_decision(selection, current_decision(study, plan, num_classes, rows), plan.top > 0)
    pick = selection.screening_pick
    decision = selection.decision
    check = fidelity_check.summarize(rows, pick.candidate if pick else None, plan.factor,
                                     decision.tied_with(pick.candidate)
                                     if decision is not None and pick is not None else None,
                                     shrinking=plan.target < 1)
    return selection, check


# --------------------------------------------------------------------------- coefficients.yaml


def _document(answer: SearchAnswer, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """What coefficients.yaml holds, from the answer. The winner's accuracy is its
    confirmation mean when there is a confirmation (unbiased by the selection), else its
    screening mean."""
    settings, selection = answer.settings, answer.selection
    doc = coefficients_document(selection, settings)
    doc.update(_precision(doc, settings))
    doc.update(_cost(selection, settings))
    if answer.fidelity:
        doc["fidelity"] = dict(answer.fidelity)
        doc["fidelity_line"] = fidelity_check.describe(dict(answer.fidelity))
    if answer.position is not None:
        doc.update({"position": answer.position.to_dict(), "position_line": answer.position.text,
                    "refinement": {"rounds": attrs.get(REFINE_ROUNDS, []),
                                   "stopped": attrs.get(REFINE_STOP) or ""}})
    if answer.stages:
        doc["stages"] = dict(answer.stages)
    doc["ladder"] = dict(answer.ladder)
    if answer.estimate is not None:
        doc["estimate_vs_actual"] = list(answer.estimate)
    if answer.caveat:
        doc["caveat"] = answer.caveat
    return doc


def coefficients_document(selection: Selection, settings: RecordedSearch) -> dict[str, Any]:
    """The decision's part of coefficients.yaml: the coefficients, the verdict and the
    accuracies behind it."""
    winner, base, decision = selection.winner, selection.base, selection.decision
    doc: dict[str, Any] = {
        "base": settings.base, "dataset": settings.dataset,
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
    phi = settings.phi
    if winner is not None and phi != 1:
        doc["multipliers_at_phi"] = {k: doc[k] for k in ("alpha", "beta", "gamma")}
        doc.update(zip(("alpha", "beta", "gamma"), search_coefficients(design(winner), phi)))
    doc[CHECKED_KEY] = [phi]
    doc["reach"] = reach_text([phi])
    doc["tool_version"] = __version__
    return doc


def _precision(doc: Mapping[str, Any], settings: RecordedSearch) -> dict[str, Any]:
    """Each coefficient with the values that build the same proxy model (see
    :mod:`effscale.search.aliases`), for a phi = 1 grid."""
    if settings.grid is None or settings.phi != 1:  # aliases are of phi = 1 grid points
        return {}
    aliases = coefficient_aliases(get_base(settings.base), doc["alpha"], doc["beta"],
                                  doc["gamma"], settings.grid, settings.rules)
    for name in ("alpha", "beta", "gamma"):
        aliases[name]["at_phi_7"] = phi_range(aliases[name]["same_model"], 7)
    return {"cost": settings.cost, "aliases": aliases}


def _cost(selection: Selection, settings: RecordedSearch) -> dict[str, Any]:
    """The cost the candidates are equal in, and the winner's measured ratio of it when it is
    not FLOPs (``flops_ratio_measured`` is always there)."""
    name = settings.cost_name
    doc: dict[str, Any] = {"cost_name": name}
    won = design(selection.winner)
    if name != "flops" and won.cost_ratio is not None:
        doc["cost_ratio_measured"] = won.cost_ratio
        if won.cost_note:
            doc["cost_note"] = won.cost_note
    return doc


# --------------------------------------------------------------------------- phi and family


def search_coefficients(chosen: Design, phi: float) -> tuple[float, float, float]:
    """A candidate's (alpha, beta, gamma) as ``derive`` applies them, for a search whose
    candidates cost ``phi``. The grid holds the multipliers at that phi and derive applies
    ``alpha**phi``, so the coefficient is ``depth**(1/phi)``: >= 1 whether the search grew
    or shrank (the multipliers themselves at phi = 1)."""
    values = chosen.coefficients
    if phi == 1:
        return values
    return tuple(round(v ** (1 / phi), 6) for v in values)  # type: ignore[return-value]


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


def _stability(study: optuna.Study) -> dict[str, Any]:
    """How the screening's ranking holds over seeds (Kendall's tau between seed pairs)."""
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
