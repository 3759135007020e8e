"""One config trained exactly as the engine trains a work item: the same data split, recipe,
seed convention, device and threads; the result is a checkpoint instead of a study.

This module never prints: progress goes through callbacks, and the CLI (``effscale train``)
renders it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from effscale.datasets.images import ImageData
from effscale.datasets.registry import native_size
from effscale.devices import resolve_device
from effscale.experiment.data import load_data
from effscale.experiment.events import RunEvents
from effscale.experiment.settings import RunSettings, seed_for
from effscale.model.checkpoint import save_checkpoint
from effscale.model.config import ModelConfig
from effscale.train.levers import check_levers
from effscale.train.proxy import proxy_stem_stride
from effscale.train.trainer import (
    EpochFn,
    ProgressFn,
    TrainResult,
    proxy_config,
    train_config,
)


@dataclass
class SingleRun:
    """One finished training: what it measured and the config the checkpoint holds."""

    result: TrainResult
    trained_config: ModelConfig
    train: ImageData
    val: ImageData
    device: str
    checkpoint: Path | None


def train_single(
    config: ModelConfig, settings: RunSettings, *, checkpoint: Path | None,
    compile_model: bool = False, message: Callable[[str], None] | None = None,
    progress: ProgressFn | None = None, on_epoch: EpochFn | None = None,
    init: Path | None = None,
) -> SingleRun:
    """Train ``config`` at ``settings.budget.resolution`` on the run's data split with the
    run's recipe and seed, and save a checkpoint (weights + the config actually trained:
    the dataset's classes, the proxy resolution, no proxy dropout) when ``checkpoint`` is set.
    """
    events = RunEvents()
    if message is not None:
        events.message = message  # type: ignore[method-assign]
    resolution = settings.budget.resolution
    check_levers(compile_model or settings.recipe.compile, settings.recipe.precision,
                 resolve_device(settings.device))
    train, val = load_data(settings, events, native_size(settings.dataset) or resolution)
    device = resolve_device(settings.device)
    num_classes = len(train.classes)
    if settings.recipe.stem_stride is None:  # the search's proxy convention (train.proxy)
        settings = replace(settings, recipe=replace(
            settings.recipe, stem_stride=proxy_stem_stride(config, resolution)))
    trained = proxy_config(config.replace(resolution=resolution), settings.recipe, num_classes)
    result = train_config(
        trained, train.images, train.labels, val.images, val.labels, recipe=settings.recipe,
        device=device, seed=seed_for(settings, 0), progress=progress, on_epoch=on_epoch,
        compile_model=compile_model, init=init,
    )
    model, result.model = result.model, None
    if checkpoint is not None:
        save_checkpoint(checkpoint, trained, model, checkpoint_meta(settings, result, train, val))
    return SingleRun(result, trained, train, val, str(device), checkpoint)


def checkpoint_meta(settings: RunSettings, result: TrainResult, train: ImageData,
                    val: ImageData) -> dict[str, Any]:
    return {
        "dataset": settings.dataset, "budget": settings.budget.name,
        "train_fingerprint": train.fingerprint, "val_fingerprint": val.fingerprint,
        "recipe": settings.recipe.to_dict(), "seed": seed_for(settings, 0),
        "val_accuracy": result.val_accuracy,
        "val_accuracy_per_epoch": list(result.val_accuracy_per_epoch),
        "epochs": result.epochs_run,
    }
