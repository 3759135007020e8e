"""A search run survives kill -9, Ctrl-C, several workers, PostgreSQL, failing candidates
and kills while writing (issue 4): every work item trains once and the answer is the
never-interrupted run's.

The tests run ``effscale`` in real subprocesses on the embedded synthetic dataset with tiny
settings (4 trainings of about a second each, on the tests' tiny base), so every one is marked slow.
``EFFSCALE_TEST_STEP_DELAY`` makes a training slow enough to be killed mid-way; it only
sleeps, so results are unchanged. The study's pieces have their own files: the queue
(test_queue.py), the journal and its lock (test_storage.py), atomic writes
(tests/test_atomic.py), bad inputs (tests/cli/test_bad_inputs.py) and the grid's properties
(tests/search/test_grid_properties.py).
"""

from __future__ import annotations

import csv
import os
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
from optuna.trial import TrialState
from tiny_base import PLUGIN_ENV

from effscale import atomic
from effscale.experiment.queue import item_of
from effscale.experiment.storage import open_storage
from effscale.model.config import load_config

Cli = Callable[..., tuple[int, str, str]]

# The tests' small base (tests/tiny_base.py: a training step takes a fraction of b0's),
# base + 3 candidates at 2x full-size FLOPs (the smoke grid with alpha up to 1.4 and gamma up
# to 1.2: width, depth + width, resolution + width at 24 px); the screening alone.
SMALL = ["search", "--base", "tiny", "--dataset", "synthetic", "--budget", "smoke",
         "--train-size", "64", "--val-size", "32", "--epochs", "2", "--batch-size", "32",
         "--alpha-max", "1.4", "--gamma-max", "1.2", "--threads", "1", "--workers", "1",
         "--confirm-top", "0"]
DEPTH, WIDTH, RES = "a1.40_b1.11_g1.000", "a1.00_b1.42_g1.000", "a1.00_b1.22_g1.200"
ITEMS = {"base@0", f"{DEPTH}@0", f"{WIDTH}@0", f"{RES}@0"}


# --- helpers ------------------------------------------------------------------------------

@pytest.fixture
def env(_session_cache_dir: Path) -> dict[str, str]:
    """Subprocess environment: the session's cache (FLOPs measured once), one torch thread,
    the tiny base as a plugin (in every worker process too)."""
    values = {k: v for k, v in os.environ.items() if not k.startswith("EFFSCALE_TEST_")}
    values.update(EFFSCALE_CACHE_DIR=str(_session_cache_dir), OMP_NUM_THREADS="1",
                  PYTHONUNBUFFERED="1", **PLUGIN_ENV)
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
                   "OMP_NUM_THREADS": "1", **PLUGIN_ENV}
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
    # no worker died on the way (a spawned worker that did not import the plugins stopped at
    # "unknown base 'tiny'" and left its share to the others)
    assert "error:" not in err and "error:" not in joining.stderr, err
    # nor ran the command line twice (runpy's warning, once per spawned worker)
    assert "RuntimeWarning" not in err, err
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
    # the answer comes from what completed: RES, or a model the edge refinement trained
    # past it (RES lies on the grid's gamma bound)
    winner = yaml.safe_load((tmp_path / "run" / "coefficients.yaml").read_text())["candidate"]
    assert winner not in (DEPTH, WIDTH) and rows[winner]["state"] == "complete"


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
