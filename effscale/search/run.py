"""The phi=1 compound-scaling search: grid -> proxy candidates -> short trainings -> winner.

Progress goes through :class:`SearchEvents`; this module never prints.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml

from effscale import __version__, atomic
from effscale.datasets.images import ImageData, holdout_split, load_dataset
from effscale.errors import EffscaleError
from effscale.experiment.budgets import Budget
from effscale.experiment.stats import pack_correct
from effscale.experiment.study import (
    ITEM_PARAM,
    Heartbeat,
    claim_next,
    item_key,
    open_storage,
    open_study,
    progress_counts,
    recover_dead_workers,
    release_interrupted,
    split_item,
)
from effscale.model.bases import get_base
from effscale.model.config import ModelConfig, ScalingRules
from effscale.search.candidates import BASE_KEY, Candidate, Skipped, build_candidates
from effscale.search.grid import GridSpec, gamma_axis
from effscale.train.proxy import native_size, proxy_stem_stride, upsampling_note
from effscale.train.trainer import DivergedError, Recipe, proxy_config, resolve_device, train_config

PRUNERS = ("none", "median", "halving")
SETTINGS_FILE = "settings.yaml"


@dataclass(frozen=True)
class SearchSettings:
    """Everything a search needs; ``identity()`` is the part that must match on resume."""

    base: str
    dataset: str
    budget: Budget
    grid: GridSpec
    recipe: Recipe
    rules: ScalingRules = field(default_factory=ScalingRules)
    data_dir: str | None = None
    seed: int = 0
    device: str = "auto"
    flops_tolerance: float | None = None
    counter: str = "fvcore"
    out: str | None = None
    storage: str | None = None
    study: str = "effscale"
    workers: int = 1
    threads: int | None = None
    repeat_top: int = 0
    allow_upsampling: bool = False

    def identity(self, data_fingerprint: str) -> dict[str, Any]:
        budget = asdict(self.budget)
        budget.pop("description")
        budget.pop("expected")
        extra = {"repeat_top": self.repeat_top} if self.repeat_top else {}
        if self.allow_upsampling:
            extra["allow_upsampling"] = True
        return {
            **extra,
            "base": self.base, "dataset": self.dataset, "data_fingerprint": data_fingerprint,
            "budget": budget, "grid": self.grid.to_dict(), "recipe": self.recipe.to_dict(),
            "rules": asdict(self.rules), "seed": self.seed,
            "flops_tolerance": self.flops_tolerance, "counter": self.counter,
        }


class SearchEvents:
    """Callbacks the CLI overrides to render progress; the defaults do nothing."""

    def message(self, text: str) -> None: ...
    def measuring(self, done: int, total: int) -> None: ...
    def feasible(self, candidates: list[Candidate], dropped: list[Skipped],
                 grid_points: int) -> None: ...
    def trial_start(self, item: str, candidate: Candidate, counts: dict[str, int]) -> None: ...
    def step(self, epoch: int, epochs: int, step: int, steps: int) -> None: ...
    def epoch_end(self, item: str, epoch: int, epochs: int, accuracy: float) -> None: ...
    def trial_end(self, item: str, outcome: str, accuracy: float | None,
                  seconds: float) -> None: ...


@dataclass
class Prepared:
    """Data, candidates and identity: what every worker computes the same way."""

    settings: SearchSettings
    train: ImageData
    val: ImageData
    candidates: dict[str, Candidate]
    dropped: list[Skipped]
    grid_points: int
    items: list[str]
    identity: dict[str, Any]
    run_dir: Path
    choices: list[str] = field(default_factory=list)  # every item that may be enqueued


def fingerprint(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def load_data(settings: SearchSettings, events: SearchEvents) -> tuple[ImageData, ImageData]:
    """The training subset and the held-out validation split (never the test split)."""
    budget = settings.budget
    data_dir = Path(settings.data_dir) if settings.data_dir else None
    # Loaded at the native size when known, else at the largest proxy size: every candidate
    # then sees its input downsampled, never upsampled.
    size = native_size(settings.dataset) or max(px for _, px in gamma_axis(settings.grid))
    data = load_dataset(settings.dataset, "train", data_dir, image_size=size,
                        seed=settings.seed, progress=events.message)
    train, val = holdout_split(data, min(budget.val_size, len(data) // 5) or 1, settings.seed)
    if budget.train_size and budget.train_size < len(train):
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(settings.seed))
        train = train.subset(order[: budget.train_size], f":{budget.train_size}")
    if len(train) < budget.batch_size:
        raise EffscaleError(f"{settings.dataset}: {len(train)} training images is fewer than "
                            f"one batch ({budget.batch_size}); lower --batch-size")
    return train, val


def resolve_proxy(settings: SearchSettings, events: SearchEvents) -> SearchSettings:
    """Settings with the proxy convention applied (see :mod:`effscale.train.proxy`): the stem stride
    that keeps the base's final maps at least 2x2 at the proxy base size, and a gamma axis that
    stops at the dataset's native size unless ``allow_upsampling``."""
    grid, base_px = settings.grid, settings.grid.base_resolution
    native = native_size(settings.dataset)
    if native is not None and not settings.allow_upsampling:
        if base_px > native:
            raise EffscaleError(
                f"--resolution {base_px} is above {settings.dataset}'s native {native} px: the "
                "proxy would train on upsampled pixels; lower it, or pass --allow-upsampling")
        largest = max(px for _, px in gamma_axis(grid))
        if largest > native:
            grid = replace(grid, gamma_max=native / base_px)
            events.message(f"γ axis capped at {native / base_px:.3f} ({native} px, "
                           f"{settings.dataset}'s native size; it asked for {largest} px): "
                           "pass --allow-upsampling to train on upsampled pixels")
    elif note := upsampling_note(settings.dataset, max(px for _, px in gamma_axis(grid))):
        events.message(f"warning: {note}")
    recipe = settings.recipe
    if recipe.stem_stride is None:
        base = get_base(settings.base)
        recipe = replace(recipe, stem_stride=proxy_stem_stride(base, base_px))
    return replace(settings, grid=grid, recipe=recipe)


