"""Does the confirmation's 5 % hold, and does its power line tell the truth? Simulated searches
through the real stage code (``next_round`` and ``decide`` on an in-memory study).

    python benchmarks/decision_null.py                 # the tables in docs/method.md
    python benchmarks/decision_null.py --runs 300      # a quicker, rougher pass

Prints three tables, every number from this run:

1. **Level.** Per regime (seed std of the base and of the candidates, in points; example SE of
   a difference 0.47 points, as measured on CIFAR-10 quick), with every model equal: the rate
   of a false DECIDED and of any false "separated" claim in the family, with its upper 95 %
   bound, for the quick plan (2 then 3 seeds) and a longer one (3 to 6 seeds), racing on.
   Beside the rule: the same searches decided with the *pooled* seed std (the old rule) and
   with Welch-Satterthwaite degrees of freedom, each the ratio to the rule's rate.
2. **Power.** The smallest difference detected with 80 % power by one look at 2, 3 and 6
   seeds at the quick plan's level (0.05 / 3 comparisons / 2 looks), and by the plan's two
   looks together: the line the verdict prints, the noncentral t at the test's degrees of
   freedom, the old normal-shift formula, and the 80 % point simulated through
   ``stats.compare_summary`` (bisection over the true difference), with the line's ratio.
3. **Shared validation images.** The longest plan's false-claim rate with the screening
   scored on the confirmation's images (what the CLI does) and on images of its own.

Calibration (benchmarks/seed_noise.py, docs/budgets.md): at 6 epochs the base's seed std was
1.0-1.4 points and the gamma candidate's 0.36-0.47; the regimes span equal noise, that ratio
(1.26 / 0.42) and base stds 3x and 5x the candidates'.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from effscale.experiment import stats
from effscale.search import decision
from effscale.search.confirm import ConfirmPlan
from effscale.search.simulation import World, rates

EXAMPLE_SE = 0.47
REGIMES = [(1.0, 1.0), (1.26, 0.42), (3.0, 1.0), (5.0, 1.0)]
PLANS = {"2-3 seeds": ConfirmPlan(top=2, factor=2, min_seeds=2, max_seeds=3),
         "3-6 seeds": ConfirmPlan(top=2, factor=2, min_seeds=3, max_seeds=6)}


def _pairs(winner, rivals, base):  # type: ignore[no-untyped-def]
    return [(winner, base), *((winner, r) for r in rivals), *((r, base) for r in rivals),
            *((a, b) for i, a in enumerate(rivals) for b in rivals[i + 1:])]


def pooled_family(winner, rivals, base, looks, compare=None):  # type: ignore[no-untyped-def]
    """The old rule: one seed std pooled over the confirmed models."""
    noise, dof = stats.pooled_seed_noise([r.accuracies for r in (winner, *rivals, base)])
    return stats.holm_family([
        stats.compare(a.candidate, a.mean_correct, b.candidate, b.mean_correct, noise,
                      seeds_a=len(a.accuracies), seeds_b=len(b.accuracies), noise_dof=dof)
        for a, b in _pairs(winner, rivals, base)], looks=looks)


def welch_family(winner, rivals, base, looks, compare=None):  # type: ignore[no-untyped-def]
    """Per-model seed stds with Welch-Satterthwaite degrees of freedom over the three parts."""
    family = []
    for a, b in _pairs(winner, rivals, base):
        c = stats.compare_models(a.candidate, a.mean_correct, a.accuracies, b.candidate,
                                 b.mean_correct, b.accuracies)
        na, nb = len(a.accuracies), len(b.accuracies)
        df = stats.welch_satterthwaite([(c.example_se ** 2, math.inf),
                                        (c.seed_std ** 2 / na, na - 1),
                                        ((c.seed_std_b or 0.0) ** 2 / nb, nb - 1)])
        p = stats.t_pvalue(c.margin / c.se, df) if c.se > 0 else 1.0
        family.append(type(c)(**{**c.__dict__, "df": df, "p_value": p, "p_adjusted": p,
                                 "separated": c.testable and p < stats.ALPHA}))
    return stats.holm_family(family, looks=looks)


@contextmanager
def rule(family: Callable | None) -> Iterator[None]:
    """Decide with another family builder for the duration (None: the real rule)."""
    original = decision._family
    if family is not None:
        decision._family = family
    try:
        yield
    finally:
        decision._family = original


def level_table(runs: int) -> None:
    print(f"level: every model equal, {runs} simulated searches per row, 5 candidates "
          f"screened, top 2 confirmed, example SE {EXAMPLE_SE} points, racing on")
    print(f"{'plan':<10} {'base std':>8} {'cand std':>8} {'false DECIDED':>13} "
          f"{'false separated':>15} {'upper 95%':>9} {'trainings':>9} "
          f"{'pooled (old)':>12} {'Welch-S df':>10}")
    for plan_name, plan in PLANS.items():
        for base_std, cand_std in REGIMES:
            world = World(base_std=base_std, candidate_std=cand_std, example_se=EXAMPLE_SE)
            real = rates(world, plan, runs, seed=11)
            with rule(pooled_family):
                pooled = rates(world, plan, runs, seed=11)
            with rule(welch_family):
                welch = rates(world, plan, runs, seed=11)
            print(f"{plan_name:<10} {base_std:>8.2f} {cand_std:>8.2f} "
                  f"{real['decided']:>12.2%} {real['separated']:>15.2%} "
                  f"{real['separated_upper']:>9.2%} {real['trained']:>9.1f} "
                  f"{pooled['separated']:>12.2%} {welch['separated']:>10.2%}", flush=True)


def simulated_point(base_std: float, cand_std: float, looks: list[int], alpha: float,
                    draws: int, seed: int) -> float:
    """The true difference (points) the test separates with 80 % probability at one of
    ``looks``, found by bisection over simulated confirmations through
    :func:`stats.compare_summary` (its p-value against ``alpha``)."""
    rng = np.random.default_rng(seed)
    most = max(looks)
    seeds_a = rng.normal(0.0, cand_std, (draws, most))
    seeds_b = rng.normal(0.0, base_std, (draws, most))
    examples = rng.normal(0.0, EXAMPLE_SE, draws)

    def power(delta: float) -> float:
        hits = 0
        for i in range(draws):
            for n in looks:
                c = stats.compare_summary("a", "b", delta + examples[i] + seeds_a[i, :n].mean()
                                          - seeds_b[i, :n].mean(), EXAMPLE_SE, 4999,
                                          list(seeds_a[i, :n]), list(seeds_b[i, :n]))
                if c.margin > 0 and c.p_value < alpha:
                    hits += 1
                    break
        return hits / draws

    low, high = 0.0, 8.0
    while power(high) < stats.POWER:
        low, high = high, high * 2
    for _ in range(9):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if power(mid) < stats.POWER else (low, mid)
    return 0.5 * (low + high)


def power_table(draws: int) -> None:
    alpha = stats.ALPHA / 3 / 2
    print(f"\npower: smallest difference (points) detected with 80 % power, level "
          f"{alpha:.4f} (3 comparisons x 2 looks), example SE {EXAMPLE_SE}; simulated: "
          f"{draws} confirmations per step through stats.compare_summary")
    print(f"{'base std':>8} {'cand std':>8} {'looks':>6} {'line':>7} {'nct':>7} "
          f"{'old':>7} {'simulated':>9} {'line/sim':>8}")
    for base_std, cand_std in [(1.0, 1.0), (1.26, 0.42)]:
        for looks in ([2], [3], [6], [2, 3]):
            line = stats.procedure_detectable(EXAMPLE_SE, cand_std, base_std, looks, alpha)
            n = looks[-1]
            se = math.sqrt(EXAMPLE_SE ** 2 + (base_std ** 2 + cand_std ** 2) / n)
            nct = stats.detectable(se, n - 1, alpha) if len(looks) == 1 else float("nan")
            old = ((stats.t_quantile(1 - alpha / 2, n - 1) + stats.t_quantile(0.8, n - 1)) * se
                   if len(looks) == 1 else float("nan"))
            simulated = simulated_point(base_std, cand_std, looks, alpha, draws, seed=5)
            print(f"{base_std:>8.2f} {cand_std:>8.2f} {','.join(map(str, looks)):>6} "
                  f"{line:>7.2f} {nct:>7.2f} {old:>7.2f} {simulated:>9.2f} "
                  f"{line / simulated:>8.3f}", flush=True)


def shared_table(runs: int) -> None:
    plan = PLANS["3-6 seeds"]
    print(f"\nshared validation images: plan 3-6 seeds, base std 5, candidates 1, {runs} runs")
    for shared in (True, False):
        world = World(base_std=5.0, candidate_std=1.0, example_se=EXAMPLE_SE,
                      shared_validation=shared, candidates=10)
        r = rates(world, plan, runs, seed=13)
        print(f"screening on {'the same' if shared else 'its own'} images, 10 candidates: "
              f"false DECIDED {r['decided']:.2%}, false separated {r['separated']:.2%} "
              f"(upper 95 % {r['separated_upper']:.2%})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="simulated searches per row")
    parser.add_argument("--draws", type=int, default=2000,
                        help="simulated confirmations per power step")
    parser.add_argument("--only", choices=["level", "power", "shared"], default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    if args.only in (None, "level"):
        level_table(args.runs)
    if args.only in (None, "power"):
        power_table(args.draws)
    if args.only in (None, "shared"):
        shared_table(args.runs)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
