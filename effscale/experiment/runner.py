"""The trial runner: train one claimed work item and tell the study how it went.

Failures are recorded on the trial, never raised (except an interrupt, which releases the
item for a resume and propagates). An out-of-memory error retries the item at half the batch
size, down to :data:`effscale.train.memory.SMALLEST_BATCH`. What a trial records (its model's
numbers at the start, its training's numbers at the end) is written here once, for the plain
loop and for rung-synchronous halving alike.
"""

from __future__ import annotations

import time
from dataclasses import replace

import optuna
import torch

from effscale.experiment.events import RunEvents
from effscale.experiment.faults import fault_recipe, with_test_hooks
from effscale.experiment.plan import Prepared, Trainable
from effscale.experiment.queue import ITEM_PARAM, progress_counts, release_interrupted, split_item
from effscale.experiment.settings import RunSettings, seed_for
from effscale.experiment.stats import pack_correct
from effscale.train.memory import SMALLEST_BATCH, free_memory, halve_batch, is_oom
from effscale.train.trainer import DivergedError, Recipe, TrainResult, train_config


def recipe_for(settings: RunSettings, candidate: Trainable) -> Recipe:
    """The run's recipe, with the fidelity check's longer schedule for its items."""
    if candidate.epochs_factor == 1:
        return settings.recipe
    return replace(settings.recipe, epochs=settings.recipe.epochs * candidate.epochs_factor)


def prunable(candidate: Trainable, seed_index: int) -> bool:
    """Only a first-seed grid candidate may be pruned: never the base, a repeat seed of a
    finished candidate, or a fidelity-check retraining."""
    return seed_index == 0 and not candidate.is_base and not candidate.is_transfer


def claimed_item(prepared: Prepared, trial: optuna.Trial) -> str:
    return trial.suggest_categorical(ITEM_PARAM, prepared.choices or prepared.items)


def record_start(trial: optuna.Trial, prepared: Prepared, item: str) -> None:
    """The model's numbers and the training's seed, on the trial before it trains."""
    key, seed_index = split_item(item)
    for name, value in prepared.candidates[key].summary().items():
        trial.set_user_attr(name, value)
    trial.set_user_attr("candidate", key)
    trial.set_user_attr("seed", seed_for(prepared.settings, seed_index))
    trial.set_user_attr("val_size", len(prepared.val))


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


def record_failure(study: optuna.Study, trial: optuna.Trial, kind: str, message: str,
                   events: RunEvents, item: str, started: float) -> None:
    trial.set_user_attr("failure_kind", kind)
    trial.set_user_attr("failure", message[:500])
    trial.set_user_attr("train_seconds", round(time.perf_counter() - started, 2))
    tell(study, trial, state=optuna.trial.TrialState.FAIL)
    events.trial_end(item, f"{kind}: {message[:120]}", None, time.perf_counter() - started)


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

    recipe = fault_recipe(item, recipe)
    started = time.perf_counter()
    while True:
        try:
            result = train_config(
                candidate.config, prepared.train.images, prepared.train.labels,
                prepared.val.images, prepared.val.labels, recipe=recipe, device=device,
                seed=seed_for(settings, seed_index),
                progress=with_test_hooks(events.step, item, recipe.batch_size),
                on_epoch=on_epoch,
            )
            break
        except KeyboardInterrupt:
            release_interrupted(study, trial, "interrupted by Ctrl-C")
            raise
        except optuna.TrialPruned as pruned:
            trial.set_user_attr("train_seconds", round(time.perf_counter() - started, 2))
            trial.set_user_attr("failure_kind", "pruned")
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            events.trial_end(item, str(pruned), None, time.perf_counter() - started)
            return
        except DivergedError as exc:
            record_failure(study, trial, "diverged", str(exc), events, item, started)
            return
        except Exception as exc:
            if not is_oom(exc):
                record_failure(study, trial, "error", f"{exc.__class__.__name__}: {exc}",
                               events, item, started)
                return
            if recipe.batch_size <= SMALLEST_BATCH:
                record_failure(study, trial, "out of memory",
                               f"even at batch size {SMALLEST_BATCH}", events, item, started)
                return
            note = f"out of memory at batch size {recipe.batch_size}; retried at " \
                   f"{recipe.batch_size // 2}"
            events.message(f"{item}: {note}")
            recipe = halve_batch(recipe)
            trial.set_user_attr("batch_size_used", recipe.batch_size)
            trial.set_user_attr("note", note)
            free_memory(device)
    record_result(trial, result)
    if not tell(study, trial, result.val_accuracy):
        events.message(f"{item}: another worker took this training over (this one's heartbeat "
                       "had gone stale); its result is not recorded")
        return
    events.trial_end(item, "complete", result.val_accuracy, time.perf_counter() - started)
