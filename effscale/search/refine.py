"""Refinement: when the screening's best lies on an edge of the searched grid, a line search
on the equal-cost curve past that edge, screened like every candidate, before the
confirmation.

Refinement is part of the selection: it runs after the screening and before the
confirmation, which then retrains the base and the top-k of everything screened on fresh
seeds, so select-then-confirm holds. A round takes the screening's current best (the
report's ranking); when it has an edge (:mod:`effscale.search.edges`), the round adds at
most ``refine_points`` points: the next half-steps past the edge (beta solved on measured
full-size cost as every candidate; the line's beta = 1 end where the nominal cost leaves no
room) and the midpoint to its neighbour behind. Rounds stop when the best has no edge, after
``refine_rounds`` rounds, or when a round and the confirmation's minimum seeds would not fit
in the search's time budget. The answer's position (:func:`answer_position`) says which.

Note:
    A run's work items are fixed when its study is made, so every refinement key a run may
    add (:func:`effscale.search.edges.lattice`) is listed in ``prepare`` (in the study's
    settings, ``refine.keys``) and its model is built only when a round adds it
    (:class:`Maker`, the same in every worker). The rounds are stored in the study
    (``refine_rounds``, ``refine_stopped``), so a resume and the report agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from effscale.experiment.budgets import Budget
from effscale.experiment.queue import ITEM_PARAM, item_key, item_states
from effscale.experiment.rows import Row, collect_rows
from effscale.experiment.rundir import run_settings
from effscale.model.config import ModelConfig, ScalingRules
from effscale.model.cost import CostMeter
from effscale.scaling.compound import scale_config
from effscale.scaling.equal_flops import FlopsMeter, as_cost, solve
from effscale.search.candidates import (
    BASE_KEY,
    CONFIRM_PREFIX,
    SOLVE_COUNTER,
    Candidate,
    Skipped,
    solve_beta,
)
from effscale.search.confirm import spent_seconds, trial_seconds
from effscale.search.edges import (
    REFINE_PREFIX,
    Bounds,
    Point,
    Position,
    Target,
    direction_of,
    lattice,
    parse_key,
    position,
    refinement,
)
from effscale.search.grid import GridSpec
from effscale.search.recorded import RecordedSearch
from effscale.search.selection import grid_rows, select

ROUNDS_ATTR = "refine_rounds"
STOP_ATTR = "refine_stopped"
SETTINGS_KEY = "refine"


def is_refinement(key: str) -> bool:
    return key.startswith(REFINE_PREFIX)


@dataclass
class Maker:
    """Builds the model a refinement key stands for, at equal full-size cost as the grid's
    candidates (same solver, window and proxy), or says why it cannot be."""

    full_base: ModelConfig
    to_proxy: Callable[[ModelConfig, int], ModelConfig]
    spec: GridSpec
    rules: ScalingRules
    base: Candidate
    cap_px: int
    counter: str = "fvcore"
    rtol: float | None = 0.05
    cost: CostMeter | None = None

    def solver(self) -> Any:
        return self.cost or FlopsMeter(SOLVE_COUNTER, conv_linear=True)

    def coefficients(self, target: Target) -> tuple[float, float, float] | str:
        """(alpha, beta, gamma) at the target's cost, or why there is none."""
        if target.solve == "beta":
            beta, why = solve_beta(self.full_base, target.alpha, target.gamma,
                                   self.spec.target, self.spec.beta_max, self.rules,
                                   self.solver(), self.rtol)
            return why if beta is None else (target.alpha, beta, target.gamma)
        axis = target.solve  # that axis solved with beta = 1, the other one fixed
        fixed = {"depth": target.alpha, "width": 1.0, "resolution": target.gamma}
        name = "depth" if axis == "alpha" else "resolution"
        build = lambda m: scale_config(self.full_base, rules=self.rules,  # noqa: E731
                                       **{**fixed, name: m})
        cost = as_cost(self.solver())
        base_cost = cost(self.full_base)
        if cost(build(1.0)) >= self.spec.target * base_cost:
            return f"costs ×{cost(build(1.0)) / base_cost:.2f} already with {axis} = 1"
        m, config = solve(build, self.spec.target * base_cost, self.solver())
        for digits in (2, 3):
            if build(round(m, digits)) == config:
                m = round(m, digits)
                break
        return (m, 1.0, target.gamma) if axis == "alpha" else (target.alpha, 1.0, m)

    def __call__(self, key: str) -> Candidate | Skipped:
        target = parse_key(key)
        found = self.coefficients(target)
        if isinstance(found, str):
            return Skipped(key, found)
        alpha, beta, gamma = found
        px = round(self.spec.base_resolution * gamma)
        if px > self.cap_px:
            return Skipped(key, f"needs a {px} px proxy, above the {self.cap_px} px cap")
        measure = FlopsMeter(self.counter, conv_linear=True)
        full = scale_config(self.full_base, depth=alpha, width=beta, resolution=gamma,
                            rules=self.rules, name=key)
        proxy = self.to_proxy(full, px)
        complexity = measure(full)
        ratio = complexity.flops / self.base.flops
        extra: dict[str, Any] = {}
        kept_ratio = ratio
        if self.cost is not None:
            value = self.cost(full)
            kept_ratio = value / self.base.cost_value
            extra = {"cost": self.cost.name, "cost_value": value, "cost_ratio": kept_ratio,
                     "cost_note": self.cost.note(full)}
        if self.rtol is not None and abs(kept_ratio / self.spec.target - 1) > self.rtol:
            return Skipped(key, f"measures ×{kept_ratio:.3f} at full size, outside "
                                f"×{self.spec.target:g} ± {self.rtol:.0%}", ratio)
        proxy_flops = measure(proxy).flops
        return Candidate(key=key, alpha=alpha, beta=beta, gamma=gamma, resolution=px,
                         config=proxy, params=complexity.params, flops=complexity.flops,
                         flops_ratio=ratio, nominal_ratio=alpha * beta ** 2 * gamma ** 2,
                         full_resolution=full.resolution, proxy_flops=proxy_flops,
                         proxy_flops_ratio=proxy_flops / self.base.proxy_flops,
                         activations=complexity.activations, **extra)