def prepare(settings: SearchSettings, run_dir: Path, events: SearchEvents) -> Prepared:
    """Load data; enumerate, build and measure candidates at full size; keep those at the
    target cost; list the work items."""
    if settings.workers < 1:
        raise EffscaleError(f"--workers must be >= 1, got {settings.workers}")
    settings = resolve_proxy(settings, events)
    train, val = load_data(settings, events)
    num_classes = len(train.classes)
    full_base = get_base(settings.base, num_classes)

    def to_proxy(full: ModelConfig, size: int) -> ModelConfig:
        return proxy_config(full.replace(resolution=size), settings.recipe, num_classes)

    kept, dropped = build_candidates(full_base, to_proxy, settings.grid.base_resolution,
                                     settings.grid, settings.rules, settings.counter,
                                     settings.flops_tolerance, events.measuring)
    items = [item_key(BASE_KEY, s) for s in range(settings.budget.repeats)]
    items += [item_key(c.key, 0) for c in kept if not c.is_base]
    identity = settings.identity(f"{train.fingerprint}/{val.fingerprint}")
    choices = list(items)
    if settings.repeat_top:
        from effscale.search.repeats import repeat_choices

        choices += repeat_choices([c.key for c in kept if not c.is_base], settings.budget.repeats)
    candidates = {c.key: c for c in kept}
    if settings.budget.transfer_top:
        for c in kept:
            check = c.for_transfer(settings.budget.transfer_factor)
            candidates[check.key] = check
            choices.append(item_key(check.key, 0))
    return Prepared(settings, train, val, candidates, dropped,
                    len(kept) - 1 + len(dropped), items, identity, run_dir, choices)


