"""The optuna adapter (the only module that touches optuna's internals) against the installed
optuna, one test per major version pyproject allows, and optuna's logging left alone on import.

The major a run covers is in its test name: ``test_adapter_on_optuna_5`` ran, or was skipped
because another major is installed. To check the other major without changing the venv:
``pip install --no-deps --target /tmp/optuna4 'optuna>=4,<5'`` then
``PYTHONPATH=/tmp/optuna4:$PWD pytest tests/experiment/test_optuna_adapter.py``.
"""

from __future__ import annotations

import importlib
import logging
import re
from pathlib import Path

import optuna
import pytest
from helpers import REPO
from optuna.trial import TrialState

import effscale.experiment.queue
from effscale.experiment import optuna_adapter as adapter
from effscale.experiment.queue import claim_next, open_study, quiet_optuna, release_interrupted
from effscale.experiment.storage import open_storage

MAJOR = int(optuna.__version__.split(".")[0])


def _allowed_majors() -> list[int]:
    text = (REPO / "pyproject.toml").read_text()
    match = re.search(r'"optuna>=(\d+)[.\d]*,<(\d+)"', text)
    assert match, "pyproject.toml pins optuna as >=A,<B"
    return list(range(int(match[1]), int(match[2])))


def test_every_allowed_major_has_a_test_here() -> None:
    tested = sorted(int(name.rsplit("_", 1)[1]) for name in globals()
                    if name.startswith("test_adapter_on_optuna_"))
    assert tested == _allowed_majors()
    assert MAJOR in tested, f"optuna {optuna.__version__} is installed, outside {tested}"


def _check_adapter(tmp_path: Path) -> None:
    """Each adapter operation does what queue.py and heartbeat.py rely on."""
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", tmp_path)
    study = open_study(storage, "effscale", tmp_path, {"id": 1}, ["a@0", "b@0"])
    assert adapter.storage_of(study) is not None
    waiting = study.get_trials(states=(TrialState.WAITING,))
    ids = {adapter.trial_id(t) for t in waiting}
    study_id = storage.get_study_id_from_name("effscale")
    assert ids == {storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
                   for t in waiting}

    trial = adapter.claim(study, waiting[0])
    assert isinstance(trial, optuna.Trial) and trial.number == waiting[0].number
    assert adapter.claim(study, waiting[0]) is None  # claimed once only
    trial.report(0.5, 0)  # the Trial is live: it reports and takes attributes
    adapter.set_user_attr(study, waiting[1], "note", "held elsewhere")
    adapter.set_system_attr(study, trial, "effscale_worker", "host:1")
    adapter.record_heartbeat(study, trial)  # the RDB storage's heartbeat accepts it
    trials = study.get_trials()
    assert trials[trial.number].state == TrialState.RUNNING
    assert trials[trial.number].intermediate_values == {0: 0.5}
    assert trials[trial.number].system_attrs["effscale_worker"] == "host:1"
    assert trials[waiting[1].number].user_attrs["note"] == "held elsewhere"

    # the public calls queue.py makes around them: tell() by number fails a RUNNING trial once
    release_interrupted(study, trial, "stopped")
    release_interrupted(study, trial, "stopped")  # a second release changes nothing
    trials = study.get_trials()
    assert trials[trial.number].state == TrialState.FAIL
    assert trials[trial.number].user_attrs["failure_kind"] == "interrupted"
    assert [t.state for t in trials].count(TrialState.WAITING) == 2  # b@0 and a@0 again

    # why claiming is not ask(): with nothing WAITING, ask() makes a new, empty trial
    while claim_next(study) is not None:
        pass
    before = len(study.get_trials())
    study.ask()
    assert len(study.get_trials()) == before + 1


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
@pytest.mark.skipif(MAJOR != 4, reason=f"optuna {optuna.__version__} installed, not 4.x")
def test_adapter_on_optuna_4(tmp_path: Path) -> None:
    _check_adapter(tmp_path)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
@pytest.mark.skipif(MAJOR != 5, reason=f"optuna {optuna.__version__} installed, not 5.x")
def test_adapter_on_optuna_5(tmp_path: Path) -> None:
    _check_adapter(tmp_path)


def test_importing_the_queue_leaves_optunas_verbosity_alone() -> None:
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    try:
        importlib.reload(effscale.experiment.queue)
        assert optuna.logging.get_verbosity() == optuna.logging.DEBUG
    finally:
        optuna.logging.set_verbosity(before)


def test_opening_a_study_is_quiet_and_restores_the_verbosity(tmp_path: Path) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("optuna")
    before = optuna.logging.get_verbosity()
    logger.addHandler(handler)
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        open_study(open_storage(None, tmp_path), "effscale", tmp_path, {"id": 1}, ["a@0"])
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
        with quiet_optuna():
            assert optuna.logging.get_verbosity() == optuna.logging.WARNING
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
        optuna.create_study()  # not quietened: the caller's INFO reaches the handler
    finally:
        logger.removeHandler(handler)
        optuna.logging.set_verbosity(before)
    messages = [r.getMessage() for r in records]
    assert not [m for m in messages if "effscale" in m], messages
    assert [m for m in messages if "A new study created" in m], messages
