"""The confirmation stage's rounds (:mod:`effscale.search.confirm`) on a study of made-up
trainings: when it adds seeds, when it stops, what it says each stage cost."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import optuna
import pytest

from effscale.experiment.queue import ITEM_PARAM, item_states
from effscale.experiment.stats import pack_correct
from effscale.search.confirm import (
    ConfirmPlan,
    chosen,
    next_round,
    round_estimate,
    seeds_enqueued,
    spent_seconds,
    stage_costs,
)

N = 1000
START = datetime(2026, 1, 1)
CHOICES = [f"{k}@{s}" for k in ("base", "w", "r", "x", "confirm/base", "confirm/w",
                                 "confirm/r", "confirm/x") for s in range(6)]


def vector(hits: int, offset: int) -> np.ndarray:
    out = np.zeros(N, dtype=bool)
    out[(np.arange(hits) + offset) % N] = True
    return out


def add(study: optuna.Study, item: str, hits: int, seconds: float, offset: int = 0) -> None:
    """A finished training of ``item`` with ``hits`` of N right, taking ``seconds``."""
    start = START + timedelta(seconds=len(study.trials) * 1000)
    study.add_trial(optuna.trial.FrozenTrial(
        number=0, state=optuna.trial.TrialState.COMPLETE, value=hits / N,
        datetime_start=start, datetime_complete=start + timedelta(seconds=seconds),
        params={ITEM_PARAM: item},
        distributions={ITEM_PARAM: optuna.distributions.CategoricalDistribution(CHOICES)},
        user_attrs={"val_correct": pack_correct(vector(hits, offset)), "val_size": N},
        system_attrs={}, intermediate_values={}, trial_id=0))


def screened_study() -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("settings", {"num_classes": 10, "flops_window": None})
    for item, hits in (("base@0", 500), ("w@0", 560), ("r@0", 550), ("x@0", 520)):
        add(study, item, hits, 100.0)
    return study


def run_round(study: optuna.Study, plan: ConfirmPlan, hits: dict[str, int],
              seconds: float = 200.0) -> list[str]:
    """next_round, then every item it added "trained" with the given hits."""
    step = next_round(study, plan, 10)
    for item in step.added:
        key = item.split("/")[1].split("@")[0]
        seed = int(item.rsplit("@", 1)[1])
        add(study, item, hits[key] + 7 * seed * (1 if seed % 2 else -1), seconds, offset=seed)
    return step.added


def test_rounds_add_a_fresh_seed_of_the_base_and_the_top_k_until_decided() -> None:
    study = screened_study()
    plan = ConfirmPlan(top=2, factor=2, min_seeds=3, max_seeds=4)
    assert run_round(study, plan, {"base": 500, "w": 700, "r": 600}) == [
        "confirm/base@0", "confirm/w@0", "confirm/r@0"]
    assert chosen(study, 2) == ["base", "w", "r"]  # x, last in screening, is dropped
    assert seeds_enqueued(study, ["base", "w", "r"]) == 1
    # the rounds up to the plan's minimum are always added ...
    assert len(run_round(study, plan, {"base": 500, "w": 700, "r": 600})) == 3
    assert len(run_round(study, plan, {"base": 500, "w": 700, "r": 600})) == 3
    # ... and then a 20-point margin is decided, so nothing more is trained
    step = next_round(study, plan, 10)
    assert step.added == [] and step.stopped == "decided after 3 confirmation seeds"
    assert study.user_attrs["confirm_stopped"] == step.stopped


def test_a_shrinking_stage_asks_which_direction_loses_least() -> None:
    """At half the base's cost both candidates are far below the base. The growing rule
    stops there ("decided against" the base); shrinking goes on while the two directions are
    tied, and stops once the pick is separated above the other."""
    study = screened_study()
    shrinking = ConfirmPlan(top=2, factor=2, min_seeds=3, max_seeds=4, target=0.5)
    growing = ConfirmPlan(top=2, factor=2, min_seeds=3, max_seeds=4)
    for _ in range(3):
        run_round(study, shrinking, {"base": 950, "w": 651, "r": 650})
    assert next_round(study, growing, 10).stopped == "decided after 3 confirmation seeds"
    tied = screened_study()
    for _ in range(3):
        run_round(tied, shrinking, {"base": 950, "w": 651, "r": 650})
    # tied: the two directions train on (the base, the reference, no longer: racing)
    assert run_round(tied, shrinking, {"base": 950, "w": 651, "r": 650}) == [
        "confirm/w@3", "confirm/r@3"]
    apart = screened_study()
    for _ in range(3):
        run_round(apart, shrinking, {"base": 950, "w": 650, "r": 400})
    step = next_round(apart, shrinking, 10)
    assert step.added == [] and step.stopped == "decided after 3 confirmation seeds"


def test_an_undecided_stage_stops_at_its_seed_limit() -> None:
    study = screened_study()
    plan = ConfirmPlan(top=1, factor=2, min_seeds=2, max_seeds=3)
    hits = {"base": 500, "w": 502}
    for _ in range(3):
        assert run_round(study, plan, hits)
    step = next_round(study, plan, 10)
    assert step.stopped == "undecided after the plan's 3 confirmation seeds"
    assert len([i for i in item_states(study) if i.startswith("confirm/")]) == 6


def test_the_time_budget_stops_a_round_that_would_not_finish_but_not_the_minimum() -> None:
    """Screening took 4 x 100 s; a round of the base and the top 1 is estimated at 2 x 200 s
    (screening times x the factor of 2). With 1,000 s, the two minimum rounds run (the second
    past the budget, and said so); a third, undecided, does not."""
    study = screened_study()
    plan = ConfirmPlan(top=1, factor=2, min_seeds=2, max_seeds=5, time_limit=1000.0)
    assert spent_seconds(study) == pytest.approx(400.0)
    assert round_estimate(study, ["base", "w"], 2) == pytest.approx(400.0)
    hits = {"base": 500, "w": 502}
    first = next_round(study, plan, 10)
    assert first.round == 1 and not first.over_time
    for item in first.added:
        add(study, item, hits[item.split("/")[1].split("@")[0]], 300.0, offset=1)
    second = next_round(study, plan, 10)  # 1,000 s spent + 600 s estimated > 1,000 s
    assert second.round == 2 and second.over_time and len(second.added) == 2
    for item in second.added:
        add(study, item, hits[item.split("/")[1].split("@")[0]] + 9, 300.0, offset=2)
    third = next_round(study, plan, 10)
    assert third.added == [] and "would pass the time budget of 16.7 min" in third.stopped
    # a resume with more time goes on where it stopped
    more = next_round(study, ConfirmPlan(1, 2, 2, 5, time_limit=10_000.0), 10)
    assert more.round == 3 and len(more.added) == 2
    assert study.user_attrs["confirm_stopped"] == ""


def test_stage_costs_give_each_round_estimated_and_actual() -> None:
    study = screened_study()
    plan = ConfirmPlan(top=1, factor=2, min_seeds=2, max_seeds=2)
    run_round(study, plan, {"base": 500, "w": 700}, seconds=150.0)
    run_round(study, plan, {"base": 500, "w": 700}, seconds=160.0)
    next_round(study, plan, 10)
    costs = stage_costs(study)
    assert costs["screening"] == {"trainings": 4, "seconds": 400.0}
    assert [r["estimated_s"] for r in costs["confirmation"]["rounds"]] == [400.0, 300.0]
    assert [r["actual_s"] for r in costs["confirmation"]["rounds"]] == [300.0, 320.0]
    assert costs["confirmation"]["stopped"].startswith("decided")


def test_a_rounds_actual_is_over_the_workers_as_its_estimate_is() -> None:
    """On two workers a round's estimate is its training time over the two (what the time
    budget counts); its actual was the sum, so a CIFAR-10 run on 2 workers printed "round 1
    est. 12.9 / actual 26.3 min" for an estimate that was right (x0.97 over the stage)."""
    from effscale.cli.search import stages_line

    study = screened_study()
    plan = ConfirmPlan(top=1, factor=2, min_seeds=2, max_seeds=2, workers=2)
    run_round(study, plan, {"base": 500, "w": 700}, seconds=150.0)
    run_round(study, plan, {"base": 500, "w": 700}, seconds=160.0)
    costs = stage_costs(study)
    assert [r["estimated_s"] for r in costs["confirmation"]["rounds"]] == [200.0, 150.0]
    assert [r["actual_s"] for r in costs["confirmation"]["rounds"]] == [150.0, 160.0]
    assert costs["confirmation"]["seconds"] == 620.0  # the stage's training, summed
    assert stages_line(costs).startswith(
        "stages: screening 4 trainings, 6.7 min of training; confirmation 10.3 min of "
        "training (round 1 "
        "est. 3.3 / actual 2.5 min on 2 workers, round 2 est. 2.5 / actual 2.7 min on 2 "
        "workers)")