def settings_document(prepared: Prepared) -> dict[str, Any]:
    """settings.yaml and the study's ``settings`` attribute: everything the report needs."""
    s = prepared.settings
    tolerance = s.flops_tolerance
    window = None if tolerance is None else [s.grid.target * (1 - tolerance),
                                             s.grid.target * (1 + tolerance)]
    return {
        "base": s.base, "dataset": s.dataset, "budget": s.budget.name,
        "num_classes": len(prepared.train.classes), "classes": list(prepared.train.classes),
        "train_images": len(prepared.train), "val_images": len(prepared.val),
        "fingerprint": fingerprint(prepared.identity), "identity": prepared.identity,
        "rules": asdict(s.rules), "flops_window": window, "pruner": s.budget.pruner,
        "grid": s.grid.to_dict(), "proxy_stem_stride": s.recipe.stem_stride,
        "cost": "conv+linear FLOPs (multiply-adds) of the full-size model: the base at its "
                f"own resolution, scaled; counted by {s.counter}",
        "feasible_grid_points": prepared.grid_points,
        "candidates": sum(not c.is_base and not c.is_transfer
                          for c in prepared.candidates.values()),
        "items": len(prepared.items),
        "versions": {"effscale": __version__, "torch": str(torch.__version__),
                     "optuna": optuna.__version__, "python": platform.python_version()},
    }


def default_run_dir(settings: SearchSettings) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = Path(settings.dataset).name if settings.dataset not in ("cifar10", "synthetic") \
        else settings.dataset
    return Path("runs") / f"{stamp}-{settings.base}-{name}"


