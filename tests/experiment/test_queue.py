"""The work queue: exactly-once claiming, a dead worker's item enqueued again once, an
interrupted item released once (the end-to-end kills are in test_resilience.py)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from effscale.experiment.optuna_adapter import set_system_attr
from effscale.experiment.queue import (
    ITEM_PARAM,
    claim_next,
    item_of,
    open_study,
    recover_dead_workers,
    release_interrupted,
)
from effscale.experiment.storage import open_storage


def _journal_study(run_dir: Path, items: list[str]) -> optuna.Study:
    return open_study(open_storage(None, run_dir), "effscale", run_dir, {"id": 1}, items)


def trained_per_item(study: optuna.Study) -> Counter:
    """Trainings started per item: every claimed trial except duplicates dropped unrun."""
    return Counter(item_of(t) for t in study.get_trials()
                   if t.state != TrialState.WAITING
                   and t.user_attrs.get("failure_kind") != "duplicate")


def test_dead_worker_on_another_machine_is_recovered_exactly_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study = _journal_study(tmp_path, ["a@0", "b@0"])
    trial = claim_next(study)
    assert trial is not None
    set_system_attr(study, trial, "effscale_worker", "elsewhere:1")
    set_system_attr(study, trial, "effscale_heartbeat", time.time())
    assert recover_dead_workers(study) == []  # heartbeat fresh: alive
    set_system_attr(study, trial, "effscale_heartbeat", time.time() - 3600)
    other = optuna.load_study(study_name="effscale", storage=open_storage(None, tmp_path))
    assert recover_dead_workers(study) == [item_of(study.get_trials()[trial.number])]
    assert recover_dead_workers(other) == []  # the second one to notice does nothing
    waiting = Counter(item_of(t) for t in study.get_trials(states=(TrialState.WAITING,)))
    assert waiting == Counter(["a@0", "b@0"])


def test_interrupt_releases_the_item_once_and_claims_never_duplicate(tmp_path: Path) -> None:
    study = _journal_study(tmp_path, ["a@0"])
    trial = claim_next(study)
    assert trial is not None and trial.suggest_categorical(ITEM_PARAM, ["a@0"]) == "a@0"
    release_interrupted(study, trial, "interrupted by Ctrl-C")
    release_interrupted(study, trial, "interrupted by Ctrl-C")  # twice: still one requeue
    study.enqueue_trial({ITEM_PARAM: "a@0"})  # a duplicate, as two machines might leave
    first = claim_next(study)
    assert first is not None
    assert claim_next(study) is None  # the copy is not handed out while the first runs
    study.tell(first, 0.5)
    assert claim_next(study) is None
    assert trained_per_item(study) == Counter({"a@0": 2})  # interrupted + completed
