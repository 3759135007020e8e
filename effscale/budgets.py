"""Search budgets: how much data, how many epochs, which grid. Explicit flags override them.

Times are measured wall clock for ``--base b0`` (see README for the runs behind them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from effscale.errors import EffscaleError


@dataclass(frozen=True)
class Budget:
    """One preset. ``train_size``/``val_size`` of 0 mean "all that the dataset has"."""

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
    resolution_step: int
    description: str

    def override(self, **changes: object) -> Budget:
        """A copy with the non-``None`` values in ``changes`` applied."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


BUDGETS: dict[str, Budget] = {
    "smoke": Budget(
        "smoke", train_size=512, val_size=256, epochs=1, batch_size=64, resolution=32,
        step=0.25, gamma_max=1.25, repeats=1, pruner="none", flops_tolerance=None,
        resolution_step=8,
        description="plumbing check: seconds on any CPU; accuracies are meaningless",
    ),
    "quick": Budget(
        "quick", train_size=20000, val_size=5000, epochs=3, batch_size=64, resolution=32,
        # No halving by default: at 3 epochs it saved 1.5x the epochs on CIFAR-10 and its
        # 1-epoch rung dropped the full grid's winner (4th of 6 after epoch 1; README).
        step=0.1, gamma_max=1.25, repeats=2, pruner="none", flops_tolerance=0.6,
        resolution_step=8,
        description="39 min on 2 idle CPU cores (CIFAR-10, b0), minutes on a GPU; coarse "
                    "grid (step 0.1). "
                    "At 32 px any larger input turns B0's last 1x1 maps into 2x2 (measured "
                    "FLOPs x2.4 for 40 px), so the FLOPs window 2 +- 0.6 leaves gamma = 1",
    ),
    "standard": Budget(
        "standard", train_size=45000, val_size=5000, epochs=10, batch_size=128, resolution=64,
        step=0.05, gamma_max=1.5, repeats=3, pruner="halving", flops_tolerance=0.5,
        resolution_step=16,
        description="hours on a CPU, under an hour on a GPU; NNI-style step 0.05, proxy "
                    "sizes 64/80/96 px (maps stay whole, measured FLOPs track nominal)",
    ),
    "full": Budget(
        "full", train_size=0, val_size=5000, epochs=30, batch_size=128, resolution=64,
        step=0.05, gamma_max=1.5, repeats=3, pruner="halving", flops_tolerance=0.5,
        resolution_step=16,
        description="for GPUs: all training images, 30 epochs, proxy base size 64 px",
    ),
}


def get_budget(name: str) -> Budget:
    if name not in BUDGETS:
        raise EffscaleError(f"unknown budget {name!r} (valid: {', '.join(BUDGETS)})")
    return BUDGETS[name]