def find_resumable(runs: Path, run_fingerprint: str) -> Path | None:
    """The newest unfinished run under ``runs`` whose settings have this fingerprint."""
    if not runs.is_dir():
        return None
    matches = []
    for settings_file in runs.glob(f"*/{SETTINGS_FILE}"):
        try:
            doc = yaml.safe_load(settings_file.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(doc, dict) and doc.get("fingerprint") == run_fingerprint \
                and doc.get("status") != "complete":
            matches.append(settings_file.parent)
    return max(matches, key=lambda p: p.stat().st_mtime) if matches else None


def check_run_dir(run_dir: Path, run_fingerprint: str, identity: dict[str, Any]) -> None:
    """Refuse a run dir that belongs to a different search."""
    settings_file = run_dir / SETTINGS_FILE
    if run_dir.exists() and not run_dir.is_dir():
        raise EffscaleError(f"{run_dir}: exists and is not a directory")
    if not settings_file.is_file():
        if run_dir.is_dir() and any(p for p in run_dir.iterdir() if not p.name.startswith(".")):
            raise EffscaleError(f"{run_dir}: not empty and not an effscale run; "
                                "choose another --out")
        return
    try:
        doc = yaml.safe_load(settings_file.read_text()) or {}
    except yaml.YAMLError:
        raise EffscaleError(f"{settings_file}: damaged settings file") from None
    if doc.get("fingerprint") != run_fingerprint:
        from effscale.experiment.study import describe_differences

        raise EffscaleError(
            f"{run_dir} belongs to a different search "
            f"({describe_differences(doc.get('identity') or {}, identity)}); "
            "choose another --out, or repeat the original settings to resume")


def _write_settings(run_dir: Path, doc: dict[str, Any], status: str) -> None:
    atomic.write_text(run_dir / SETTINGS_FILE,
                      yaml.safe_dump({**doc, "status": status}, sort_keys=False))


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "halving":
        # Rungs at epoch 1, 3, 9 ...: the best third of candidates go on at each rung.
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def synchronous_halving(settings: SearchSettings) -> bool:
    """Halving decides each rung over all candidates (effscale.experiment.halving) when one process owns
    the study; with several workers or a shared storage, optuna's asynchronous pruner does."""
    return settings.budget.pruner == "halving" and settings.workers == 1 \
        and settings.storage is None


def seed_for(settings: SearchSettings, seed_index: int) -> int:
    return settings.seed + 1000 * seed_index


def recipe_for(settings: SearchSettings, candidate: Candidate) -> Recipe:
    """The search's recipe, with the fidelity check's longer schedule for its items."""
    if candidate.epochs_factor == 1:
        return settings.recipe
    return replace(settings.recipe, epochs=settings.recipe.epochs * candidate.epochs_factor)


def prunable(candidate: Candidate, seed_index: int) -> bool:
    """Only a first-seed grid candidate may be pruned: never the base, a repeat seed of a
    finished candidate, or a fidelity-check retraining."""
    return seed_index == 0 and not candidate.is_base and not candidate.is_transfer


def run_trial(prepared: Prepared, study: optuna.Study, trial: optuna.Trial,
              device: torch.device, events: SearchEvents) -> None:
    """Train one claimed item and tell the study how it went; failures are recorded, not raised
    (except an interrupt, which releases the item for a resume and propagates)."""
    item = trial.suggest_categorical(ITEM_PARAM, prepared.choices or prepared.items)
    key, seed_index = split_item(item)
    candidate = prepared.candidates[key]
    settings = prepared.settings
    for name, value in candidate.summary().items():
        trial.set_user_attr(name, value)
    trial.set_user_attr("candidate", key)
    trial.set_user_attr("seed", seed_for(settings, seed_index))
    trial.set_user_attr("val_size", len(prepared.val))
    events.trial_start(item, candidate, progress_counts(study))

    recipe = recipe_for(settings, candidate)

    def on_epoch(epoch: int, accuracy: float) -> None:
        trial.report(accuracy, epoch)
        events.epoch_end(item, epoch, recipe.epochs, accuracy)
        if prunable(candidate, seed_index) and trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch} at {accuracy:.3f}")

    recipe = _test_fault_recipe(item, recipe)
    started = time.perf_counter()
    while True:
        try:
            result = train_config(
                candidate.config, prepared.train.images, prepared.train.labels,
                prepared.val.images, prepared.val.labels, recipe=recipe,
                resolution=candidate.resolution, num_classes=len(prepared.train.classes),
                device=device, seed=seed_for(settings, seed_index),
                progress=_with_test_hooks(events.step, item, recipe.batch_size),
                on_epoch=on_epoch,
            )
            break
        except KeyboardInterrupt:
            release_interrupted(study, trial, "interrupted by Ctrl-C")
            raise
        except optuna.TrialPruned as pruned:
            _record_partial(trial, time.perf_counter() - started)
            trial.set_user_attr("failure_kind", "pruned")
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            events.trial_end(item, str(pruned), None, time.perf_counter() - started)
            return
        except DivergedError as exc:
            _fail(study, trial, "diverged", str(exc), events, item, started)
            return
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not _is_oom(exc):
                _fail(study, trial, "error", f"{exc.__class__.__name__}: {exc}", events, item,
                      started)
                return
            if recipe.batch_size <= 8:
                _fail(study, trial, "out of memory", "even at batch size 8", events, item,
                      started)
                return
            note = f"out of memory at batch size {recipe.batch_size}; retried at " \
                   f"{recipe.batch_size // 2}"
            events.message(f"{item}: {note}")
            recipe = _halve_batch(recipe)
            trial.set_user_attr("batch_size_used", recipe.batch_size)
            trial.set_user_attr("note", note)
            _free_memory(device)
        except Exception as exc:
            _fail(study, trial, "error", f"{exc.__class__.__name__}: {exc}", events, item, started)
            return
    result.extra.pop("model")
    trial.set_user_attr("val_correct", pack_correct(result.extra["val_correct"].numpy()))
    trial.set_user_attr("val_accuracy_per_epoch", [round(a, 5) for a in
                                                   result.val_accuracy_per_epoch])
    trial.set_user_attr("train_loss_per_epoch", [round(x, 5) for x in
                                                 result.train_loss_per_epoch])
    trial.set_user_attr("train_accuracy_per_epoch", [round(x, 5) for x in
                                                     result.train_accuracy_per_epoch])
    trial.set_user_attr("train_seconds", round(result.train_seconds, 2))
    trial.set_user_attr("val_seconds", round(result.val_seconds, 2))
    trial.set_user_attr("images_per_second", round(result.images_per_second, 1))
    if not _tell(study, trial, result.val_accuracy):
        events.message(f"{item}: another worker took this training over (this one's heartbeat "
                       "had gone stale); its result is not recorded")
        return
    events.trial_end(item, "complete", result.val_accuracy, time.perf_counter() - started)