def test_no_confirmation_in_the_plan_adds_nothing() -> None:
    study = screened_study()
    step = next_round(study, ConfirmPlan(0, 2, 2, 3), 10)
    assert step.added == [] and step.stopped == "no confirmation in this budget"


def test_plan_from_settings_reads_the_budget() -> None:
    settings = {"identity": {"budget": {"confirm_top": 2, "confirm_factor": 3,
                                        "confirm_seeds": 2, "confirm_max_seeds": 4}}}
    plan = ConfirmPlan.from_settings(settings)
    assert (plan.top, plan.factor, plan.min_seeds, plan.max_seeds, plan.looks) == (
        2, 3, 2, 4, 3)
    assert ConfirmPlan.from_settings({}).top == 0


def test_a_racing_round_skips_a_rival_separated_below_the_winner() -> None:
    """Issue 32: after the minimum, a model whose comparisons cannot change the verdict is
    not trained. r is 26 points below w (separated); w vs the base (6 points) is open, so
    the base and w train on and r does not; the round's record says why."""
    study = screened_study()
    plan = ConfirmPlan(top=2, factor=2, min_seeds=3, max_seeds=6)
    hits = {"base": 500, "w": 560, "r": 300}
    for _ in range(3):
        assert len(run_round(study, plan, hits)) == 3
    step = next_round(study, plan, 10)
    assert step.added == ["confirm/base@3", "confirm/w@3"] and step.round == 4
    assert list(step.skipped) == ["r"] and step.skipped["r"].startswith("separated below w")
    assert step.describe_skipped().startswith("skips r (separated below w")
    assert study.user_attrs["confirm_rounds"][-1]["skipped"] == step.skipped
    # without racing every model trains
    plain = screened_study()
    for _ in range(3):
        run_round(plain, replace(plan, race=False), hits)
    assert len(next_round(plain, replace(plan, race=False), 10).added) == 3


def test_a_shrinking_race_stops_training_the_base_after_the_minimum() -> None:
    study = screened_study()
    plan = ConfirmPlan(top=2, factor=2, min_seeds=3, max_seeds=5, target=0.5)
    for _ in range(3):
        run_round(study, plan, {"base": 950, "w": 651, "r": 650})
    step = next_round(study, plan, 10)
    assert step.added == ["confirm/w@3", "confirm/r@3"]
    assert "decides nothing when shrinking" in step.skipped["base"]
    add(study, "confirm/w@3", 651, 200.0, offset=3)
    add(study, "confirm/r@3", 650, 200.0, offset=3)
    # the round count follows the most-trained model: the next round is the fifth
    assert next_round(study, plan, 10).round == 5
