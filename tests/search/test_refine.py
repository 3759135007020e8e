"""Refinement before the confirmation (:mod:`effscale.search.refine`): a screening winner on
an edge of the grid adds points past it, screened at equal full-size cost; the answer says
where it ended up. Studies of made-up trainings; the models of one test are built for real
(meta-device FLOPs, no training)."""

from __future__ import annotations

import zlib
from dataclasses import replace
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import optuna
import pytest

from effscale.experiment.budgets import get_budget
from effscale.experiment.queue import ITEM_PARAM, item_states
from effscale.experiment.rows import collect_rows
from effscale.model.bases import get_base
from effscale.model.config import ScalingRules
from effscale.scaling.equal_flops import FlopsMeter
from effscale.search.candidates import BASE_KEY, Candidate, Skipped
from effscale.search.grid import budget_grid
from effscale.search.refine import (
    ROUNDS_ATTR,
    STOP_ATTR,
    Maker,
    answer_position,
    next_round,
    settings_section,
)
from effscale.train.proxy import proxy_stem_stride
from effscale.train.trainer import Recipe, proxy_config

START = datetime(2026, 1, 1)
SPEC = budget_grid(get_budget("quick"))
# quick's CIFAR-10 feasible set as `effscale search --dry-run --json` measures it
QUICK = {"a1.00_b1.45_g1.000": (1.0, 1.45, 1.0, 20), "a1.40_b1.11_g1.000": (1.4, 1.107, 1.0, 20),
         "a1.80_b1.00_g1.000": (1.8, 1.0, 1.0, 20), "a1.00_b1.23_g1.150": (1.0, 1.229, 1.15, 23),
         "a1.00_b1.11_g1.300": (1.0, 1.111, 1.3, 26), "a1.00_b1.00_g1.400": (1.0, 1.0, 1.4, 28)}


def kept() -> list[Any]:
    return [SimpleNamespace(key=BASE_KEY, is_base=True)] + [
        SimpleNamespace(key=k, alpha=a, beta=b, gamma=g, resolution=px, is_base=False)
        for k, (a, b, g, px) in QUICK.items()]


def study_of(accuracies: dict[str, float], rounds: int = 1) -> optuna.Study:
    budget = replace(get_budget("quick"), refine_rounds=rounds)
    section = settings_section(SPEC, budget, 32, True, kept())
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("settings", {"num_classes": 10, "flops_window": None,
                                     "grid": SPEC.to_dict(), "refine": section})
    add(study, "base@0", 0.50, {})
    for key, (a, b, g, px) in QUICK.items():
        add(study, f"{key}@0", accuracies.get(key, 0.52),
            {"alpha": a, "beta": b, "gamma": g, "resolution": px})
    return study


def add(study: optuna.Study, item: str, accuracy: float, attrs: dict[str, Any],
        seconds: float = 60.0) -> None:
    start = START + timedelta(seconds=len(study.trials) * 1000)
    study.add_trial(optuna.trial.FrozenTrial(
        number=0, state=optuna.trial.TrialState.COMPLETE, value=accuracy,
        datetime_start=start, datetime_complete=start + timedelta(seconds=seconds),
        params={ITEM_PARAM: item},
        distributions={ITEM_PARAM: optuna.distributions.CategoricalDistribution([item])},
        user_attrs={**attrs, "params": len(study.trials), "flops": len(study.trials)},
        system_attrs={}, intermediate_values={}, trial_id=0))


def fake_make(key: str) -> Any:
    return SimpleNamespace(key=key, resolution=26, params=zlib.crc32(key.encode()), flops=7)


def quick_budget(**changes: Any) -> Any:
    return replace(get_budget("quick"), **{"time_limit": None, **changes})


def position_text(study: optuna.Study) -> str:
    rows = collect_rows(study)
    best = max((r for r in rows.values() if r.candidate != BASE_KEY), key=lambda r: r.mean)
    found = answer_position(best, rows, study.user_attrs["settings"], study.user_attrs)
    assert found is not None
    return found.text


def test_a_screening_winner_on_an_edge_is_refined_before_the_confirmation() -> None:
    """Issue 28: a1.00_b1.11_g1.300 won on CIFAR-10 with no grid point past it along alpha.
    Refinement adds the alpha line's beta = 1 end at gamma 1.3 (alpha 1.2 is nominally over
    x2), and once that is screened (and lost) the answer is at the bound alpha = 1."""
    study = study_of({"a1.00_b1.11_g1.300": 0.60})
    assert "refine/alpha:g1.300_b1" in study.user_attrs["settings"]["refine"]["keys"]
    added, line = next_round(study, quick_budget(), fake_make)
    assert added == ["refine/alpha:g1.300_b1"]
    assert "refine/alpha:g1.300_b1@0" in item_states(study)
    assert "a1.00_b1.11_g1.300 lies on an edge" in line
    assert study.user_attrs[ROUNDS_ATTR][0]["from"] == "a1.00_b1.11_g1.300"
    add(study, "refine/alpha:g1.300_b1@0", 0.58,
        {"alpha": 1.1, "beta": 1.0, "gamma": 1.3, "resolution": 26})
    assert next_round(study, quick_budget(), fake_make) == ([], "")
    assert study.user_attrs[STOP_ATTR] == ""
    assert position_text(study) == "at the feasible bound α = 1"


