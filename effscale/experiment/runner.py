"""The trial runner: train one claimed work item and tell the study how it went.

Failures are recorded on the trial, never raised (except an interrupt, which releases the
item for a resume and propagates). Out-of-memory errors follow
:mod:`effscale.train.memory`'s one rule: in training, the item is retrained at half the batch
and half the learning rate (linear scaling); in evaluation, only the evaluation is retried at
half its batch; at :data:`effscale.train.memory.SMALLEST_BATCH` the item fails as "out of
memory". The trial records ``batch_size_used``, ``lr_used``, ``eval_batch_size_used`` and a
``note``. What a trial records (its model's
numbers at the start, its training's numbers at the end) is written here once, for the plain
loop and for rung-synchronous halving alike.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import optuna
import torch

from effscale.experiment.events import RunEvents
from effscale.experiment.faults import eval_fault_hook, fault_recipe, with_test_hooks
from effscale.experiment.plan import Prepared, Trainable
from effscale.experiment.queue import ITEM_PARAM, progress_counts, release_interrupted, split_item
from effscale.experiment.settings import RunSettings, seed_for
from effscale.experiment.stats import pack_correct
from effscale.model.checkpoint import save_checkpoint
from effscale.train.memory import OutOfMemory, Retry, describe, retry_training
from effscale.train.trainer import DivergedError, Recipe, TrainResult, train_config


def recipe_for(settings: RunSettings, candidate: Trainable) -> Recipe:
    """The run's recipe, with the fidelity check's longer schedule for its items."""
    if candidate.epochs_factor == 1:
        return settings.recipe
    return replace(settings.recipe, epochs=settings.recipe.epochs * candidate.epochs_factor)


def prunable(candidate: Trainable, seed_index: int) -> bool:
    """Only a first-seed grid candidate may be pruned: never the base, a repeat seed of a
    finished candidate, or a fidelity-check retraining."""
    return seed_index == 0 and not candidate.is_base and not candidate.is_confirmation


def training_seed(prepared: Prepared, key: str, seed_index: int) -> int:
    """The seed an item trains with: confirmation items get fresh seeds (see
    :func:`effscale.experiment.settings.seed_for`)."""
    return seed_for(prepared.settings, seed_index, prepared.candidates[key].seed_offset)


def claimed_item(prepared: Prepared, trial: optuna.Trial) -> str:
    return trial.suggest_categorical(ITEM_PARAM, prepared.choices or prepared.items)


def record_start(trial: optuna.Trial, prepared: Prepared, item: str) -> None:
    """The model's numbers and the training's seed, on the trial before it trains."""
    key, seed_index = split_item(item)
    for name, value in prepared.candidates[key].summary().items():
        trial.set_user_attr(name, value)
    trial.set_user_attr("candidate", key)
    trial.set_user_attr("seed", training_seed(prepared, key, seed_index))
    trial.set_user_attr("val_size", len(prepared.val))


WEIGHTS_DIR = "weights"


def weights_path(run_dir: Path, key: str) -> Path:
    """Where a run keeps the trained weights of model ``key``: ``RUN/weights/<key>.pt``
    (characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``)."""
    return Path(run_dir) / WEIGHTS_DIR / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', key)}.pt"


def save_weights(prepared: Prepared, item: str, result: TrainResult) -> None:
    """Seed 0's trained model as a checkpoint (atomically), when the run keeps weights."""
    key, seed_index = split_item(item)
    if not prepared.settings.keep_weights or seed_index != 0 or result.model is None:
        return
    candidate = prepared.candidates[key]
    save_checkpoint(weights_path(prepared.run_dir, key), candidate.config, result.model, {
        "model": key, "item": item, "seed": training_seed(prepared, key, seed_index),
        "val_accuracy": result.val_accuracy, "epochs": result.epochs_run,
        "dataset": prepared.settings.dataset})


def record_result(trial: optuna.Trial, result: TrainResult) -> None:
    """A finished training's numbers (the model itself is dropped)."""
    result.model = None
    if result.val_correct is not None:
        trial.set_user_attr("val_correct", pack_correct(result.val_correct.numpy()))
    for name in ("val_accuracy_per_epoch", "train_loss_per_epoch", "train_accuracy_per_epoch"):
        trial.set_user_attr(name, [round(v, 5) for v in getattr(result, name)])
    trial.set_user_attr("train_seconds", round(result.train_seconds, 2))
    trial.set_user_attr("val_seconds", round(result.val_seconds, 2))
    trial.set_user_attr("images_per_second", round(result.images_per_second, 1))
    trial.set_user_attr("precision", result.precision)
    trial.set_user_attr("precision_reason", result.precision_reason)
    trial.set_user_attr("data_on", result.data_on)
    if result.compiled:
        trial.set_user_attr("compile_seconds", round(result.compile_seconds, 2))


