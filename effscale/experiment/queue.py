"""The work queue of a search: its items, their states, and exactly-once claiming.

Note:
    Every work item (a candidate and a seed) is enqueued once, when the study is created.
    Workers claim a WAITING trial by moving it to RUNNING, which the storage does atomically,
    so several processes (or machines on one RDB storage) never train the same item twice.
    GridSampler is not used: after ``kill -9`` it re-runs points late and, with several
    workers, duplicates the tail of the grid. A trial that was interrupted (Ctrl-C) or whose
    worker died is marked FAIL with its reason and its item is enqueued again, exactly once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from effscale.errors import EffscaleError
from effscale.experiment import optuna_adapter as adapter
from effscale.experiment.heartbeat import GRACE_S, is_rdb

ITEM_PARAM = "item"
RETRYABLE = ("interrupted", "worker died")


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """optuna's INFO lines ("A new study created ...") off while the block runs, and the
    caller's verbosity back afterwards: effscale prints its own progress, and importing it
    changes nothing in the process's logging."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(before, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def item_key(candidate: str, seed_index: int) -> str:
    return f"{candidate}@{seed_index}"


def split_item(item: str) -> tuple[str, int]:
    candidate, _, seed = item.rpartition("@")
    return candidate, int(seed)


@contextlib.contextmanager
def _creation_lock(run_dir: Path) -> Iterator[None]:
    """Serialise study creation between processes on this machine."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".study.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def describe_differences(stored: dict[str, Any], current: dict[str, Any]) -> str:
    """``"budget.epochs: 3 -> 5; dataset: 'a' -> 'b'"`` for the values that differ."""
    old, new = _flatten(stored), _flatten(current)
    changed = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    # Values set on both sides first: a run written by another effscale version lacks keys,
    # and those "(unset)" lines should not hide what really changed.
    changed.sort(key=lambda k: (k not in old or k not in new))
    diffs = [f"{k}: {old.get(k, '(unset)')!r} -> {new.get(k, '(unset)')!r}" for k in changed]
    return "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def open_study(
    storage: BaseStorage, name: str, run_dir: Path, identity: dict[str, Any], items: list[str],
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Create the study with its work items, or load it and check it is the same search.

    ``identity`` holds what defines the search (grid, data fingerprint, budget, recipe,
    seed); a different one is refused with what differs.
    """
    # Across machines (RDB) two creators may both enqueue; claim_next drops the duplicates.
    lock = contextlib.nullcontext() if is_rdb(storage) else _creation_lock(run_dir)
    with lock, quiet_optuna():
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                    load_if_exists=True, pruner=pruner)
        stored = study.user_attrs.get("identity")
        if stored is None:
            study.set_user_attr("identity", identity)
            for item in items:
                study.enqueue_trial({ITEM_PARAM: item}, skip_if_exists=False)
        elif stored != identity:
            differences = describe_differences(stored, identity)
            raise EffscaleError(f"study {name!r} belongs to a different search ({differences}); "
                                "use another --out/--study, or the original settings to resume it")
    return study


def item_of(trial: FrozenTrial) -> str | None:
    fixed = trial.system_attrs.get("fixed_params") or {}
    return trial.params.get(ITEM_PARAM) or fixed.get(ITEM_PARAM)


def item_states(study: optuna.Study) -> dict[str, list[FrozenTrial]]:
    """Trials grouped by work item."""
    groups: dict[str, list[FrozenTrial]] = {}
    for trial in study.get_trials(deepcopy=False):
        item = item_of(trial)
        if item is not None:
            groups.setdefault(item, []).append(trial)
    return groups


def is_settled(trials: list[FrozenTrial]) -> bool:
    """An item is settled once a trial of it completed, was pruned, or failed for good."""
    for trial in trials:
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            return True
        kind = trial.user_attrs.get("failure_kind")
        # A FAIL without a kind was failed by optuna's heartbeat check: its worker died.
        # A duplicate was never run, so it settles nothing either.
        if trial.state == TrialState.FAIL and kind not in (None, *RETRYABLE, "duplicate"):
            return True
    return False


def progress_counts(study: optuna.Study) -> dict[str, int]:
    """How many items are settled, running and waiting."""
    groups = item_states(study)
    settled = sum(is_settled(t) for t in groups.values())
    running = sum(any(x.state == TrialState.RUNNING for x in t) and not is_settled(t)
                  for t in groups.values())
    return {"items": len(groups), "settled": settled, "running": running,
            "waiting": len(groups) - settled - running}


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(trial: FrozenTrial, host: str, now: float, rdb: bool) -> bool:
    """A RUNNING trial is stale when its worker's process is gone (same machine), or, on a
    journal, when its heartbeat is older than GRACE_S (any machine; on RDB storages that is
    optuna's heartbeat, which ``fail_stale_trials`` reads, so it is not looked at here)."""
    worker = trial.system_attrs.get("effscale_worker", "")
    whost, _, pid = worker.rpartition(":")
    if whost == host and pid.isdigit() and not _pid_alive(int(pid)):
        return True
    if rdb:
        return False
    beat = trial.system_attrs.get("effscale_heartbeat")
    if beat is None and trial.datetime_start is not None:
        beat = trial.datetime_start.timestamp()
    return beat is not None and now - float(beat) > GRACE_S


