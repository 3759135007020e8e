"""The confirmation's decision (:mod:`effscale.search.decision`): verdicts on known numbers and
power in every verdict. The null simulation, through the stage code the CLI runs, is
tests/search/test_decision_null.py (it replaced one here that re-implemented the stopping
loop, simulated a world 8x more conservative than the real one and could not fail)."""

from __future__ import annotations

import numpy as np
import pytest

from effscale.experiment import stats
from effscale.experiment.rows import Row
from effscale.search.decision import decide

N = 2000


def hits_vector(hits: int, offset: int = 0, n: int = N) -> np.ndarray:
    vector = np.zeros(n, dtype=bool)
    vector[(np.arange(hits) + offset) % n] = True
    return vector


def row(name: str, *hits: int) -> Row:
    vectors = [hits_vector(h, offset=7 * i) for i, h in enumerate(hits)]
    return Row(name, {}, accuracies=[float(v.mean()) for v in vectors], correct=vectors)


def rows_of(*items: Row) -> dict[str, Row]:
    return {r.candidate: r for r in items}


def six(hits: int) -> list[int]:
    """Six seeds around ``hits`` (std 0.4 points of 2,000): each model's seed-noise test
    rests on min(n_a, n_b) - 1 = 5 degrees of freedom, enough to separate a few points."""
    return [hits + d for d in (0, 10, -10, 5, -5, 0)]


ORDER = ["base", "w", "r"]


def test_a_clear_winner_is_decided_with_its_power() -> None:
    rows = rows_of(row("base", *six(1000)), row("w", *six(1200)), row("r", *six(1100)))
    d = decide(rows, ORDER, looks=2, num_classes=10)
    assert d.decided and d.signal and d.winner.candidate == "w"
    assert d.verdict.startswith("DECIDED: w beats the base by 10.00 points on 6 fresh")
    vs = d.vs_base
    # one family: w vs base, w vs r, r vs base
    assert [(c.a, c.b) for c in d.comparisons] == [("w", "base"), ("w", "r"), ("r", "base")]
    assert vs.family == 3 and vs.looks == 2 and vs.df == 5  # Hsu: min(6, 6) - 1
    # Holm's smallest p times the family and again by the looks
    assert vs.p_adjusted == pytest.approx(min(1.0, 3 * 2 * min(c.p_value for c in d.comparisons)))
    assert "separated from the runner-up r" in d.verdict
    assert [p.versus for p in d.power] == ["base", "r"]
    base_power = d.power[0]
    assert base_power.alpha == pytest.approx(0.05 / 3 / 2)
    assert base_power.detectable == pytest.approx(stats.procedure_detectable(
        vs.example_se, vs.seed_std, vs.seed_std_b, [(6, 6)], 0.05 / 6))
    # the plan's two looks (2 and 3 seeds) together, and +k seeds at the looks they imply:
    # reaching 6 + k seeds from a first look at 2 is 5 + k looks
    assert base_power.plan == [2, 3]
    assert base_power.more_alpha == pytest.approx({k: 0.05 / 3 / (5 + k) for k in (1, 2, 4)})
    assert base_power.more[1] == pytest.approx(stats.procedure_detectable(
        vs.example_se, vs.seed_std, vs.seed_std_b, [(7, 7)], 0.05 / 3 / 6))
    assert base_power.procedure == pytest.approx(stats.procedure_detectable(
        vs.example_se, vs.seed_std, vs.seed_std_b, [2, 3], 0.05 / 6))
    # the extra look is priced: at today's level the 7th seed would promise more than it can
    assert base_power.more[1] > stats.procedure_detectable(
        vs.example_se, vs.seed_std, vs.seed_std_b, [(7, 7)], 0.05 / 6)
    assert "the plan's looks at 2, 3 seeds together" in base_power.describe()