class Candidates(dict):  # type: ignore[type-arg]
    """The run's models by key; a refinement key (or its confirmation) is built on first
    use by ``make``, the same way in every worker."""

    def __init__(self, known: dict[str, Any], make: Maker | None, confirm_factor: int) -> None:
        super().__init__(known)
        self.make = make
        self.confirm_factor = confirm_factor

    def __missing__(self, key: str) -> Any:
        inner = key[len(CONFIRM_PREFIX):] if key.startswith(CONFIRM_PREFIX) else key
        if self.make is None or not is_refinement(inner):
            raise KeyError(key)
        if inner not in self:
            built = self.make(inner)
            if isinstance(built, Skipped):
                raise KeyError(f"{inner}: {built.reason}")
            self[inner] = built
        if inner != key:
            self[key] = self[inner].for_confirmation(self.confirm_factor)
        return dict.__getitem__(self, key)


def point_of(row: Row) -> Point:
    """A screened row as a point of the curve (a refinement row on its own line)."""
    a = row.attrs
    line = parse_key(row.candidate).line if is_refinement(row.candidate) else None
    return Point(row.candidate, float(a.get("alpha", 1)), float(a.get("beta", 1)),
                 float(a.get("gamma", 1)), int(a.get("resolution", 0)), line)


def point_of_candidate(c: Candidate) -> Point:
    line = parse_key(c.key).line if is_refinement(c.key) else None
    return Point(c.key, c.alpha, c.beta, c.gamma, c.resolution, line)


def bounds_of(spec: GridSpec, cap_px: int, cap_is_native: bool) -> Bounds:
    return Bounds(spec.step, spec.gamma_step or spec.step, spec.base_resolution, cap_px,
                  cap_is_native, spec.target)


def settings_section(spec: GridSpec, budget: Budget, cap_px: int, cap_is_native: bool,
                     kept: list[Candidate]) -> dict[str, Any]:
    """What settings.yaml (and the study) keep of the refinement: the budget, the bounds and
    every key a round may add."""
    bounds = bounds_of(spec, cap_px, cap_is_native)
    points = [point_of_candidate(c) for c in kept if not c.is_base]
    keys: list[str] = []
    if budget.refine_rounds > 0 and not spec.shrinks and spec.beta == "solve":
        for p in points:
            keys += lattice(p, points, bounds, budget.refine_rounds)
    return {"rounds": budget.refine_rounds, "points": budget.refine_points,
            "cap_px": cap_px, "cap_is_native": cap_is_native,
            "keys": list(dict.fromkeys(keys))}


def _bounds_from(settings: dict[str, Any]) -> Bounds | None:
    section = settings.get(SETTINGS_KEY)
    grid = settings.get("grid")
    if not section or not grid:
        return None
    return bounds_of(GridSpec(**grid), int(section["cap_px"]), bool(section["cap_is_native"]))


def _mean_screening_s(study: optuna.Study) -> float:
    times = [s for k, v in trial_seconds(study).items() if not k.startswith(CONFIRM_PREFIX)
             for s in v]
    return sum(times) / len(times) if times else 0.0


def _stop(study: optuna.Study, why: str) -> None:
    study.set_user_attr(STOP_ATTR, why)


