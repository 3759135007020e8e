"""The optuna study behind a search: storage, fingerprint checks and exactly-once claiming.

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
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from effscale.errors import EffscaleError

ITEM_PARAM = "item"
JOURNAL_NAME = "study.journal"
RETRYABLE = ("interrupted", "worker died")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def item_key(candidate: str, seed_index: int) -> str:
    return f"{candidate}@{seed_index}"


def split_item(item: str) -> tuple[str, int]:
    candidate, _, seed = item.rpartition("@")
    return candidate, int(seed)


def repair_journal(path: Path) -> bool:
    """Cut a torn last line (a writer killed mid-append) off a journal file.

    Returns ``True`` when something was cut; the cut bytes are kept beside it as ``.torn``.
    """
    if not path.is_file():
        return False
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        lines = data.splitlines()
        if not lines:
            return False
        try:
            json.loads(lines[-1])
            return False
        except ValueError:
            keep = data[: len(data) - len(lines[-1]) - 1]
    else:
        keep = data[: data.rfind(b"\n") + 1]
    (path.parent / (path.name + ".torn")).write_bytes(data[len(keep):])
    with open(path, "r+b") as handle:
        handle.truncate(len(keep))
        handle.flush()
        os.fsync(handle.fileno())
    return True


def open_storage(url: str | None, run_dir: Path) -> BaseStorage:
    """The run's storage: a journal file in ``run_dir`` (default) or any optuna storage URL.

    RDB storages (PostgreSQL, MySQL, SQLite) get a heartbeat so that trials of a worker that
    died are noticed by the others.
    """
    if url is None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        path = run_dir / JOURNAL_NAME
        repair_journal(path)
        try:
            backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
            return JournalStorage(backend)
        except ValueError as exc:
            raise EffscaleError(f"{path}: damaged study journal ({exc})", 1) from None
    try:
        return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=120)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise EffscaleError(f"cannot open storage {_redact(url)}: {first}", 1) from None


def _redact(url: str) -> str:
    """Hide a password in a storage URL before printing it."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


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
    """``"epochs: 3 -> 5; dataset: a -> b"`` for the keys whose values differ."""
    keys = sorted(set(stored) | set(current))
    diffs = [f"{k}: {stored.get(k)!r} -> {current.get(k)!r}" for k in keys
             if stored.get(k) != current.get(k)]
    return "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")


def open_study(
    storage: BaseStorage, name: str, run_dir: Path, identity: dict[str, Any], items: list[str],
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Create the study with its work items, or load it and check it is the same search.

    ``identity`` holds what defines the search (grid, data fingerprint, budget, recipe,
    seed); a different one is refused with what differs.
    """
    with _creation_lock(run_dir):
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                    load_if_exists=True, pruner=pruner)
        stored = study.user_attrs.get("identity")
        if stored is None:
            study.set_user_attr("identity", identity)
            for item in items:
                study.enqueue_trial({ITEM_PARAM: item}, skip_if_exists=False)
        elif stored != identity:
            raise EffscaleError(
                f"study {name!r} belongs to a different search ({describe_differences(stored, identity)}); "
                "use another --out/--study, or the original settings to resume it"
            )
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
        if trial.state == TrialState.FAIL and trial.user_attrs.get("failure_kind") not in RETRYABLE:
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


def recover_dead_workers(study: optuna.Study) -> list[str]:
    """Fail RUNNING trials whose worker is gone and enqueue their items again.

    On this machine a worker is gone when its process no longer exists; on RDB storages
    optuna's heartbeat also catches workers on other machines.
    """
    storage = study._storage
    if isinstance(storage, optuna.storages.RDBStorage):
        optuna.storages.fail_stale_trials(study)
    recovered = []
    host = socket.gethostname()
    for item, trials in item_states(study).items():
        for trial in trials:
            worker = trial.system_attrs.get("effscale_worker", "")
            whost, _, pid = worker.rpartition(":")
            stale_here = (trial.state == TrialState.RUNNING and whost == host and pid.isdigit()
                          and not _pid_alive(int(pid)))
            stale_rdb = (trial.state == TrialState.FAIL and "failure_kind" not in trial.user_attrs)
            if not (stale_here or stale_rdb):
                continue
            if stale_here and not storage.set_trial_state_values(
                    trial._trial_id, TrialState.FAIL):
                continue
            storage.set_trial_user_attr(trial._trial_id, "failure_kind", "worker died")
            if not is_settled(trials) and not _has_waiting(trials):
                study.enqueue_trial({ITEM_PARAM: item}, skip_if_exists=False)
            recovered.append(item)
    return recovered


def _has_waiting(trials: list[FrozenTrial]) -> bool:
    return any(t.state == TrialState.WAITING for t in trials)


def claim_next(study: optuna.Study) -> optuna.Trial | None:
    """Atomically take the next WAITING trial whose item is not done or running elsewhere."""
    storage = study._storage
    groups = item_states(study)
    for _, trials in sorted(groups.items(), key=lambda kv: min(t.number for t in kv[1])):
        for trial in trials:
            if trial.state != TrialState.WAITING:
                continue
            if not storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING):
                continue  # another worker took it first
            others = [t for t in trials if t.number != trial.number]
            busy = is_settled(others) or any(t.state == TrialState.RUNNING for t in others)
            if busy:  # a duplicate left by a race between two workers' re-enqueues
                storage.set_trial_user_attr(trial._trial_id, "failure_kind", "duplicate")
                storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
                continue
            storage.set_trial_system_attr(trial._trial_id, "effscale_worker", _worker_id())
            return optuna.Trial(study, trial._trial_id)
    return None


def release_interrupted(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    """Mark an interrupted trial FAIL and enqueue its item again, so a resume re-runs it."""
    item = trial.params.get(ITEM_PARAM) or trial.system_attrs.get("fixed_params", {}).get(ITEM_PARAM)
    trial.set_user_attr("failure_kind", "interrupted")
    trial.set_user_attr("failure", reason)
    study.tell(trial, state=TrialState.FAIL)
    if item is not None:
        study.enqueue_trial({ITEM_PARAM: item}, skip_if_exists=False)