def test_an_undecided_verdict_says_what_it_could_detect() -> None:
    rows = rows_of(row("base", 1000, 1100), row("w", 1040, 1090), row("r", 1030, 1070))
    d = decide(rows, ORDER, looks=2, num_classes=10)
    assert not d.decided and not d.signal
    assert d.verdict.startswith("UNDECIDED: w's +0.75 points over the base")
    assert "this run could detect" in d.verdict and "+4 seeds" in d.verdict
    assert "TIED with the runner-up r" in d.verdict


def test_a_winner_below_the_base_is_decided_against() -> None:
    rows = rows_of(row("base", *six(1300)), row("w", *six(1000)), row("r", *six(1005)))
    d = decide(rows, ORDER, looks=1, num_classes=10)
    assert d.decided and not d.signal and d.verdict.startswith("DECIDED AGAINST")
    # the claim covers what was tested: every confirmed direction against the base, not
    # the screened ones that were never confirmed
    assert "r is -14.75 points from it (separated below)" in d.verdict
    assert "none of the 2 confirmed direction(s) is separated above the base" in d.verdict
    assert "not confirmed were not tested" in d.verdict


def test_a_rival_separated_above_the_pick_and_the_base_is_the_answer() -> None:
    rows = rows_of(row("base", *six(1000)), row("w", *six(1100)), row("r", *six(1400)))
    d = decide(rows, ORDER, looks=1, num_classes=10)
    assert d.winner.candidate == "r" and d.pick == "w" and d.overturned_by == "r"
    assert d.decided and d.signal
    assert d.verdict.startswith("DECIDED: r beats the base by 20.00 points")
    assert "the screening's pick w was NOT confirmed (+5.00 points over the base, separated)" \
        in d.verdict


def test_a_pick_within_the_noise_gives_way_to_a_confirmed_rival() -> None:
    """The screening's pick ties the base on confirmation; the second confirmed candidate
    is separated above the base: the run is decided with the second (not left undecided
    because the screening's first choice failed)."""
    rows = rows_of(row("base", *six(1000)), row("w", *six(1010)), row("r", *six(1300)))
    d = decide(rows, ORDER, looks=2, num_classes=10)
    assert d.winner.candidate == "r" and d.signal and d.overturned_by == "r"
    assert [r.candidate for r in d.rivals] == ["w"]
    assert "the screening's pick w was NOT confirmed (+0.50 points over the base, within the " \
        "noise)" in d.verdict
    assert d.vs_base.a == "r" and [p.versus for p in d.power] == ["base", "w"]


def test_the_first_qualifying_candidate_in_screening_order_wins() -> None:
    """Two candidates above the base and tied with each other: the screening's order
    names the answer, whichever has the higher confirmation mean."""
    rows = rows_of(row("base", *six(1000)), row("w", *six(1200)), row("r", *six(1210)))
    d = decide(rows, ORDER, looks=1, num_classes=10)
    assert d.winner.candidate == "w" and d.signal and not d.overturned_by
    assert d.tied == ["r"] and "TIED with the runner-up r" in d.verdict


def test_a_rival_above_the_pick_but_not_the_base_leaves_it_undecided() -> None:
    rows = rows_of(row("base", *six(1150)), row("w", *six(900)), row("r", *six(1152)))
    d = decide(rows, ORDER, looks=1, num_classes=10)
    assert d.winner.candidate == "w" and d.overturned_by == "r"
    assert not d.decided and not d.signal and "OVERTURNED" in d.verdict


def test_zero_seed_noise_decides_nothing() -> None:
    """Defect 5: two seeds with identical accuracies are not a seed noise of 0."""
    rows = rows_of(row("base", 1000, 1000), row("w", 1050, 1050))
    d = decide(rows, ["base", "w"], looks=1, num_classes=10)
    assert d.seed_std == 0.0 and not d.decided and not d.signal
    assert d.vs_base.untestable.startswith("w's seeds gave identical accuracies")