def next_round(study: optuna.Study, budget: Budget, make: Callable[[str], Any],
               workers: int = 1) -> tuple[list[str], str]:
    """Enqueue the next refinement round (the items added, and a line for the log), or
    ``([], why)`` when refinement is over (``why`` empty: nothing to refine)."""
    settings = run_settings(study)
    if study.user_attrs.get(STOP_ATTR) is not None:
        return [], ""
    section, bounds = settings.get(SETTINGS_KEY), _bounds_from(settings)
    if not section or bounds is None or not section.get("keys"):
        _stop(study, "")
        return [], ""
    rows = grid_rows(collect_rows(study))
    recorded = RecordedSearch.from_document(settings)
    selection = select(rows, recorded.num_classes, recorded.flops_window, bounds.target)
    if selection.winner is None:
        _stop(study, "")
        return [], ""
    screened = [point_of(r) for r in rows.values() if r.candidate != BASE_KEY]
    best = point_of(selection.winner)
    allowed = set(section["keys"])
    targets = [t for t in refinement(best, screened, bounds, 10 ** 6) if t.key in allowed]
    rounds = list(study.user_attrs.get(ROUNDS_ATTR, []))
    if not targets:
        _stop(study, "")
        return [], ""
    if len(rounds) >= int(section["rounds"]):
        why = f"the budget's refine_rounds ({section['rounds']})"
        _stop(study, why)
        return [], why
    # build (solve and measure) the targets; keep those at the target cost, new models only
    seen = {(int(r.attrs.get("resolution", 0)), int(r.attrs.get("params", 0)),
             int(r.attrs.get("flops", 0))) for r in rows.values()}
    added, skipped = [], {}
    tried: dict[str, bool] = {}  # direction -> a new model at the target cost was found
    for target in targets:
        if len(added) >= int(section["points"]):
            break
        direction = direction_of(best, target)
        tried.setdefault(direction, False)
        built = make(target.key)
        if isinstance(built, Skipped):
            skipped[target.key] = built.reason
            continue
        signature = (built.resolution, built.params, built.flops)
        if signature in seen:
            skipped[target.key] = "the same model as one already screened"
            continue
        seen.add(signature)
        added.append(target.key)
        tried[direction] = True
    closed = [d for d, found in tried.items() if not found]
    if not added:
        _stop(study, "")
        rounds.append({"round": len(rounds) + 1, "from": best.key, "added": [],
                       "closed": closed, "skipped": skipped})
        study.set_user_attr(ROUNDS_ATTR, rounds)
        return [], (f"no other model at the target cost past {best.key} "
                    f"({', '.join(closed)}): it lies at a bound the rounding makes")
    estimate = len(added) * _mean_screening_s(study) / max(1, workers)
    if budget.time_limit is not None:
        confirm_min = (budget.confirm_top + 1) * budget.confirm_seeds * budget.confirm_factor \
            * _mean_screening_s(study) / max(1, workers)
        if spent_seconds(study, workers) + estimate + confirm_min > budget.time_limit:
            why = (f"the time budget ({budget.time_limit / 60:.3g} min: the round, "
                   f"~{estimate / 60:.1f} min, and the confirmation's minimum seeds would "
                   "not fit)")
            _stop(study, why)
            return [], why
    existing = item_states(study)
    for key in added:
        if item_key(key, 0) not in existing:
            study.enqueue_trial({ITEM_PARAM: item_key(key, 0)}, skip_if_exists=False)
    rounds.append({"round": len(rounds) + 1, "from": best.key, "added": added,
                   "closed": closed, "skipped": skipped, "estimated_s": round(estimate, 1)})
    study.set_user_attr(ROUNDS_ATTR, rounds)
    return added, (f"refinement round {len(rounds)}: the screening's best {best.key} lies on "
                   f"an edge of the grid; {len(added)} more point(s) on the equal-cost curve "
                   f"past it ({', '.join(added)}), estimated {estimate / 60:.1f} min")


def answer_position(winner: Row | None, rows: dict[str, Row], settings: dict[str, Any],
                    attrs: dict[str, Any]) -> Position | None:
    """Where the answer sits on the curve (see :func:`effscale.search.edges.position`), with
    what stopped the refinement when it still lies on an edge."""
    bounds = _bounds_from(settings)
    if winner is None or bounds is None or bounds.target < 1:
        return None
    section = settings.get(SETTINGS_KEY) or {}
    stopped = attrs.get(STOP_ATTR) or ""
    if not stopped:
        stopped = ("the budget (refine_rounds 0)" if not section.get("rounds")
                   else "the budget (the refinement has not run yet)")
    screened = [point_of(r) for r in grid_rows(rows).values()
                if r.candidate != BASE_KEY and r.completed]
    closed = tuple(d for r in attrs.get(ROUNDS_ATTR, []) if r.get("from") == winner.candidate
                   for d in r.get("closed", []))
    return position(point_of(winner), screened, bounds, stopped, closed)
