"""A search that survives anything (issue 4): kill -9, Ctrl-C, several workers, PostgreSQL,
failing candidates, kills while writing, torn journals and bad inputs.

The end-to-end tests run ``effscale`` in real subprocesses on the embedded synthetic dataset
with tiny settings (4 trainings of a second or two each). ``EFFSCALE_TEST_STEP_DELAY`` makes
a training slow enough to be killed mid-way; it only sleeps, so results are unchanged.
"""

from __future__ import annotations

import csv
import itertools
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
import yaml
from helpers import REPO
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState

from effscale import atomic
from effscale.errors import EffscaleError
from effscale.experiment.optuna_adapter import set_system_attr
from effscale.experiment.queue import (
    ITEM_PARAM,
    claim_next,
    item_of,
    open_study,
    recover_dead_workers,
    release_interrupted,
)
from effscale.experiment.storage import JOURNAL_NAME, FlockLock, open_storage, repair_journal
from effscale.model.config import load_config
from effscale.search.grid import GridSpec, axis, feasible_grid, gamma_axis

Cli = Callable[..., tuple[int, str, str]]

# base + 3 candidates at 2x full-size FLOPs (the smoke grid with alpha up to 1.4: width,
# depth + width, and resolution alone at 28 px); the screening alone, no confirmation.
SMALL = ["search", "--dataset", "synthetic", "--budget", "smoke", "--train-size", "64",
         "--val-size", "32", "--epochs", "2", "--batch-size", "32", "--alpha-max", "1.4",
         "--threads", "1", "--confirm-top", "0"]
DEPTH, WIDTH, RES = "a1.40_b1.11_g1.000", "a1.00_b1.45_g1.000", "a1.00_b1.00_g1.400"
ITEMS = {"base@0", f"{DEPTH}@0", f"{WIDTH}@0", f"{RES}@0"}


# --- helpers ------------------------------------------------------------------------------

@pytest.fixture
def env(_session_cache_dir: Path) -> dict[str, str]:
    """Subprocess environment: the session's cache (FLOPs measured once), one torch thread."""
    values = {k: v for k, v in os.environ.items() if not k.startswith("EFFSCALE_TEST_")}
    values.update(EFFSCALE_CACHE_DIR=str(_session_cache_dir), OMP_NUM_THREADS="1",
                  PYTHONUNBUFFERED="1")
    return values


def start(args: list[str], cwd: Path, env: dict[str, str], **extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "effscale.cli.main", *args], cwd=cwd,
                            env={**env, **extra}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run(args: list[str], cwd: Path, env: dict[str, str], **extra: str
        ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "effscale.cli.main", *args], cwd=cwd,
                          env={**env, **extra}, capture_output=True, text=True, timeout=1800)