def test_a_near_zero_seed_std_on_one_side_is_not_testable() -> None:
    """Defect: a pooled std of 1e-9 was treated as testable. Per model, a side whose seeds
    agree to within 1e-6 is not a measured noise, even when the other side's is."""
    rows = rows_of(row("base", *six(1000)), row("w", 1300, 1300, 1300, 1300, 1300, 1300))
    rows["w"].accuracies[1] += 1e-9  # numerically not 0, yet no measurement
    d = decide(rows, ["base", "w"], looks=1, num_classes=10)
    assert 0 < d.vs_base.seed_std < 1e-6 and not d.decided
    assert "seed std below 1e-06" in d.vs_base.untestable


def test_near_chance_base_is_no_signal() -> None:
    rows = rows_of(row("base", 210, 220), row("w", 400, 410))
    assert decide(rows, ["base", "w"], 1, 10).verdict.startswith("NO SIGNAL")


def test_missing_confirmation_is_undecided() -> None:
    d = decide(rows_of(row("base", 1000, 1010)), ORDER, looks=1, num_classes=10)
    assert not d.decided and d.verdict.startswith("UNDECIDED: the screening's winner")


# ------------------------------------------------------------------------------ shrinking

def test_shrinking_decides_the_direction_that_loses_least_not_against_the_base() -> None:
    """At half the base's cost every candidate is below the base; the question is which one
    loses least. The growing rule called this "DECIDED AGAINST: ... no scaled direction
    beats the base at equal cost" although the base costs twice as much."""
    rows = rows_of(row("base", *six(1400)), row("w", *six(1200)), row("r", *six(1000)))
    d = decide(rows, ORDER, looks=2, num_classes=10, target=0.5)
    assert d.shrinking and d.decided and d.signal and d.winner.candidate == "w"
    assert d.verdict.startswith("DECIDED: w keeps the most accuracy at 0.5× the base's cost: "
                                "it beats r by 10.00 points")
    assert "against the base, which costs 2× as much: -10.00 points" in d.verdict
    assert "AGAINST" not in d.verdict
    assert [p.versus for p in d.power] == ["base", "r"]
    assert d.to_dict()["question"] == "loses least to the base"
    assert d.to_dict()["separated_from_base"] is True


def test_shrinking_with_tied_directions_is_undecided_with_its_power() -> None:
    rows = rows_of(row("base", 1400, 1410), row("w", 1040, 1090), row("r", 1030, 1070))
    d = decide(rows, ORDER, looks=2, num_classes=10, target=0.5)
    assert not d.decided and not d.signal and d.tied == ["r"]
    assert d.verdict.startswith("UNDECIDED: no shrinking direction is separated above every "
                                "other at 0.5× the base's cost")
    assert "+0.75 points over r" in d.verdict and "detectable:" in d.verdict


def test_shrinking_names_a_confirmed_rival_above_the_pick() -> None:
    rows = rows_of(row("base", *six(1400)), row("w", *six(1000)), row("r", *six(1200)))
    d = decide(rows, ORDER, looks=1, num_classes=10, target=0.5)
    assert d.decided and d.winner.candidate == "r" and d.overturned_by == "r" and d.pick == "w"


def test_shrinking_needs_two_confirmed_directions() -> None:
    rows = rows_of(row("base", 1400, 1410), row("w", 1200, 1210))
    d = decide(rows, ["base", "w"], looks=1, num_classes=10, target=0.5)
    assert not d.decided and "only w was confirmed" in d.verdict


def test_the_confirm_plan_reads_a_shrinking_target_from_the_settings() -> None:
    from effscale.search.confirm import ConfirmPlan
    budget = {"confirm_top": 2, "confirm_factor": 2, "confirm_seeds": 2, "confirm_max_seeds": 3}
    plan = ConfirmPlan.from_settings({"identity": {"budget": budget}, "grid": {"target": 0.5}})
    assert plan.target == 0.5 and plan.looks == 2
    assert "shrinking" in plan.describe(3)
    assert ConfirmPlan.from_settings({"identity": {"budget": budget}}).target == 2.0
