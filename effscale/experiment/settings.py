"""What every run of the engine is told: data, budget, recipe, devices and where it lives.

:class:`RunSettings` declares each field once; a search, a comparison and a single training
extend it with what is theirs. Fields are keyword-only, so an extension may add fields
without defaults and may change a default (``study``) without restating the field's meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from effscale.experiment.budgets import Budget
from effscale.model.config import ScalingRules
from effscale.train.trainer import Recipe


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """The fields search, compare and train share.

    ``budget`` sizes the data split (``train_size``, ``val_size``) and the repeats; the
    ``recipe`` owns the training schedule (epochs, batch size, optimiser, stem stride).
    ``out``, ``storage``, ``study``, ``workers``, ``devices``, ``workers_per_device``,
    ``threads`` and ``device`` say where and how the run executes and are never part of its
    identity. ``runtime`` (what runs the model a latency cost times: torch or onnxruntime) is
    part of it through the cost: a latency run records it in its cost's device fingerprint
    (torch's fingerprint as it always was), so a resume in another runtime is refused.
    """

    base: str
    dataset: str
    budget: Budget
    recipe: Recipe
    rules: ScalingRules = field(default_factory=ScalingRules)
    data_dir: str | None = None
    seed: int = 0
    device: str = "auto"
    counter: str = "fvcore"
    out: str | None = None
    storage: str | None = None
    study: str = "effscale"
    workers: int = 1
    devices: tuple[int, ...] | None = None  # CUDA GPUs the workers spread over (None: --device)
    workers_per_device: int = 1  # workers on each of ``devices`` (experiment.workers)
    threads: int | None = None
    allow_upsampling: bool = False
    keep_weights: bool = False  # seed 0's trained model of each item in RUN/weights/<model>.pt
    runtime: str = "torch"  # what runs the model a latency cost times (model.cost.RUNTIMES)


FRESH_SEED_OFFSET = 100  # a confirmation's seed i trains as seed index 100 + i
# The proxy ladder's rung of r px, seed i: seed index 10_000 + 100 r + i. Each rung draws its
# own seeds: with the confirmation's, a rung where a candidate trains at the base's own size
# (resolution-only at 14 px is the base at 20 px) retrained the confirmation's very base runs,
# and the rungs' two leads shared them.
LADDER_SEED_OFFSET = 10_000


def ladder_seed_offset(rung: int) -> int:
    """The seed stream of the ladder's rung of ``rung`` px (see :data:`LADDER_SEED_OFFSET`)."""
    return LADDER_SEED_OFFSET + 100 * rung


def seed_for(settings: RunSettings, seed_index: int, offset: int = 0) -> int:
    """The training seed of a work item's ``seed_index`` (0: the first seed). ``offset``: the
    item's seed stream (0 the screening; :data:`FRESH_SEED_OFFSET` a confirmation item, so its
    seeds never coincide with a screening seed; :func:`ladder_seed_offset` a ladder rung's)."""
    return settings.seed + 1000 * (seed_index + offset)