def test_a_refined_winner_reports_its_own_bound() -> None:
    study = study_of({"a1.00_b1.11_g1.300": 0.60})
    next_round(study, quick_budget(), fake_make)
    add(study, "refine/alpha:g1.300_b1@0", 0.65,
        {"alpha": 1.1, "beta": 1.0, "gamma": 1.3, "resolution": 26})
    assert next_round(study, quick_budget(), fake_make) == ([], "")
    assert position_text(study) == "at the feasible bound β = 1"


def test_an_edge_the_budget_did_not_get_past_is_said_so() -> None:
    study = study_of({"a1.40_b1.11_g1.000": 0.60})
    added, _ = next_round(study, quick_budget(), fake_make)
    assert added == ["refine/gamma:a1.400_g1.075", "refine/gamma:a1.400_g1.150",
                     "refine/gamma:a1.400_b1"]
    add(study, "refine/gamma:a1.400_g1.075@0", 0.62,
        {"alpha": 1.4, "beta": 1.07, "gamma": 1.075, "resolution": 22})
    added, why = next_round(study, quick_budget(), fake_make)  # one round in quick
    assert added == [] and why == "the budget's refine_rounds (1)"
    assert position_text(study) == ("at the edge of the searched grid (+γ), refinement "
                                    "stopped by the budget's refine_rounds (1)")


def test_no_refinement_in_the_budget_still_names_the_edge() -> None:
    study = study_of({"a1.00_b1.11_g1.300": 0.60}, rounds=0)
    assert next_round(study, quick_budget(refine_rounds=0), fake_make) == ([], "")
    assert position_text(study) == ("at the edge of the searched grid (+α), refinement "
                                    "stopped by the budget (refine_rounds 0)")


def test_a_round_that_would_not_leave_time_for_the_confirmation_is_not_started() -> None:
    study = study_of({"a1.00_b1.11_g1.300": 0.60})
    # 7 screening trainings of 60 s; the round (60 s) and the confirmation's minimum
    # (3 models x 2 seeds x 2 x 60 s) do not fit in 10 min
    added, why = next_round(study, quick_budget(time_limit=600.0), fake_make)
    assert added == [] and why.startswith("the time budget (10 min")
    assert "refinement stopped by the time budget" in position_text(study)


def test_points_over_cost_or_repeating_a_model_are_left_out() -> None:
    study = study_of({"a1.40_b1.11_g1.000": 0.60})

    def make(key: str) -> Any:
        if key.endswith("g1.150"):
            return Skipped(key, "costs ×2.17 at full size already with β = 1")
        return SimpleNamespace(resolution=22, params=5, flops=5)  # both the same model

    added, _ = next_round(study, quick_budget(), make)
    assert added == ["refine/gamma:a1.400_g1.075"]
    skipped = study.user_attrs[ROUNDS_ATTR][0]["skipped"]
    assert skipped == {"refine/gamma:a1.400_g1.150": "costs ×2.17 at full size already with "
                                                     "β = 1",
                       "refine/gamma:a1.400_b1": "the same model as one already screened"}


def test_refinement_models_cost_the_target_at_full_size() -> None:
    full = get_base("b0", 10)
    recipe = Recipe(stem_stride=proxy_stem_stride(full, 20))
    measure = FlopsMeter("torch", conv_linear=True)

    def to_proxy(config: Any, px: int) -> Any:
        return proxy_config(config.replace(resolution=px), recipe, 10)

    proxy = to_proxy(full, 20)
    base = Candidate(key=BASE_KEY, alpha=1.0, beta=1.0, gamma=1.0, resolution=20, config=proxy,
                     params=0, flops=measure(full).flops, flops_ratio=1.0, nominal_ratio=1.0,
                     full_resolution=224, proxy_flops=measure(proxy).flops,
                     proxy_flops_ratio=1.0)
    make = Maker(full, to_proxy, SPEC, ScalingRules(), base, 32, counter="torch")
    # at gamma 1.3 depth cannot grow a little: any alpha > 1 doubles b0's one-block stages
    # (x2.44), so the alpha line's beta = 1 end is no model at x2
    end = make("refine/alpha:g1.300_b1")
    assert isinstance(end, Skipped) and "×1.652" in end.reason
    half = make("refine/gamma:a1.400_g1.075")
    assert isinstance(half, Candidate), half
    assert half.resolution == 22 and half.beta >= 1 and half.alpha == 1.4
    assert abs(half.flops_ratio / 2 - 1) <= 0.05
    over = make("refine/gamma:a1.400_g1.150")
    assert isinstance(over, Skipped) and "×2.17" in over.reason
    with pytest.raises(ValueError):
        make("a1.00_b1.11_g1.300")


def test_an_edge_with_no_model_past_it_is_a_bound_the_rounding_makes() -> None:
    study = study_of({"a1.00_b1.11_g1.300": 0.60})
    added, line = next_round(study, quick_budget(),
                             lambda key: Skipped(key, "measures ×1.652 at full size"))
    assert added == [] and "no other model at the target cost" in line
    assert study.user_attrs[ROUNDS_ATTR][0]["closed"] == ["+α"]
    assert position_text(study) == ("at the feasible bound α = 1, +α: no other model at the "
                                    "target cost")
