"""Search budgets: how much data, how many epochs, which grid. Explicit flags override them.

Times are measured wall clock for ``--base b0`` on 2 CPU cores (see README for the runs
behind them). Every grid reaches the equal-cost curve's three single-axis ends (depth-only,
width-only and resolution-only, each solved on measured full-size FLOPs; gamma_max 1.5 leaves
room for resolution-only's ~1.4) and the points between them. Every budget but smoke keeps
only candidates within +-5 % of 2x the base's FLOPs measured at full size, and trains at
proxy sizes at or below the dataset's native size (a 20 px base with stem stride 1, so b0's
final maps are 2x2; see effscale.train.proxy).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from effscale.errors import EffscaleError
from effscale.train.levers import REFERENCE_BATCH, linear_lr
from effscale.train.proxy import proxy_base_size
from effscale.train.trainer import Recipe


@dataclass(frozen=True)
class Budget:
    """One preset. ``train_size``/``val_size`` of 0 mean "all that the dataset has".

    ``flops_tolerance`` is relative: a candidate is kept when its full-size FLOPs ratio is
    within ``target x (1 +- flops_tolerance)``; ``None`` keeps every candidate.
    ``repeats``/``repeat_top``: screening seeds of the base, and of the best N candidates
    (screening only chooses; these seeds never enter the verdict).
    ``confirm_top``/``confirm_factor``: the confirmation stage retrains the base and the
    screening's top k on fresh seeds with ``confirm_factor`` times the epochs, at least
    ``confirm_seeds`` and at most ``confirm_max_seeds`` seeds each, a round of one more seed
    at a time until the verdict is decided, the seeds run out or the next round would pass
    ``time_limit`` (seconds of training for the whole search; ``None``: no limit). 0: no
    confirmation, so no decision (see :mod:`effscale.search.confirm`).
    ``precise_bn``: training images that recompute the batch-norm statistics before each
    validation (:mod:`effscale.train.precise_bn`); 0 keeps the running ones.
    ``ladder_rungs``: the proxy ladder (:mod:`effscale.search.ladder`): after a decided
    confirmation, the base, the winner and the runner-up are retrained with the base's proxy
    at this many other sizes, ``ladder_seeds`` fresh seeds each, when the estimate fits in
    ``ladder_time`` seconds of training (``None``: any time); 0: no ladder.
    ``proxy_rule``: ``cpu`` or ``gpu``, how the proxy base size (``resolution``) follows the
    data's native size (:func:`effscale.train.proxy.proxy_base_size`: 20 px for 32 px data on
    ``cpu``; at least 64 px on ``gpu`` where the data is that large); ``None``: ``resolution``
    as it is.
    ``refine_rounds``/``refine_points``: when the screening's best lies on an edge of the
    grid that is no bound of the feasible set, up to this many rounds of at most this many
    more points on the equal-cost curve past it, screened before the confirmation (see
    :mod:`effscale.search.refine`); 0 rounds: none, and the answer says it was not refined.
    """

    name: str
    train_size: int
    val_size: int
    epochs: int
    batch_size: int
    resolution: int
    step: float
    gamma_max: float
    repeats: int
    pruner: str
    flops_tolerance: float | None
    resolution_step: int | None
    description: str
    gamma_step: float | None = None
    alpha_max: float = 2.0
    repeat_top: int = 0
    confirm_top: int = 0
    confirm_factor: int = 2
    confirm_seeds: int = 2
    confirm_max_seeds: int = 4
    time_limit: float | None = None
    expected: str = ""
    precise_bn: int = 0
    ladder_rungs: int = 0
    ladder_seeds: int = 3  # each comparison carries its two models' own seed noise, on
    # seeds - 1 degrees of freedom each: at 2 seeds a rung's intervals are too wide to read
    ladder_time: float | None = None
    refine_rounds: int = 1
    refine_points: int = 3
    proxy_rule: str | None = None  # "cpu"/"gpu": the base size follows the data's native size

    def for_data(self, native: int | None) -> Budget:
        """The budget with its proxy base size set from the data's native size by its rule
        (:func:`effscale.train.proxy.proxy_base_size`); ``resolution`` stays the size for
        data of unknown size only when the budget has no rule."""
        if self.proxy_rule is None:
            return self
        return replace(self, resolution=proxy_base_size(native, self.proxy_rule))

    @property
    def looks(self) -> int:
        """How many times the confirmation may test its verdict: once per round from
        ``confirm_seeds`` seeds to ``confirm_max_seeds``."""
        return max(1, self.confirm_max_seeds - self.confirm_seeds + 1)

    def override(self, **changes: object) -> Budget:
        """A copy with the non-``None`` values in ``changes`` applied."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})



