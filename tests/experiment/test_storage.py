"""The run's storage: RDB storages open quietly and requeue stale trials, the journal's flock
works across processes, and no optuna-private module is imported."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.exceptions import ExperimentalWarning
from optuna.trial import TrialState

import effscale.experiment.heartbeat
import effscale.experiment.optuna_adapter
import effscale.experiment.queue
import effscale.experiment.storage
from effscale.errors import EffscaleError
from effscale.experiment.optuna_adapter import storage_of, trial_id
from effscale.experiment.queue import claim_next, item_of, open_study
from effscale.experiment.storage import JOURNAL_NAME, FlockLock, open_storage, repair_journal

WRITER = """
import sys
from pathlib import Path
import optuna
from effscale.experiment.storage import open_storage
study = optuna.load_study(study_name="effscale", storage=open_storage(None, Path(sys.argv[1])))
for n in range(int(sys.argv[3])):
    study.enqueue_trial({"item": f"{sys.argv[2]}{n}@0"}, skip_if_exists=False)
"""


def test_opening_an_rdb_storage_emits_no_experimental_warning(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", tmp_path)
    assert isinstance(storage, optuna.storages.RDBStorage)
    assert storage.heartbeat_interval is not None  # the heartbeat is still on, only quiet
    assert not [w for w in caught if issubclass(w.category, ExperimentalWarning)], \
        [str(w.message) for w in caught]


@pytest.mark.slow  # waits 2.5 s for a heartbeat to go stale
@pytest.mark.filterwarnings("ignore:.*fail_stale_trials is experimental")
def test_rdb_stale_trial_callback_requeues_its_item_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """optuna fails a trial whose RDB heartbeat is stale and calls back into the queue, which
    enqueues its item again."""
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", tmp_path)
    monkeypatch.setattr(storage, "grace_period", 1)
    study = open_study(storage, "effscale", tmp_path, {"id": 1}, ["a@0", "b@0"])
    trial = claim_next(study)
    assert trial is not None
    storage.record_heartbeat(trial_id(trial))  # one beat, then the worker "dies"
    time.sleep(2.5)
    optuna.storages.fail_stale_trials(study)
    optuna.storages.fail_stale_trials(study)  # a second worker noticing it too does nothing
    assert storage.get_trial(trial_id(trial)).state == TrialState.FAIL
    waiting = Counter(item_of(t) for t in study.get_trials(states=(TrialState.WAITING,)))
    assert waiting == Counter(["a@0", "b@0"])


@pytest.mark.slow  # waits 2.5 s for a heartbeat to go stale
@pytest.mark.filterwarnings("ignore:.*fail_stale_trials is experimental")
def test_worker_heartbeat_on_an_rdb_study_is_optunas_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A study wraps its RDBStorage in optuna's cache; the heartbeat used to test the wrapper
    for RDBStorage, miss, and write the journal's attribute, so optuna never saw a beat and
    its stale-trial check (what recovers a dead worker on another machine) found nothing."""
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", tmp_path)
    monkeypatch.setattr(storage, "grace_period", 1)
    study = open_study(storage, "effscale", tmp_path, {"id": 1}, ["a@0"])
    assert effscale.experiment.heartbeat.is_rdb(storage_of(study))
    trial = claim_next(study)
    assert trial is not None
    effscale.experiment.heartbeat.Heartbeat(study).start(trial)  # one beat
    assert "effscale_heartbeat" not in storage.get_trial(trial_id(trial)).system_attrs
    time.sleep(2.5)  # the worker "dies"
    optuna.storages.fail_stale_trials(study)
    assert storage.get_trial(trial_id(trial)).state == TrialState.FAIL
    waiting = [item_of(t) for t in study.get_trials(states=(TrialState.WAITING,))]
    assert waiting == ["a@0"]


