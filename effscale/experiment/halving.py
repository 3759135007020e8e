"""Rung-synchronous successive halving over epochs (Jamieson & Talwalkar 2016).

Every candidate trains to the first rung (1 epoch); only the best ``1/eta`` of them continue
to the next rung (``eta`` epochs), and so on up to the budget's epochs. The base is trained
in full first and never pruned: it is the reference the verdict compares against. The extra
seeds of ``--repeat-top`` (candidates that already finished in full) are not pruned either.

Note:
    optuna's ``SuccessiveHalvingPruner`` is asynchronous: a trial is compared with the trials
    that reached its rung *so far*, so the first trials of a search are never pruned and the
    outcome depends on the order. Here a rung is decided only once every candidate has reached
    it, so the order does not matter. Candidates wait between rungs as paused
    :class:`~effscale.train.trainer.ProxyTrainer` objects in host memory (about 16 bytes per
    parameter: on a GPU their model and optimizer state are offloaded to the CPU between
    rungs); the schedule of every run still spans the full budget, so a promoted candidate
    ends exactly where an unpruned training would have. With several workers or a shared
    ``--storage`` the search falls back to optuna's asynchronous pruner.

Failures are the candidate's, never the search's: an out-of-memory error follows
:mod:`effscale.train.memory`'s rule (in training, the candidate's training restarts from
scratch at half the batch and half the learning rate and is trained up to the current rung
again; in evaluation, only the evaluation is retried at half its batch), and any other
exception is recorded as that candidate's failure.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import optuna
import torch

from effscale.experiment.events import RunEvents
from effscale.experiment.faults import eval_fault_hook, fault_recipe, with_test_hooks
from effscale.experiment.plan import Prepared
from effscale.experiment.queue import (
    claim_next,
    progress_counts,
    release_interrupted,
    split_item,
)
from effscale.experiment.runner import (
    claimed_item,
    record_exception,
    record_result,
    record_start,
    retry_recorder,
    run_trial,
    save_weights,
    tell,
)
from effscale.experiment.settings import seed_for
from effscale.train.memory import Retry, retry_training
from effscale.train.placement import DeviceData
from effscale.train.trainer import ProxyTrainer, Recipe, resize_images

ETA = 3


def rung_epochs(epochs: int, eta: int = ETA, min_epochs: int = 1) -> list[int]:
    """Epochs at which candidates are compared: ``min_epochs * eta**k`` below ``epochs``,
    then ``epochs`` itself (the last rung is the full training)."""
    if epochs < 1 or eta < 2 or min_epochs < 1:
        raise ValueError(f"need epochs >= 1, eta >= 2, min_epochs >= 1; got {epochs}, {eta}, "
                         f"{min_epochs}")
    rungs, rung = [], min_epochs
    while rung < epochs:
        rungs.append(rung)
        rung *= eta
    return [*rungs, epochs]


def promote(scores: dict[str, float], eta: int = ETA) -> list[str]:
    """The best ``ceil(n / eta)`` keys by score (at least one), best first; ties keep the
    earlier key, so the choice never depends on dict order of equal scores alone."""
    keep = max(1, math.ceil(len(scores) / eta))
    ranked = sorted(scores, key=lambda k: (-scores[k], k))
    return ranked[:keep]


def planned_epochs(candidates: int, epochs: int, eta: int = ETA) -> int:
    """Training epochs halving spends on ``candidates`` (a full grid spends candidates*epochs)."""
    total, alive, done = 0, candidates, 0
    for rung in rung_epochs(epochs, eta):
        total += alive * (rung - done)
        done = rung
        alive = max(1, math.ceil(alive / eta))
    return total


class _Pending:
    """A claimed candidate trial and its paused trainer."""

    def __init__(self, trial: optuna.Trial, item: str) -> None:
        self.trial, self.item = trial, item
        self.trainer: ProxyTrainer | None = None
        self.recipe: Recipe | None = None  # its recipe, once it has one (smaller after an OOM)
        self.on_retry: Callable[[Retry], None] | None = None
        self.started = time.perf_counter()


def work_synchronous(prepared: Prepared, study: optuna.Study, device: torch.device,
                     events: RunEvents) -> None:
    """Train the base items (and any repeat seeds) in full with ``run_trial``, then every
    claimed seed-0 candidate rung by rung."""
    pending: list[_Pending] = []
    while (trial := claim_next(study)) is not None:
        item = claimed_item(prepared, trial)
        key, seed_index = split_item(item)
        if prepared.candidates[key].is_base or seed_index > 0 \
                or prepared.candidates[key].is_confirmation:
            # The base, and --repeat-top's extra seeds of finished winners, train in full.
            run_trial(prepared, study, trial, device, events)
        else:
            pending.append(_Pending(trial, item))
    try:
        _run_rungs(prepared, study, device, events, pending)
    except KeyboardInterrupt:
        for entry in pending:
            if entry.trial is not None:
                release_interrupted(study, entry.trial, "interrupted by Ctrl-C")
        raise


def _run_rungs(prepared: Prepared, study: optuna.Study, device: torch.device,
               events: RunEvents, pending: list[_Pending]) -> None:
    settings = prepared.settings
    resized: dict[int, tuple[DeviceData, DeviceData]] = {}
    for rung in rung_epochs(settings.recipe.epochs):
        for entry in list(pending):
            if not _advance(prepared, study, device, events, entry, rung, resized):
                pending.remove(entry)
        if rung == settings.recipe.epochs or not pending:
            break
        scores = {e.item: e.trainer.result.val_accuracy for e in pending}  # type: ignore[union-attr]
        keep = set(promote(scores))
        for entry in [e for e in pending if e.item not in keep]:
            pending.remove(entry)
            accuracy = scores[entry.item]
            entry.trial.set_user_attr("failure_kind", "pruned")
            entry.trial.set_user_attr("train_seconds", round(entry.trainer.result.train_seconds, 2))
            entry.trial.set_user_attr("val_seconds", round(entry.trainer.result.val_seconds, 2))
            study.tell(entry.trial, state=optuna.trial.TrialState.PRUNED)
            entry.trainer = None
            events.trial_end(entry.item, f"pruned after epoch {rung} at {accuracy:.3f} (not in "
                             f"the best {len(keep)} of {len(scores)})", None,
                             time.perf_counter() - entry.started)
    for entry in pending:
        _complete(prepared, study, events, entry)


def _advance(prepared: Prepared, study: optuna.Study, device: torch.device,
             events: RunEvents, entry: _Pending, rung: int,
             resized: dict[int, tuple[DeviceData, DeviceData]]) -> bool:
    """Train ``entry`` up to epoch ``rung`` and, unless it is done, pause it off the GPU;
    False (and the trial told) when it failed. Out of memory: see the module's text."""
    key, seed_index = split_item(entry.item)
    candidate, settings = prepared.candidates[key], prepared.settings
    events.trial_start(entry.item, candidate, progress_counts(study))
    if entry.trainer is None and entry.recipe is None:
        record_start(entry.trial, prepared, entry.item)
        entry.recipe = fault_recipe(entry.item, settings.recipe)
        entry.on_retry = retry_recorder(entry.trial, events, entry.item)
    heard = entry.on_retry

    def attempt(recipe: Recipe) -> ProxyTrainer:
        if entry.trainer is None:  # the first rung, or after an OOM: from scratch
            entry.recipe = recipe
            train, val = _rung_data(prepared, candidate.resolution, device, resized)
            entry.trainer = ProxyTrainer(
                candidate.config, train.images, train.labels, val.images, val.labels,
                recipe=recipe, device=device, seed=seed_for(settings, seed_index),
                on_oom=heard, eval_hook=eval_fault_hook(entry.item))
        trainer = entry.trainer
        trainer.reload()
        progress = with_test_hooks(events.step, entry.item, recipe.batch_size)
        while trainer.result.epochs_run < rung:
            accuracy = trainer.run_epoch(progress)
            entry.trial.report(accuracy, trainer.result.epochs_run)
            events.epoch_end(entry.item, trainer.result.epochs_run, settings.recipe.epochs,
                             accuracy)
        return trainer

    def on_retry(retry: Retry) -> None:
        entry.trainer = None  # the failed attempt's model goes before memory is freed
        if heard is not None:
            heard(retry)

    try:
        trainer = retry_training(attempt, entry.recipe, device, on_retry)
        if trainer.result.epochs_run < settings.recipe.epochs:
            trainer.offload()  # paused until the next rung
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        entry.trainer = None
        record_exception(study, entry.trial, exc, events, entry.item, entry.started)
        return False
    return True


def _rung_data(prepared: Prepared, resolution: int, device: torch.device,
               resized: dict[int, tuple[DeviceData, DeviceData]]) -> tuple[DeviceData, DeviceData]:
    """The split at ``resolution``, resized once per size (not per candidate) and placed on
    the device when it fits, one copy shared by every candidate of that size."""
    if resolution not in resized:
        resized[resolution] = (
            DeviceData(resize_images(prepared.train.images, resolution), prepared.train.labels,
                       device),
            DeviceData(resize_images(prepared.val.images, resolution), prepared.val.labels,
                       device))
    return resized[resolution]


def _complete(prepared: Prepared, study: optuna.Study, events: RunEvents,
              entry: _Pending) -> None:
    result = entry.trainer.finish()  # type: ignore[union-attr]
    save_weights(prepared, entry.item, result)
    record_result(entry.trial, result)
    tell(study, entry.trial, result.val_accuracy)
    entry.trainer = None
    events.trial_end(entry.item, "complete", result.val_accuracy,
                     time.perf_counter() - entry.started)
