"""The resumable work-queue engine that search and compare run on.

:func:`run_experiment` takes an :class:`~effscale.experiment.plan.Experiment` and:

1. checks what it will write (``--out``, the runs folder) and talk to (``--storage``) before
   any slow work;
2. prepares it (data, models, measured cost, work items);
3. finds its run directory (``--resume``, ``--out``, an unfinished run with the same identity,
   or a new one) and opens its study, refusing one that belongs to another run;
4. claims and trains items until none is left, in this process and ``workers - 1`` spawned
   ones, with a heartbeat; the first Ctrl-C releases the current items for a resume;
5. enqueues the experiment's follow-up items while it has any, and trains them too;
6. writes the outputs and marks the run complete.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.storages import BaseStorage

from effscale import atomic
from effscale.devices import resolve_device
from effscale.errors import EffscaleError
from effscale.experiment.events import RunEvents
from effscale.experiment.halving import work_synchronous
from effscale.experiment.heartbeat import Heartbeat
from effscale.experiment.plan import Experiment, Prepared
from effscale.experiment.pruning import synchronous_halving
from effscale.experiment.queue import claim_next, open_study, progress_counts, recover_dead_workers
from effscale.experiment.rundir import (
    RUNS,
    check_resume,
    check_writable_place,
    ensure_writable,
    resolve_run_dir,
    store_settings,
    write_settings,
)
from effscale.experiment.runner import run_trial
from effscale.experiment.storage import open_storage
from effscale.experiment.workers import (
    RunInterrupted,
    exit_worker,
    interrupt_once,
    set_threads,
    start_workers,
    stop_workers,
    stopped_early,
    use_device,
    worker_devices,
)
from effscale.train.levers import check_levers


@dataclass
class Outcome:
    """How a run ended: where it lives, whether every item settled, and its outputs."""

    run_dir: Path
    complete: bool
    resumed: bool
    counts: dict[str, int]
    prepared: Prepared
    result: Any = None


def preflight(experiment: Experiment, resume: str | None, events: RunEvents,
              dry_run: bool = False) -> BaseStorage | None:
    """Everything that can fail in a second, before the minutes of data and FLOPs: the run
    directory can be written (tried, then undone), ``--resume`` is a run, a ``--storage``
    server answers (not for a dry run, which opens no storage)."""
    settings = experiment.settings
    if settings.workers < 1:
        raise EffscaleError(f"--workers must be >= 1, got {settings.workers}")
    worker_devices(settings)  # --devices that cannot be had fail here, in a second
    check_levers(settings.recipe.compile, settings.recipe.precision,
                 resolve_device(settings.device))  # a compile without its compiler, too
    if resume:
        check_resume(Path(resume))
    elif settings.out:
        check_writable_place(Path(settings.out))
    elif settings.storage is None:
        check_writable_place(RUNS, "runs folder")
    if settings.storage is None or dry_run:
        return None
    return open_storage(settings.storage, Path(settings.out or "."), events.message)


def work(prepared: Prepared, study: optuna.Study, events: RunEvents,
         wait_for_others: bool, device: torch.device | None = None) -> None:
    """Claim and train items until none is left on ``device`` (default: ``--device``);
    optionally wait for other workers."""
    device = device or resolve_device(prepared.settings.device)
    use_device(device)
    if synchronous_halving(prepared.settings):
        work_synchronous(prepared, study, device, events)
        return
    with Heartbeat(study, watch_parent=not wait_for_others) as heartbeat:
        while True:
            recover_dead_workers(study)
            trial = claim_next(study)
            if trial is not None:
                heartbeat.start(trial)
                run_trial(prepared, study, trial, device, events)
                heartbeat.stop_beating()
                continue
            counts = progress_counts(study)
            if not wait_for_others or counts["running"] == 0:
                return
            time.sleep(2.0)


def run_experiment(experiment: Experiment, events: RunEvents, resume: str | None = None,
                   dry_run: bool = False) -> Outcome:
    """Run (or resume) ``experiment`` to completion and write its outputs. ``dry_run`` stops
    after preparing (the feasible set, the models), before anything is written or trained."""
    settings = experiment.settings
    set_threads(settings)
    storage = preflight(experiment, resume, events, dry_run)
    prepared = experiment.prepare(events)
    run_dir, resumed = resolve_run_dir(prepared.identity, out=settings.out, resume=resume,
                                       storage=settings.storage,
                                       default=experiment.default_run_dir())
    prepared.run_dir = run_dir
    experiment.check(prepared, dry_run, events)
    if dry_run:
        return Outcome(run_dir, False, resumed, {"items": len(prepared.items)}, prepared)
    doc = experiment.settings_document(prepared)
    if storage is None:
        ensure_writable(run_dir)
        storage = open_storage(None, run_dir, events.message)
    # A shared storage was opened (and here its study is checked) before the run dir is
    # created, so an unreachable server or a study of another run leaves nothing behind.
    study = open_study(storage, settings.study, run_dir, prepared.identity, prepared.items,
                       experiment.pruner())
    ensure_writable(run_dir)
    atomic.remove_stray_temps(run_dir)
    atomic.remove_stray_temps(run_dir / "configs")
    store_settings(study, doc)
    write_settings(run_dir, doc, "running")
    if resumed:
        counts = progress_counts(study)
        events.message(f"resuming {run_dir}: {counts['settled']} of {counts['items']} "
                       "trainings already done")
    _work_with_workers(experiment, prepared, study, events)
    counts = progress_counts(study)
    while counts["settled"] == counts["items"] and experiment.follow_ups(study, events):
        _work_with_workers(experiment, prepared, study, events)
        counts = progress_counts(study)
    complete = counts["settled"] == counts["items"]
    result = experiment.write_outputs(study, prepared, doc, complete)
    write_settings(run_dir, doc, "complete" if complete else "running")
    return Outcome(run_dir, complete, resumed, counts, prepared, result)


def _work_with_workers(experiment: Experiment, prepared: Prepared, study: optuna.Study,
                       events: RunEvents) -> None:
    devices = worker_devices(experiment.settings)  # worker i on devices[i]; this one is 0
    extra = start_workers(experiment.settings.workers - 1, _worker_process,
                          (experiment, str(prepared.run_dir)),
                          [(str(device),) for device in devices[1:]])
    try:
        work(prepared, study, events, wait_for_others=True, device=devices[0])
    except KeyboardInterrupt:
        stop_workers(extra)
        raise RunInterrupted(prepared.run_dir, progress_counts(study)) from None
    finally:
        for process in extra:
            process.join()
    stopped = stopped_early(extra)
    if stopped:
        # The run's answer is whole (this process trained what they left), but it took
        # longer than the --workers asked for: say so after the workers' own error lines.
        events.message(f"warning: {len(stopped)} of {len(extra)} extra worker(s) stopped "
                       f"early (exit code {', '.join(map(str, stopped))}); this process "
                       "trained their share")


def _worker_process(experiment: Experiment, run_dir: str, device: str) -> None:
    """Entry point of an extra ``--workers`` process, training on ``device``.

    It runs in its own process group, so a Ctrl-C at the terminal reaches the main process
    alone, which passes it on once; a worker whose run is gone stops by itself (Heartbeat).
    """
    os.setpgrp()
    settings = experiment.settings
    set_threads(settings)
    events = RunEvents()
    try:
        with interrupt_once():
            prepared = experiment.prepare(events)
            prepared.run_dir = Path(run_dir)
            storage = open_storage(settings.storage, Path(run_dir))
            study = open_study(storage, settings.study, Path(run_dir), prepared.identity,
                               prepared.items, experiment.pruner())
            work(prepared, study, events, wait_for_others=False, device=torch.device(device))
    except KeyboardInterrupt:
        pass
    except EffscaleError as exc:
        exit_worker(exc)