BUDGETS: dict[str, Budget] = {
    "smoke": Budget(
        "smoke", train_size=512, val_size=256, epochs=1, batch_size=64, resolution=20,
        step=0.4, gamma_max=1.5, gamma_step=0.2, repeats=1, pruner="none",
        flops_tolerance=0.05, resolution_step=None, confirm_top=1, confirm_factor=1,
        confirm_seeds=2, confirm_max_seeds=2, refine_points=2, proxy_rule="cpu",
        description="plumbing check: minutes, not seconds, on a CPU; accuracies are "
                    "meaningless",
        expected="about 2 min on 2 CPU cores (2.2 min measured with the former grid)",
    ),
    "demo": Budget(
        "demo", train_size=1024, val_size=800, epochs=3, batch_size=32, resolution=20,
        step=0.8, gamma_max=1.5, gamma_step=0.3, alpha_max=1.8, repeats=1, pruner="none",
        flops_tolerance=0.05, resolution_step=None, confirm_top=1, confirm_factor=1,
        confirm_seeds=4, confirm_max_seeds=4, time_limit=300.0, precise_bn=512,
        refine_points=2, proxy_rule="cpu",
        description="the embedded synthetic set, learned for real in minutes on a CPU: "
                    "width-only, depth-only, resolution-only and resolution+width at 2x "
                    "full-size FLOPs screened once; the base and the winner confirmed on 4 "
                    "fresh seeds in one look (3 seeds left +8.3 points undecided, p 0.059); "
                    "batch-norm statistics recomputed on 512 images before each validation; "
                    "no proxy ladder (its one rung below 20 px, 14 px, leaves the base 1x1 "
                    "feature maps; --ladder-rungs 1 climbs it)",
        expected="5-19 min on 2 CPU cores with the default two workers, by the CPU (5.0 "
                 "min measured on a 2-core Intel Xeon VM on 2026-12-06; 15.4-18.4 min on a "
                 "slower 2-core AMD EPYC VM; one worker of two threads there: 24.2 min); "
                 "decided after 4 confirmation seeds",
    ),
    "quick": Budget(
        "quick", train_size=10000, val_size=5000, epochs=3, batch_size=64, resolution=20,
        step=0.4, gamma_max=1.5, gamma_step=0.15, alpha_max=1.8, repeats=1, pruner="none",
        flops_tolerance=0.05, resolution_step=None, confirm_top=2, confirm_factor=2,
        confirm_seeds=3, confirm_max_seeds=4, time_limit=55 * 60.0, ladder_rungs=1,
        ladder_time=30 * 60.0, proxy_rule="cpu",
        description="coarse grid (alpha 1/1.4/1.8, gamma 1/1.15/1.3 = 20/23/26 px) and the "
                    "equal-cost curve's three ends (depth-only, width-only, resolution-only "
                    "at 28 px, under CIFAR's native 32), beta solved to 2x full-size FLOPs: "
                    "6 candidates screened once for 3 epochs; the base and the top 2 "
                    "confirmed for 6 epochs on 3-4 fresh seeds each, until decided or 55 min "
                    "of training",
        expected="about 70 min on 2 CPU cores (CIFAR-10, b0: 69.8 min measured on a "
                 "2-core Intel Xeon VM with the default two workers on 2026-12-06, "
                 "stopped after 3 confirmation rounds by the 55 min time budget; 58.5 min "
                 "with the former 5-candidate grid on a slower VM); not measured on a GPU",
    ),
    "standard": Budget(
        "standard", train_size=45000, val_size=5000, epochs=10, batch_size=128, resolution=22,
        step=0.1, gamma_max=1.45, gamma_step=0.05, repeats=1, pruner="halving",
        flops_tolerance=0.05, resolution_step=None, confirm_top=2, confirm_seeds=3,
        confirm_max_seeds=6, precise_bn=512, refine_rounds=2, proxy_rule="gpu",
        description="NNI-like grid (alpha step 0.1, gamma step 0.05 = 22..32 px), beta "
                    "solved; for GPUs",
        expected="hours on a CPU; not yet measured on a GPU",
    ),
    "full": Budget(
        "full", train_size=0, val_size=5000, epochs=30, batch_size=128, resolution=22,
        step=0.1, gamma_max=1.45, gamma_step=0.05, repeats=1, pruner="halving",
        flops_tolerance=0.05, resolution_step=None, confirm_top=2, confirm_seeds=3,
        confirm_max_seeds=6, precise_bn=512, refine_rounds=2, proxy_rule="gpu",
        description="for GPUs: all training images, 30 epochs, the standard grid",
        expected="not yet measured",
    ),
    "gpu": Budget(
        "gpu", train_size=0, val_size=5000, epochs=10, batch_size=256, resolution=64,
        step=0.2, gamma_max=1.45, gamma_step=0.1, repeats=1, pruner="none",
        flops_tolerance=0.05, resolution_step=None, confirm_top=2, confirm_seeds=3,
        confirm_max_seeds=6, precise_bn=512, refine_rounds=2, proxy_rule="gpu",
        description="for a GPU: all training images, 10 epochs, a proxy base of 5/8 of the "
                    "data's native size, at least 64 and at most 160 px where the data is "
                    "that large (the native size caps it: 22 px on 32 px CIFAR-10), alpha "
                    "step 0.2, gamma step 0.1, beta solved",
        expected="not yet measured (no GPU was at hand)",
    ),
}