def _record_partial(trial: optuna.Trial, seconds: float) -> None:
    trial.set_user_attr("train_seconds", round(seconds, 2))


def _fail(study: optuna.Study, trial: optuna.Trial, kind: str, message: str,
          events: SearchEvents, item: str, started: float) -> None:
    trial.set_user_attr("failure_kind", kind)
    trial.set_user_attr("failure", message[:500])
    _record_partial(trial, time.perf_counter() - started)
    _tell(study, trial, state=optuna.trial.TrialState.FAIL)
    events.trial_end(item, f"{kind}: {message[:120]}", None, time.perf_counter() - started)


def _tell(study: optuna.Study, trial: optuna.Trial, value: float | None = None,
          state: optuna.trial.TrialState | None = None) -> bool:
    """``study.tell``; ``False`` when the trial was already failed as stale by another worker."""
    try:
        study.tell(trial, value, state=state)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    return True


def _test_faults() -> dict[str, str]:
    """``EFFSCALE_TEST_FAULT="base@0=nan,a2.00_b1.00_g1.000@0=oom"``: make chosen items fail
    for real (``nan``: a learning rate that diverges; ``oom``: the allocator error above batch
    size 32; ``error``: any other exception). For tests of the failure paths only."""
    spec = os.environ.get("EFFSCALE_TEST_FAULT", "")
    return dict(part.split("=", 1) for part in spec.split(",") if "=" in part)


def _test_fault_recipe(item: str, recipe: Recipe) -> Recipe:
    if _test_faults().get(item) != "nan":
        return recipe
    return replace(recipe, optimizer="sgd", lr=1e12)


