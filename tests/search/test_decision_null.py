"""The null test that can fail: simulated searches with every model equal, run through the
code the CLI runs (``next_round`` choosing, adding seeds, racing and stopping; ``decide``
with its family, looks and per-model seed noise), in regimes calibrated on
benchmarks/seed_noise.py (example SE 0.47 points; base seed std 1.0 = the candidates', and
1.26 against 0.42, the measured 3x). Each run checks two rates against a band:

- a false "separated" claim anywhere in the family: at or under 5 % (its upper 95 % bound);
- the family's smallest adjusted p under 0.5: a common event whose rate a valid family keeps
  under 0.5, and which the rule, conservative at 2-3 seeds (Hsu's degrees of freedom), keeps
  within [0, 5 %] (benchmarks/decision_null.py: 0.5 % in 400 runs at equal noise). A
  correction that is lost moves it far out: without Holm 34.7 %.

The mutations (a lost multiplicity correction, a lost correction over looks, a pooled seed
std under unequal noise) must make the check fail, and the test asserts that they do.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from effscale.experiment import stats
from effscale.search import decision
from effscale.search.confirm import ConfirmPlan
from effscale.search.simulation import World, rates

PLAN = ConfirmPlan(top=2, factor=2, min_seeds=2, max_seeds=3)  # quick's plan
RUNS = 150
EQUAL = World(base_std=1.0, candidate_std=1.0, examples=400)
UNEQUAL = World(base_std=1.26, candidate_std=0.42, examples=400)
P_BAND = (0.0, 0.05)  # the smallest adjusted p under 0.5, in this share of the runs


def holds(world: World, seed: int) -> tuple[bool, dict[str, float]]:
    """The null check: family-wise false claims at most 5 % (upper 95 % bound) and the
    smallest adjusted p under 0.5 within :data:`P_BAND`."""
    r = rates(world, PLAN, RUNS, seed)
    ok = r["separated_upper"] <= 0.05 and P_BAND[0] <= r["p_below_0.5"] <= P_BAND[1]
    return ok, r


def _no_holm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "holm", lambda p, alpha=stats.ALPHA: list(p))


def _no_looks(monkeypatch: pytest.MonkeyPatch) -> None:
    family = stats.holm_family
    monkeypatch.setattr(stats, "holm_family",
                        lambda c, alpha=stats.ALPHA, looks=1: family(c, alpha, 1))


def _pooled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The old rule: one seed std pooled over the confirmed models, on sum(n_i - 1) dof."""
    def family(winner, rivals, base, looks, compare=None):  # type: ignore[no-untyped-def]
        models = (winner, *rivals, base)
        noise, dof = stats.pooled_seed_noise([r.accuracies for r in models])
        pairs = [(winner, base), *((winner, r) for r in rivals), *((r, base) for r in rivals),
                 *((a, b) for i, a in enumerate(rivals) for b in rivals[i + 1:])]
        return stats.holm_family([
            stats.compare(a.candidate, a.mean_correct, b.candidate, b.mean_correct, noise,
                          seeds_a=len(a.accuracies), seeds_b=len(b.accuracies), noise_dof=dof)
            for a, b in pairs], looks=looks)
    monkeypatch.setattr(decision, "_family", family)


@pytest.mark.slow
@pytest.mark.parametrize("world", [EQUAL, UNEQUAL], ids=["equal", "base-3x"])
def test_the_rule_holds_its_level_through_the_cli_path(world: World) -> None:
    ok, r = holds(world, seed=21)
    assert ok, r
    assert r["trained"] >= 6  # the stage ran: at least two rounds of three models


MUTATIONS: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], World]] = {
    "no multiplicity correction": (_no_holm, EQUAL),
    "no correction over looks": (_no_looks, EQUAL),
    "pooled std under unequal noise": (_pooled, UNEQUAL),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MUTATIONS))
def test_a_broken_rule_fails_the_null_check(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each mutation, applied to the real code for this test only, must fail :func:`holds`
    (seen failing: the lost correction moves the smallest adjusted p under 0.5 out of the
    band, the pooled std also raises the false claims)."""
    mutate, world = MUTATIONS[name]
    mutate(monkeypatch)
    ok, r = holds(world, seed=21)
    assert not ok, (name, r)
