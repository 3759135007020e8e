"""Pruners: which trainings may stop early, and who decides."""

from __future__ import annotations

import optuna

from effscale.experiment.settings import RunSettings

PRUNERS = ("none", "median", "halving")


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """optuna's pruner for ``name``; ``halving`` here is the asynchronous fallback (see
    :func:`synchronous_halving`)."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "halving":
        # Rungs at epoch 1, 3, 9 ...: the best third of candidates go on at each rung.
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def synchronous_halving(settings: RunSettings) -> bool:
    """Halving decides each rung over all candidates (:mod:`effscale.experiment.halving`) when
    one process owns the study; with several workers or a shared storage, optuna's
    asynchronous pruner does."""
    return settings.budget.pruner == "halving" and settings.workers == 1 \
        and settings.storage is None