def _with_test_hooks(step: Any, item: str, batch_size: int) -> Any:
    """The progress callback, plus the test faults and ``EFFSCALE_TEST_STEP_DELAY`` (seconds
    per step: makes a training slow enough for a test to kill it mid-way)."""
    fault = _test_faults().get(item)
    delay = float(os.environ.get("EFFSCALE_TEST_STEP_DELAY", "0") or 0)
    if fault not in ("oom", "error") and not delay:
        return step

    def hooked(epoch: int, epochs: int, index: int, steps: int) -> None:
        if fault == "oom" and batch_size > 32:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if fault == "error":
            raise ValueError("injected failure")
        time.sleep(delay)
        step(epoch, epochs, index, steps)

    return hooked


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _halve_batch(recipe: Recipe) -> Recipe:
    return replace(recipe, batch_size=max(8, recipe.batch_size // 2))


def _free_memory(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def set_threads(settings: SearchSettings) -> None:
    """Split the machine's cores between the workers on it."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = settings.threads or max(1, (cores or 1) // settings.workers)
    torch.set_num_threads(threads)


def work(prepared: Prepared, study: optuna.Study, events: SearchEvents,
         wait_for_others: bool) -> None:
    """Claim and train items until none is left; optionally wait for other workers."""
    device = resolve_device(prepared.settings.device)
    if synchronous_halving(prepared.settings):
        from effscale.experiment.halving import work_synchronous

        work_synchronous(prepared, study, device, events, run_trial)
        return
    with Heartbeat(study, watch_parent=not wait_for_others) as heartbeat:
        while True:
            recover_dead_workers(study)
            trial = claim_next(study)
            if trial is not None:
                heartbeat.start(trial._trial_id)
                run_trial(prepared, study, trial, device, events)
                heartbeat.trial_id = None
                continue
            counts = progress_counts(study)
            if not wait_for_others or counts["running"] == 0:
                return
            time.sleep(2.0)


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C during the trainings: what is saved and where, for the message and a resume."""

    def __init__(self, run_dir: Path, counts: dict[str, int]) -> None:
        super().__init__(str(run_dir))
        self.run_dir, self.counts = run_dir, counts


@contextlib.contextmanager
def interrupt_once() -> Iterator[None]:
    """The first Ctrl-C raises KeyboardInterrupt, so the current training is released and
    the run stops cleanly; the handler then steps aside, so a second Ctrl-C stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def first(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is first:
            signal.signal(signal.SIGINT, previous)


def _worker_process(settings: SearchSettings, run_dir: str) -> None:
    """Entry point of an extra ``--workers`` process (spawned, so it re-imports cleanly).

    It runs in its own process group, so a Ctrl-C at the terminal reaches the search alone,
    which passes it on once; a worker whose search is gone stops by itself (Heartbeat).
    """
    os.setpgrp()
    set_threads(settings)
    events = SearchEvents()
    try:
        with interrupt_once():
            prepared = prepare(settings, Path(run_dir), events)
            storage = open_storage(settings.storage, Path(run_dir))
            study = open_study(storage, settings.study, Path(run_dir), prepared.identity,
                               prepared.items,
                               make_pruner(settings.budget.pruner, settings.budget.epochs))
            work(prepared, study, events, wait_for_others=False)
    except KeyboardInterrupt:
        pass
    except EffscaleError as exc:
        exit_worker(exc)


def exit_worker(exc: EffscaleError) -> None:
    """End a spawned ``--workers`` process on an effscale error. There is no CLI above it to
    render the error, so it goes to the ``effscale`` logger (one line on stderr through
    logging's last-resort handler unless the application configured logging)."""
    logging.getLogger("effscale").error("error: worker %d: %s", os.getpid(), exc)
    sys.exit(exc.exit_code)


@dataclass
class SearchOutcome:
    run_dir: Path
    complete: bool
    resumed: bool
    counts: dict[str, int]
    selection: Any = None
    prepared: Prepared | None = None


def resolve_run_dir(settings: SearchSettings, prepared_identity: dict[str, Any],
                    resume: str | None) -> tuple[Path, bool]:
    """Where this run lives, and whether it continues an earlier one."""
    run_fp = fingerprint(prepared_identity)
    if resume:
        run_dir = Path(resume)
        if not (run_dir / SETTINGS_FILE).is_file():
            raise EffscaleError(f"--resume {resume}: not an effscale run (no {SETTINGS_FILE})")
        check_run_dir(run_dir, run_fp, prepared_identity)
        return run_dir, True
    if settings.out:
        run_dir = Path(settings.out)
        check_run_dir(run_dir, run_fp, prepared_identity)
        return run_dir, (run_dir / SETTINGS_FILE).is_file()
    if settings.storage is None:
        found = find_resumable(Path("runs"), run_fp)
        if found is not None:
            return found, True
    return default_run_dir(settings), False


def run_search(settings: SearchSettings, events: SearchEvents, resume: str | None = None,
               dry_run: bool = False) -> SearchOutcome:
    """Run (or resume) a search to completion and write its outputs. ``dry_run`` stops after
    showing the feasible set, before anything is written or trained."""
    set_threads(settings)
    prepared = prepare(settings, Path("."), events)
    run_dir, resumed = resolve_run_dir(settings, prepared.identity, resume)
    prepared.run_dir = run_dir
    events.feasible([c for c in prepared.candidates.values() if not c.is_transfer],
                    prepared.dropped, prepared.grid_points)
    if dry_run:
        return SearchOutcome(run_dir, False, resumed, {"items": len(prepared.items)},
                             prepared=prepared)
    doc = settings_document(prepared)
    if settings.storage is None:
        _ensure_writable(run_dir)
    # A shared storage is opened (and its study checked) before the run dir is created, so
    # an unreachable server or a study of another search leaves nothing behind.
    storage = open_storage(settings.storage, run_dir, events.message)
    study = open_study(storage, settings.study, run_dir, prepared.identity, prepared.items,
                       make_pruner(settings.budget.pruner, settings.budget.epochs))
    _ensure_writable(run_dir)
    atomic.remove_stray_temps(run_dir)
    atomic.remove_stray_temps(run_dir / "configs")
    if "settings" not in study.user_attrs:
        study.set_user_attr("settings", json.loads(json.dumps(doc)))
    _write_settings(run_dir, doc, "running")
    if resumed:
        counts = progress_counts(study)
        events.message(f"resuming {run_dir}: {counts['settled']} of {counts['items']} "
                       "trainings already done")
    _work_with_workers(prepared, study, events, run_dir)
    counts = progress_counts(study)
    if settings.repeat_top and counts["settled"] == counts["items"]:
        from effscale.search.repeats import enqueue_top

        added = enqueue_top(study, settings.repeat_top, settings.budget.repeats)
        if added:
            events.message(f"--repeat-top {settings.repeat_top}: {len(added)} more trainings "
                           "of the best candidates under further seeds")
            _work_with_workers(prepared, study, events, run_dir)
            counts = progress_counts(study)
    if settings.budget.transfer_top and counts["settled"] == counts["items"]:
        from effscale.search.fidelity import enqueue_check

        added, seconds = enqueue_check(study, settings.budget.transfer_top,
                                       settings.budget.transfer_factor)
        if added:
            events.message(
                f"fidelity check: retraining {len(added)} models (the base and the top "
                f"{len(added) - 1}) with {settings.budget.transfer_factor}x the epochs "
                f"({settings.recipe.epochs * settings.budget.transfer_factor}); estimated "
                f"{seconds / 60:.0f} min from their first trainings")
            _work_with_workers(prepared, study, events, run_dir)
            counts = progress_counts(study)
    complete = counts["settled"] == counts["items"]
    from effscale.search.report import write_outputs

    selection = write_outputs(study, run_dir) if complete else None
    _write_settings(run_dir, doc, "complete" if complete else "running")
    return SearchOutcome(run_dir, complete, resumed, counts, selection)


def _work_with_workers(prepared: Prepared, study: optuna.Study, events: SearchEvents,
                       run_dir: Path) -> None:
    extra = _start_workers(prepared.settings, run_dir)
    try:
        work(prepared, study, events, wait_for_others=True)
    except KeyboardInterrupt:
        _stop_workers(extra)
        raise SearchInterrupted(run_dir, progress_counts(study)) from None
    finally:
        for process in extra:
            process.join()


def _stop_workers(processes: list[Any]) -> None:
    """Pass a Ctrl-C on to the extra workers once and give them time to release their
    trainings; whatever is still running after that is terminated (and recovered on resume)."""
    for process in processes:
        if process.is_alive() and process.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGINT)
    deadline = time.monotonic() + 30
    for process in processes:
        process.join(max(0.1, deadline - time.monotonic()))
        if process.is_alive():
            process.terminate()


def _start_workers(settings: SearchSettings, run_dir: Path) -> list[Any]:
    context = multiprocessing.get_context("spawn")
    processes = []
    for _ in range(settings.workers - 1):
        process = context.Process(target=_worker_process, args=(settings, str(run_dir)),
                                  daemon=False)
        process.start()
        processes.append(process)
    return processes


def _ensure_writable(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".effscale-write-probe"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise EffscaleError(f"{run_dir}: cannot write the run directory ({exc.strerror})",
                            1) from None