def recover_dead_workers(study: optuna.Study) -> list[str]:
    """Fail RUNNING trials whose worker is gone and enqueue their items again, once.

    Moving a trial from RUNNING to FAIL succeeds for one caller only, so when several
    workers notice the same dead one, exactly one of them enqueues the item again.
    """
    rdb = is_rdb(adapter.storage_of(study))
    if rdb:
        with warnings.catch_warnings():  # "experimental": not news to our users
            warnings.filterwarnings("ignore", ".*fail_stale_trials is experimental",
                                    ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # runs requeue_stale for each it fails
    recovered = []
    host, now = socket.gethostname(), time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if rdb and "effscale_worker" not in trial.system_attrs:
            continue  # claimed a moment ago; the heartbeat covers it from here on
        if not _is_stale(trial, host, now, rdb):
            continue
        with contextlib.suppress(UpdateFinishedTrialError):  # another worker was first
            adapter.set_user_attr(study, trial, "failure_kind", "worker died")
            adapter.set_user_attr(study, trial, "failure",
                                  "its worker stopped without finishing it")
        if not _finish(study, trial.number):
            continue
        requeue_stale(study, trial)
        recovered.append(item_of(trial) or "")
    return recovered


def _finish(study: optuna.Study, number: int) -> bool:
    """Move the RUNNING trial ``number`` to FAIL; ``False`` when another process finished it
    first (``tell`` refuses a finished trial; the storage refuses the later of two racing)."""
    try:
        study.tell(number, state=TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    except ValueError:  # "Cannot tell a FAIL trial": finished before we looked
        if study.get_trials(deepcopy=False)[number].state == TrialState.RUNNING:
            raise
        return False
    return True


def requeue_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    """Enqueue a stale trial's item again; called once per trial, by the worker that moved
    it to FAIL (on RDB storages, as optuna's heartbeat-stale callback)."""
    item = item_of(trial)
    if item is not None:
        study.enqueue_trial({ITEM_PARAM: item}, skip_if_exists=False)


def claim_next(study: optuna.Study) -> optuna.Trial | None:
    """Atomically take the next WAITING trial whose item is not done or running elsewhere.

    Only the lowest-numbered WAITING trial of an item is ever tried, and a lost race moves
    on to the next item, so two workers never run two copies of one item; a copy left by
    two concurrent enqueues is failed as ``duplicate`` when claimed.
    """
    groups = item_states(study)
    for item, trials in sorted(groups.items(), key=lambda kv: min(t.number for t in kv[1])):
        waiting = [t for t in trials if t.state == TrialState.WAITING]
        if not waiting or is_settled(trials):
            if waiting and is_settled(trials):
                _drop_duplicate(study, waiting[0])
            continue
        frozen = min(waiting, key=lambda t: t.number)
        trial = adapter.claim(study, frozen)
        if trial is None:
            continue  # another worker took it first
        others = [t for t in study.get_trials(deepcopy=False)
                  if item_of(t) == item and t.number != frozen.number]
        if is_settled(others) or any(t.state == TrialState.RUNNING for t in others):
            _fail_duplicate(study, trial)
            continue
        adapter.set_system_attr(study, trial, "effscale_worker", _worker_id())
        return trial
    return None


def _drop_duplicate(study: optuna.Study, frozen: FrozenTrial) -> None:
    trial = adapter.claim(study, frozen)
    if trial is not None:
        _fail_duplicate(study, trial)


def _fail_duplicate(study: optuna.Study, trial: optuna.Trial) -> None:
    trial.set_user_attr("failure_kind", "duplicate")
    _finish(study, trial.number)


def release_interrupted(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    """Mark an interrupted trial FAIL and enqueue its item again, so a resume re-runs it.

    If another worker already failed it as stale, that worker has enqueued it; nothing to do.
    """
    frozen = study.get_trials(deepcopy=False)[trial.number]
    if frozen.state != TrialState.RUNNING:
        return
    with contextlib.suppress(UpdateFinishedTrialError):  # failed as stale a moment ago
        trial.set_user_attr("failure_kind", "interrupted")
        trial.set_user_attr("failure", reason)
    if not _finish(study, trial.number):
        return
    item = item_of(frozen)
    if item is not None:
        study.enqueue_trial({ITEM_PARAM: item}, skip_if_exists=False)