# The budget a search runs when none is given: one that learns on the dataset.
DEFAULT_BUDGETS = {"synthetic": "demo", "synthetic-capacity": "demo"}
DEFAULT_BUDGET = "quick"


def default_budget(dataset: str) -> str:
    return DEFAULT_BUDGETS.get(dataset, DEFAULT_BUDGET)


# Budgets whose learning rate scales linearly with their batch size, from the batch the
# recipe's rate was tuned at (effscale.train.levers.linear_lr): twice the batch, twice the
# rate. Empty: every budget trains at Recipe.lr whatever its batch. A budget listed here
# with a larger batch_size is the batch lever benchmarks/proxy_levers.py measures.
LINEAR_LR_BUDGETS: frozenset[str] = frozenset()


def budget_recipe(budget: Budget) -> Recipe:
    """The training recipe a budget implies (its epochs, batch size and precise-BN sample,
    and the learning rate scaled to its batch when it is in :data:`LINEAR_LR_BUDGETS`;
    defaults otherwise)."""
    lr = Recipe.lr
    if budget.name in LINEAR_LR_BUDGETS:
        lr = linear_lr(budget.batch_size, Recipe.lr, REFERENCE_BATCH)
    return Recipe(epochs=budget.epochs, batch_size=budget.batch_size,
                  precise_bn=budget.precise_bn, lr=lr)


def get_budget(name: str) -> Budget:
    if name not in BUDGETS:
        raise EffscaleError(f"unknown budget {name!r} (valid: {', '.join(BUDGETS)})")
    return BUDGETS[name]