def wait_for_line(process: subprocess.Popen, pattern: str, timeout: float = 900) -> list[str]:
    """Read the process's stderr until a line matches; returns the lines read."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stderr is not None
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
        if re.search(pattern, line):
            return lines
    process.kill()
    raise AssertionError(f"no line matching {pattern!r}; got:\n{''.join(lines)}")


def load(run_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="effscale", storage=open_storage(None, run_dir))


def completed_per_item(study: optuna.Study) -> Counter:
    return Counter(item_of(t) for t in study.get_trials(states=(TrialState.COMPLETE,)))


def trained_per_item(study: optuna.Study) -> Counter:
    """Trainings started per item: every claimed trial except duplicates dropped unrun."""
    return Counter(item_of(t) for t in study.get_trials()
                   if t.state != TrialState.WAITING
                   and t.user_attrs.get("failure_kind") != "duplicate")


def accuracies(run_dir: Path) -> dict[str, str]:
    with open(run_dir / "trials.csv") as handle:
        return {row["candidate"]: row["val_accuracy"] for row in csv.DictReader(handle)}


def coefficients(run_dir: Path) -> tuple:
    doc = yaml.safe_load((run_dir / "coefficients.yaml").read_text())
    return doc["candidate"], doc["alpha"], doc["beta"], doc["gamma"], doc["val_accuracy"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, _session_cache_dir: Path) -> Path:
    """The same search, never interrupted (a subprocess, like the runs it is compared with)."""
    cwd = tmp_path_factory.mktemp("reference")
    environment = {**os.environ, "EFFSCALE_CACHE_DIR": str(_session_cache_dir),
                   "OMP_NUM_THREADS": "1"}
    done = run([*SMALL, "--out", "ref", "--quiet"], cwd, environment)
    assert done.returncode == 0, done.stderr
    return cwd / "ref"


def assert_matches_reference(run_dir: Path, reference: Path) -> None:
    study = load(run_dir)
    assert completed_per_item(study) == Counter(ITEMS)  # every item completed exactly once
    # The CPU trainer is bitwise deterministic for a fixed seed and thread count, so a
    # training that was killed and run again gives the never-killed run's numbers.
    assert accuracies(run_dir) == accuracies(reference)
    assert coefficients(run_dir) == coefficients(reference)


# --- kill -9, Ctrl-C ----------------------------------------------------------------------

@pytest.mark.slow
def test_sigkill_mid_training_then_rerun_trains_each_item_once(
        tmp_path: Path, env: dict[str, str], reference: Path) -> None:
    args = [*SMALL, "--out", "run"]
    process = start(args, tmp_path, env, EFFSCALE_TEST_STEP_DELAY="0.6")
    wait_for_line(process, r"\[2/4\] training")
    time.sleep(1.0)  # into the second training's first steps
    process.kill()
    process.wait()
    study = load(tmp_path / "run")
    running = [item_of(t) for t in study.get_trials(states=(TrialState.RUNNING,))]
    assert len(running) == 1 and sum(completed_per_item(study).values()) == 1

    again = run(args, tmp_path, env)
    assert again.returncode == 0, again.stderr
    assert "resuming run: 1 of 4 trainings already done" in again.stderr
    assert_matches_reference(tmp_path / "run", reference)
    study = load(tmp_path / "run")
    assert trained_per_item(study) == Counter({**dict.fromkeys(ITEMS, 1), running[0]: 2})
    died = [t for t in study.get_trials(states=(TrialState.FAIL,))]
    assert [(item_of(t), t.user_attrs["failure_kind"]) for t in died] == \
        [(running[0], "worker died")]


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_twice_stops_at_once_and_both_resume(
        tmp_path: Path, env: dict[str, str], reference: Path) -> None:
    args = [*SMALL, "--out", "run"]
    # Two Ctrl-C at once: the process stops at once; the claimed training is recovered.
    process = start(args, tmp_path, env, EFFSCALE_TEST_STEP_DELAY="0.6")
    wait_for_line(process, r"\[1/4\] training")
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    assert process.returncode in (130, -signal.SIGINT)

    # One Ctrl-C: the current training is released, the message says what is saved.
    process = start(args, tmp_path, env, EFFSCALE_TEST_STEP_DELAY="0.6")
    wait_for_line(process, r"\[2/4\] training")
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    message = [line for line in err.splitlines() if line.startswith("interrupted")]
    assert message == ["interrupted: 1 of 4 trainings are saved in run; the interrupted one "
                       "will run again. To continue, rerun the same command (or add --resume "
                       "run)"], err
    assert "Traceback" not in err
    study = load(tmp_path / "run")
    kinds = sorted(t.user_attrs.get("failure_kind") for t in
                   study.get_trials(states=(TrialState.FAIL,)))
    # The double Ctrl-C may land before or after the first one released its training: the
    # trial is then recovered as "worker died" or was already released as "interrupted".
    assert kinds in (["interrupted", "worker died"], ["interrupted", "interrupted"])
    assert not study.get_trials(states=(TrialState.RUNNING,))

    again = run([*SMALL, "--resume", "run"], tmp_path, env)
    assert again.returncode == 0, again.stderr
    assert_matches_reference(tmp_path / "run", reference)


# --- workers and many machines ------------------------------------------------------------

@pytest.mark.slow
def test_three_workers_and_a_joining_process_train_each_item_once(
        tmp_path: Path, env: dict[str, str]) -> None:
    args = [*SMALL, "--out", "run", "--quiet"]
    first = start([*args, "--workers", "3"], tmp_path, env, EFFSCALE_TEST_STEP_DELAY="0.4")
    time.sleep(3)
    joining = run(args, tmp_path, env, EFFSCALE_TEST_STEP_DELAY="0.4")  # "another machine"
    _, err = first.communicate(timeout=1800)
    assert first.returncode == 0, err
    assert joining.returncode == 0, joining.stderr
    study = load(tmp_path / "run")
    assert trained_per_item(study) == Counter(ITEMS)  # nobody trained an item twice
    assert completed_per_item(study) == Counter(ITEMS)
    workers = {t.system_attrs["effscale_worker"] for t in study.get_trials()
               if "effscale_worker" in t.system_attrs}
    assert len(workers) >= 2


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return candidates[-1].parent if candidates else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 (as root: run by the ``postgres`` or
    ``nobody`` user in a directory it owns), stopped at the end even when the test fails."""
    binaries = _postgres_bin()
    if binaries is None:
        pytest.skip("PostgreSQL's initdb is not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[dev]')")
    # Not under pytest's temp root: that is private to root, and the server runs as another
    # user who must reach its data directory.
    root = Path(tempfile.mkdtemp(prefix="effscale-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        import pwd

        user = next((u for u in ("postgres", "nobody") if _has_user(u)), "nobody")
        entry = pwd.getpwnam(user)
        for path in (root, sockets):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(root, 0o755)
        prefix = ["runuser", "-u", user, "--"]
    port = _free_port()
    subprocess.run([*prefix, str(binaries / "initdb"), "-D", str(data), "-U", "effscale",
                    "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
    ctl = [*prefix, str(binaries / "pg_ctl"), "-D", str(data)]
    subprocess.run([*ctl, "-w", "-l", str(root / "log"), "-o",
                    f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True, timeout=60)
    try:
        yield f"postgresql://effscale@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.mark.slow
def test_postgres_two_machines_complete_each_item_once_and_report(
        tmp_path: Path, env: dict[str, str], postgres: str) -> None:
    args = [*SMALL, "--storage", postgres, "--study", "shared", "--quiet"]
    machines = [start([*args, "--out", name], tmp_path, env, EFFSCALE_TEST_STEP_DELAY="0.3")
                for name in ("a", "b")]
    for machine in machines:
        _, err = machine.communicate(timeout=1800)
        assert machine.returncode == 0, err
    storage = optuna.storages.RDBStorage(postgres.replace("postgresql:", "postgresql+psycopg:"))
    study = optuna.load_study(study_name="shared", storage=storage)
    assert completed_per_item(study) == Counter(ITEMS)
    assert trained_per_item(study) == Counter(ITEMS)
    reported = run(["report", "--storage", postgres, "--study", "shared", "--out", "rep"],
                   tmp_path, env)
    assert reported.returncode == 0, reported.stderr
    assert "4 of 4 trainings settled" in reported.stderr
    assert accuracies(tmp_path / "rep") == accuracies(tmp_path / "a")


# --- failures and files -------------------------------------------------------------------

@pytest.mark.slow
def test_failed_candidates_are_recorded_and_the_search_goes_on(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EFFSCALE_TEST_FAULT", f"{DEPTH}@0=nan,{WIDTH}@0=error,{RES}@0=oom")
    at = SMALL.index("--batch-size")
    args = SMALL[:at] + SMALL[at + 2:]
    code, out, err = cli(*args, "--batch-size", "64", "--train-size", "128", "--out", "run")
    assert code == 0, err
    assert f"{RES}@0: out of memory at batch size 64; retried at 32" in err
    assert re.search(rf"failed: {re.escape(DEPTH)}: diverged: training loss became "
                     r"(nan|inf)", out), out
    assert f"failed: {WIDTH}: error: ValueError: injected failure" in out
    with open(tmp_path / "run" / "trials.csv") as handle:
        rows = {row["candidate"]: row for row in csv.DictReader(handle)}
    assert rows[DEPTH]["state"] == "fail"
    assert rows[RES]["state"] == "complete"
    assert yaml.safe_load((tmp_path / "run" / "coefficients.yaml").read_text())["candidate"] \
        == RES


@pytest.mark.slow
def test_kill_while_writing_outputs_leaves_whole_files(
        tmp_path: Path, env: dict[str, str]) -> None:
    args = [*SMALL, "--epochs", "1", "--out", "run", "--quiet"]
    process = start(args, tmp_path, env, EFFSCALE_TEST_WRITE_DELAY="1.5")
    run_dir = tmp_path / "run"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and not list(run_dir.glob(f"configs/*{atomic.TMP_MARK}*")):
        time.sleep(0.1)
    process.kill()
    process.wait()
    strays = list(run_dir.rglob(f"*{atomic.TMP_MARK}*"))
    assert strays, "the kill did not land while a file was being written"
    for path in run_dir.rglob("*"):
        if path.is_file() and atomic.TMP_MARK not in path.name and path.suffix == ".yaml":
            assert yaml.safe_load(path.read_text()), path  # whole: parses, not empty
            if path.parent.name == "configs":
                load_config(path)
    with open(run_dir / "trials.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 4
    reported = run(["report", "run"], tmp_path, env)
    assert reported.returncode == 0, reported.stderr
    assert not list(run_dir.rglob(f"*{atomic.TMP_MARK}*"))  # strays cleaned up
    assert len(list((run_dir / "configs").glob("*.yaml"))) == 8


def test_atomic_files_get_the_usual_permissions(tmp_path: Path) -> None:
    atomic.write_text(tmp_path / "x.yaml", "a: 1\n")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "x.yaml").stat().st_mode & 0o777 == 0o666 & ~mask


# --- the study: journal repair, locks, stale workers ---------------------------------------

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


def test_unreachable_storage_fails_fast(cli: Cli, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    with pytest.raises(EffscaleError) as err:
        open_storage("postgresql://u:secret@127.0.0.1:1/x", tmp_path)
    assert time.monotonic() - started < 10
    assert err.value.exit_code == 1 and "secret" not in str(err.value)
    assert str(err.value).startswith("cannot open storage postgresql+psycopg://u:***@127.0.0.1:1/x")


# --- bad inputs: one line, the right exit code, nothing written ----------------------------

def _fake_cifar(root: Path, truncate: bool = False) -> Path:
    from effscale.datasets import cifar10

    folder = root / cifar10.DIRNAME
    folder.mkdir(parents=True)
    meta = {b"num_cases_per_batch": 20, b"label_names": [b"c%d" % i for i in range(10)]}
    (folder / cifar10.META).write_bytes(pickle.dumps(meta, protocol=2))
    for name in cifar10.SPLIT_FILES["train"]:
        batch = {b"data": bytes(20 * 3072), b"labels": [0] * 20}
        data = pickle.dumps(batch, protocol=2)
        (folder / name).write_bytes(data[:500] if truncate else data)
    return root


def _different_run(cwd: Path) -> str:
    run = cwd / "old"
    run.mkdir()
    (run / "settings.yaml").write_text(yaml.safe_dump(
        {"fingerprint": "0000", "identity": {"budget": {"epochs": 9}, "dataset": "synthetic"},
         "status": "running"}))
    return "old"


SEARCH = ["search", "--dataset", "synthetic", "--budget", "smoke", "--tolerance", "0.01",
          "--quiet"]
CONFIG = "name: b0\nfamily: efficientnet\n"
BAD_INPUTS: list[tuple[str, Callable[[Path], list[str]], int, str]] = [
    ("missing config", lambda d: ["flops", "nope.yaml"], 2, "nope.yaml"),
    ("config is a directory", lambda d: ["flops", "."], 2, "."),
    ("malformed yaml", lambda d: _file(d, "c.yaml", "name: [b0\n", "flops"), 2, "c.yaml"),
    ("unknown key", lambda d: _cfg(d, "colour: red\n"), 2, "colour"),
    ("duplicate key", lambda d: _cfg(d, "name: b1\n"), 2, "name"),
    ("yaml 1.1 boolean", lambda d: _cfg(d, "activation: on\n"), 2, "a boolean; quote it"),
    ("wrong type", lambda d: _cfg(d, "resolution: '224'\n"), 2, "resolution"),
    ("non-finite number", lambda d: _cfg(d, "dropout: .nan\n"), 2, "dropout"),
    ("negative number", lambda d: _cfg(d, "resolution: -1\n"), 2, "resolution"),
    ("phi not a number", lambda d: ["derive", "--phi", "abc"], 2, "abc"),
    ("alpha below 1", lambda d: ["derive", "--alpha", "0.9", "--beta", "1.1", "--gamma",
                                 "1.1"], 2, "alpha"),
    ("empty feasible grid", lambda d: [*SEARCH, "--beta", "grid", "--tolerance", "0.001",
                                       "--alpha-max", "1.9"], 2, "--tolerance"),
    ("no beta reaches the target", lambda d: [*SEARCH, "--beta-max", "1.01", "--gamma-max",
                                              "1.0", "--alpha-max", "1.0"], 2, "--beta-max"),
    ("unknown base", lambda d: [*SEARCH, "--base", "b9"], 2, "b9"),
    ("unknown dataset", lambda d: [*SEARCH, "--dataset", "imagenet"], 2, "imagenet"),
    ("data dir without files", lambda d: [*SEARCH, "--dataset", "cifar10", "--data-dir",
                                          str(_mkdir(d / "empty"))], 1, "empty"),
    ("truncated batch", lambda d: [*SEARCH, "--dataset", "cifar10", "--data-dir",
                                   str(_fake_cifar(d / "cifar", truncate=True))], 2,
     "data_batch_1"),
    ("wrong md5", lambda d: [*SEARCH, "--dataset", "cifar10", "--data-dir",
                             str(d / "download")], 1, "MD5"),
    ("unwritable output dir", lambda d: [*SEARCH, "--out", str(_file(d, "f", "", "")[1]) +
                                         "/run"], 2, "cannot write"),
    ("run of another search", lambda d: [*SEARCH, "--out", _different_run(d)], 2,
     "budget.epochs: 9 -> 1"),
    ("unreachable storage", lambda d: [*SEARCH, "--storage",
                                       "postgresql://u:p@127.0.0.1:1/x"], 1, "127.0.0.1:1"),
    ("zero epochs", lambda d: [*SEARCH, "--epochs", "0"], 2, "--epochs"),
    ("report of a non-run", lambda d: ["report", str(_mkdir(d / "nothing"))], 2, "nothing"),
]


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _file(d: Path, name: str, text: str, command: str) -> list[str]:
    (d / name).write_text(text)
    return [command, name]


def _cfg(d: Path, line: str) -> list[str]:
    """configs/b0.yaml with ``line`` added (a new or repeated key) or replacing its key."""
    base = (REPO / "configs" / "b0.yaml").read_text()
    key = line.split(":")[0]
    text = base + line if key in ("colour", "name") else _replace_key(base, line)
    return _file(d, "c.yaml", text, "flops")


def _replace_key(text: str, line: str) -> str:
    key = line.split(":")[0]
    return re.sub(rf"(?m)^{key}:.*$", line.rstrip("\n"), text, count=1)


@pytest.mark.parametrize("name, make, code, needle", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line_with_exit_code_and_writes_nothing(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        name: str, make: Callable[[Path], list[str]], code: int, needle: str) -> None:
    from effscale.datasets import cifar10

    work = _mkdir(tmp_path / "work")
    monkeypatch.chdir(work)
    monkeypatch.setattr(cifar10, "BATCH_ROWS", 20)
    missing = tmp_path / "no-such-archive.tar.gz"
    wrong = tmp_path / "wrong.tar.gz"
    wrong.write_bytes(b"not cifar")
    monkeypatch.setattr(cifar10, "URL", (wrong if name == "wrong md5" else missing).as_uri())
    argv = make(work)
    before = sorted(p for p in work.rglob("*"))
    started = time.monotonic()
    result, out, err = cli(*argv)
    assert (result, out) == (code, ""), err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert needle in err and "Traceback" not in err
    assert sorted(p for p in work.rglob("*")) == before  # no partial output
    assert time.monotonic() - started < 60


# --- the grid: properties -----------------------------------------------------------------

steps = st.sampled_from([0.05, 0.1, 0.125, 0.2, 0.25])
maxima = st.floats(1.0, 2.5)
tolerances = st.floats(0.005, 1.0)


@settings(max_examples=40, deadline=None)
@given(alpha_max=maxima, beta_max=maxima, gamma_max=st.floats(1.0, 1.6), step=steps,
       tolerance=tolerances, resolution_step=st.sampled_from([None, 4, 8, 16]))
def test_every_feasible_triple_satisfies_the_constraint(
        alpha_max: float, beta_max: float, gamma_max: float, step: float, tolerance: float,
        resolution_step: int | None) -> None:
    spec = GridSpec(alpha_max, beta_max, gamma_max, step, tolerance, base_resolution=32,
                    resolution_step=resolution_step)
    try:
        triples = feasible_grid(spec)
    except EffscaleError:
        return
    assert len({(t.alpha, t.beta, t.resolution) for t in triples}) == len(triples)
    for t in triples:
        assert abs(t.alpha * t.beta**2 * t.gamma**2 - 2.0) < tolerance + 1e-9
        assert 1 <= t.alpha <= alpha_max + 1e-9 and 1 <= t.beta <= beta_max + 1e-9
        assert 1 <= t.gamma <= gamma_max + 1e-9
        assert t.resolution == round(32 * t.gamma)


@settings(max_examples=40, deadline=None)
@given(step=steps, low=tolerances, high=tolerances)
def test_feasible_set_grows_with_the_tolerance(step: float, low: float, high: float) -> None:
    low, high = min(low, high), max(low, high)

    def keys(tolerance: float) -> set[str]:
        try:
            return {t.key for t in feasible_grid(GridSpec(step=step, tolerance=tolerance))}
        except EffscaleError:
            return set()

    assert keys(low) <= keys(high)


@settings(max_examples=60, deadline=None)
@given(maximum=st.floats(1.0, 3.0), step=st.floats(0.01, 1.0))
def test_axis_starts_at_one_steps_evenly_and_stays_in_range(maximum: float, step: float
                                                            ) -> None:
    values = axis(maximum, step)
    assert values[0] == 1.0 and values[-1] <= maximum + 1e-9
    assert all(abs((b - a) - step) < 1e-5 for a, b in itertools.pairwise(values))
    assert maximum - values[-1] < step + 1e-9  # nothing left out at the top


@settings(max_examples=40, deadline=None)
@given(base=st.integers(8, 256), gamma_max=st.floats(1.0, 2.0), size_step=st.integers(1, 32))
def test_gamma_axis_sizes_are_distinct_multiples_of_the_step(base: int, gamma_max: float,
                                                             size_step: int) -> None:
    spec = GridSpec(gamma_max=gamma_max, base_resolution=base, resolution_step=size_step)
    pairs = gamma_axis(spec)
    sizes = [size for _, size in pairs]
    assert sizes[0] == base and len(set(sizes)) == len(sizes)
    assert all((size - base) % size_step == 0 and size <= base * gamma_max + 1e-6
               for size in sizes)
    assert all(abs(gamma * base - size) < 1e-3 for gamma, size in pairs)


def test_a_worker_process_error_is_one_logged_line_and_its_exit_code(
        caplog: pytest.LogCaptureFixture) -> None:
    from effscale.errors import EffscaleError
    from effscale.experiment.workers import exit_worker

    with caplog.at_level("ERROR", logger="effscale"), pytest.raises(SystemExit) as stop:
        exit_worker(EffscaleError("storage went away"))
    assert stop.value.code == EffscaleError("x").exit_code
    [record] = caplog.records
    assert record.getMessage().endswith(": storage went away")
    assert record.getMessage().startswith("error: worker ")
