"""The optuna operations effscale needs that optuna's public API does not offer, in one place.

Why internals at all (everything else goes through ``Study``'s public API: ``tell``,
``enqueue_trial``, ``get_trials``, ``set_user_attr``):

- **Claiming one chosen WAITING trial.** ``Study.ask()`` pops the lowest-numbered WAITING
  trial of any item and, when none is left, *creates a new empty trial*: a worker that loses
  the race for the last item would leave an empty RUNNING trial in the study. The work queue
  instead claims the oldest WAITING trial of the oldest unsettled item, with the storage's
  atomic WAITING -> RUNNING move, and needs a ``Trial`` for the id it claimed.
- **Writing onto a trial this process does not hold.** ``Trial.set_user_attr`` exists only
  on the ``Trial`` a process claimed (``FrozenTrial.set_user_attr`` changes a copy), yet a
  worker that finds another worker dead records on that worker's trial why it failed, and
  every worker keeps the heartbeat of its trial from a background thread.

These need a study's storage (``Study._storage``), a trial's storage id (``_trial_id``) and
``optuna.Trial(study, trial_id)``. They are the same in optuna 4 and 5, the majors
pyproject allows; tests/experiment/test_optuna_adapter.py checks each operation against the
installed optuna and says which major it covers.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

AnyTrial = optuna.Trial | FrozenTrial


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage ``study`` reads and writes (optuna's cache around an RDB storage, if any)."""
    return study._storage


def trial_id(trial: AnyTrial) -> int:
    """The storage's id of ``trial`` (not its number)."""
    return trial._trial_id


def claim(study: optuna.Study, trial: FrozenTrial) -> optuna.Trial | None:
    """Move the WAITING ``trial`` to RUNNING and return it as a ``Trial`` to train, or
    ``None`` when another process moved it first (the storage makes the move atomic)."""
    if not storage_of(study).set_trial_state_values(trial_id(trial), TrialState.RUNNING):
        return None
    return optuna.Trial(study, trial_id(trial))


def set_user_attr(study: optuna.Study, trial: AnyTrial, key: str, value: Any) -> None:
    """``trial.set_user_attr`` for a trial held by another (dead) process."""
    storage_of(study).set_trial_user_attr(trial_id(trial), key, value)


def set_system_attr(study: optuna.Study, trial: AnyTrial, key: str, value: Any) -> None:
    """A system attribute of ``trial`` (effscale's worker id and journal heartbeat)."""
    storage_of(study).set_trial_system_attr(trial_id(trial), key, value)


def record_heartbeat(study: optuna.Study, trial: AnyTrial) -> None:
    """optuna's own heartbeat of ``trial`` (RDB storages: what ``fail_stale_trials`` reads)."""
    storage_of(study).record_heartbeat(trial_id(trial))  # type: ignore[attr-defined]