def test_a_live_worker_on_another_machine_is_left_to_optunas_heartbeat(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On RDB a trial's age is not a reason to fail it: only optuna's heartbeat (or a dead
    process on this host) is. The journal rule, "no effscale_heartbeat newer than GRACE_S",
    would fail every trial that runs longer than GRACE_S there, since RDB workers do not
    write that attribute."""
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", tmp_path)
    study = open_study(storage, "effscale", tmp_path, {"id": 1}, ["a@0"])
    trial = claim_next(study)
    assert trial is not None
    storage.set_trial_system_attr(trial_id(trial), "effscale_worker", "elsewhere:1")
    effscale.experiment.heartbeat.Heartbeat(study).start(trial)
    monkeypatch.setattr(effscale.experiment.queue, "GRACE_S", 0)
    time.sleep(0.1)
    assert effscale.experiment.queue.recover_dead_workers(study) == []
    assert storage.get_trial(trial_id(trial)).state == TrialState.RUNNING


@pytest.mark.slow  # starts a subprocess
def test_journal_lock_serialises_writers_in_several_processes(tmp_path: Path) -> None:
    open_study(open_storage(None, tmp_path), "effscale", tmp_path, {"id": 1}, [])
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name, "25"])
               for name in ("a", "b")]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    lines = (tmp_path / JOURNAL_NAME).read_bytes().split(b"\n")
    assert lines[-1] == b""  # every record whole: no append interleaved with another
    study = optuna.load_study(study_name="effscale", storage=open_storage(None, tmp_path))
    items = sorted(item_of(trial) or "" for trial in study.get_trials())
    assert items == sorted(f"{name}{n}@0" for name in ("a", "b") for n in range(25))
    assert not (tmp_path / (JOURNAL_NAME + ".torn")).exists()


def test_no_private_optuna_module_is_imported() -> None:
    for module in (effscale.experiment.storage, effscale.experiment.queue,
                   effscale.experiment.heartbeat, effscale.experiment.optuna_adapter):
        tree = ast.parse(Path(str(module.__file__)).read_text())
        names = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        names += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                  for alias in node.names]
        private = [name for name in names
                   if name.startswith("optuna") and any(p.startswith("_") for p in name.split("."))]
        assert not private, (module.__name__, private)


def _journal_study(run_dir: Path, items: list[str]) -> optuna.Study:
    return open_study(open_storage(None, run_dir), "effscale", run_dir, {"id": 1}, items)

def test_torn_journal_tail_breaks_optuna_and_is_repaired(tmp_path: Path) -> None:
    _journal_study(tmp_path, ["a@0", "b@0"])
    path = tmp_path / JOURNAL_NAME
    whole = path.read_bytes()
    again = next(line for line in whole.splitlines() if b'"identity"' in line) + b"\n"
    # A torn record with later appends glued on: optuna itself cannot read that any more.
    path.write_bytes(whole + b'{"op_code":5,"worker_id":"x","tri' + again + again)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    with pytest.raises(ValueError):
        JournalStorage(JournalFileBackend(str(path))).get_all_studies()
    notices: list[str] = []
    study = optuna.load_study(study_name="effscale",
                              storage=open_storage(None, tmp_path, notices.append))
    assert len(study.get_trials()) == 2 and study.user_attrs["identity"] == {"id": 1}
    assert notices and "cut 1 torn record" in notices[0]
    assert (tmp_path / (JOURNAL_NAME + ".torn")).read_bytes().startswith(b'{"op_code":5')
    path.write_bytes(path.read_bytes() + b'{"op_code":5,"wor')  # torn last line, no newline
    assert repair_journal(path) == 1
    assert path.read_bytes().endswith(b"}\n")


@pytest.mark.slow  # starts a subprocess
def test_lock_of_a_killed_writer_does_not_stall_others(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from effscale.experiment.storage import FlockLock; "
         "FlockLock(Path(sys.argv[1])).acquire(); "
         "print('held', flush=True); time.sleep(60)", str(tmp_path / "lock")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    started = time.monotonic()
    lock = FlockLock(tmp_path / "lock")
    assert lock.acquire()
    lock.release()
    assert time.monotonic() - started < 1.0  # optuna's own lock files wait 30 s here

def test_unreachable_storage_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    with pytest.raises(EffscaleError) as err:
        open_storage("postgresql://u:secret@127.0.0.1:1/x", tmp_path)
    assert time.monotonic() - started < 10
    assert err.value.exit_code == 1 and "secret" not in str(err.value)
    assert str(err.value).startswith("cannot open storage postgresql+psycopg://u:***@127.0.0.1:1/x")