def record_failure(study: optuna.Study, trial: optuna.Trial, kind: str, message: str,
                   events: RunEvents, item: str, started: float) -> None:
    trial.set_user_attr("failure_kind", kind)
    trial.set_user_attr("failure", message[:500])
    trial.set_user_attr("train_seconds", round(time.perf_counter() - started, 2))
    tell(study, trial, state=optuna.trial.TrialState.FAIL)
    events.trial_end(item, f"{kind}: {message[:120]}", None, time.perf_counter() - started)


def record_exception(study: optuna.Study, trial: optuna.Trial, exc: Exception,
                     events: RunEvents, item: str, started: float) -> None:
    """A training that raised, recorded as a failure of its kind: ``diverged``, ``out of
    memory`` (the retries are spent) or ``error`` (anything else, with its class)."""
    if isinstance(exc, DivergedError):
        record_failure(study, trial, "diverged", str(exc), events, item, started)
    elif isinstance(exc, OutOfMemory):
        record_failure(study, trial, OutOfMemory.kind, str(exc), events, item, started)
    else:
        record_failure(study, trial, "error", f"{exc.__class__.__name__}: {exc}", events, item,
                       started)


def retry_recorder(trial: optuna.Trial, events: RunEvents, item: str
                   ) -> Callable[[Retry], None]:
    """What hears a training's out-of-memory shrinks: each is said in the progress output and
    the trial's ``batch_size_used``, ``lr_used``, ``eval_batch_size_used`` and ``note`` are
    updated (:func:`effscale.train.memory.describe`)."""
    retries: list[Retry] = []

    def heard(retry: Retry) -> None:
        retries.append(retry)
        events.message(f"{item}: {retry.note}")
        for name, value in describe(retries).items():
            trial.set_user_attr(name, value)

    return heard


def tell(study: optuna.Study, trial: optuna.Trial, value: float | None = None,
         state: optuna.trial.TrialState | None = None) -> bool:
    """``study.tell``; ``False`` when the trial was already failed as stale by another worker."""
    try:
        study.tell(trial, value, state=state)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    return True


def run_trial(prepared: Prepared, study: optuna.Study, trial: optuna.Trial,
              device: torch.device, events: RunEvents) -> None:
    """Train one claimed item and tell the study how it went."""
    item = claimed_item(prepared, trial)
    key, seed_index = split_item(item)
    candidate = prepared.candidates[key]
    settings = prepared.settings
    record_start(trial, prepared, item)
    events.trial_start(item, candidate, progress_counts(study))

    recipe = recipe_for(settings, candidate)

    def on_epoch(epoch: int, accuracy: float) -> None:
        trial.report(accuracy, epoch)
        events.epoch_end(item, epoch, recipe.epochs, accuracy)
        if prunable(candidate, seed_index) and trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch} at {accuracy:.3f}")

    started = time.perf_counter()
    on_retry = retry_recorder(trial, events, item)

    def attempt(tried: Recipe) -> TrainResult:
        return train_config(
            candidate.config, prepared.train.images, prepared.train.labels,
            prepared.val.images, prepared.val.labels, recipe=tried, device=device,
            seed=training_seed(prepared, key, seed_index),
            progress=with_test_hooks(events.step, item, tried.batch_size),
            on_epoch=on_epoch, on_oom=on_retry, eval_hook=eval_fault_hook(item),
        )

    try:
        result = retry_training(attempt, fault_recipe(item, recipe), device, on_retry)
    except KeyboardInterrupt:
        release_interrupted(study, trial, "interrupted by Ctrl-C")
        raise
    except optuna.TrialPruned as pruned:
        trial.set_user_attr("train_seconds", round(time.perf_counter() - started, 2))
        trial.set_user_attr("failure_kind", "pruned")
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        events.trial_end(item, str(pruned), None, time.perf_counter() - started)
        return
    except Exception as exc:
        record_exception(study, trial, exc, events, item, started)
        return
    save_weights(prepared, item, result)
    record_result(trial, result)
    if not tell(study, trial, result.val_accuracy):
        events.message(f"{item}: another worker took this training over (this one's heartbeat "
                       "had gone stale); its result is not recorded")
        return
    events.trial_end(item, "complete", result.val_accuracy, time.perf_counter() - started)
