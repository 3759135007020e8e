"""Runs the report tests read: a finished smoke search and a finished smoke comparison (trained
once per session, on the synthetic set), and a copy of either made to look mid-run."""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from shared_runs import shared_run

from effscale.cli.main import main_entry
from effscale.experiment.queue import ITEM_PARAM
from effscale.experiment.rundir import SETTINGS_FILE
from effscale.report.load import open_run_study

# On the tests' tiny base (tests/tiny_base.py): the pages and maps read the five models'
# weights and accuracies, whatever base they scale.
SMOKE_COMPARE = ("compare", "--base", "tiny", "--dataset", "synthetic", "--budget", "smoke",
                 "--counter", "torch", "--train-size", "128", "--val-size", "64",
                 "--batch-size", "32", "--epochs", "1", "--repeats", "1", "--threads", "1",
                 "--quiet")


def run_cli(*argv: str | Path) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main_entry([str(a) for a in argv])
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="session")
def smoke_search(smoke_search_run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the finished smoke search every test process shares (tests/shared_runs.py),
    this process's own: report tests write report.html into it."""
    assert smoke_search_run.code == 0, smoke_search_run.stderr
    out = tmp_path_factory.mktemp("report-runs") / "search"
    shutil.copytree(smoke_search_run.out, out)
    return out


@pytest.fixture(scope="session")
def smoke_compare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy, this process's own, of a finished smoke comparison with its weights, trained
    once for every test process (tests/shared_runs.py)."""
    run = shared_run(tmp_path_factory, "smoke-compare", *SMOKE_COMPARE)
    assert run.code == 0, run.stderr
    out = tmp_path_factory.mktemp("report-runs") / "compare"
    shutil.copytree(run.out, out)
    return out


@pytest.fixture
def in_progress() -> Callable[[Path, Path, list[str], list[str]], Path]:
    """``in_progress(run, copy, running, waiting)``: a copy of ``run`` as a run looks mid-way:
    ``running`` items claimed by a worker that has not reported yet, ``waiting`` items not
    started, settings.yaml saying "running"."""
    return _in_progress


def _in_progress(run: Path, copy: Path, running: list[str], waiting: list[str]) -> Path:
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("weights", "report.html"))
    study = open_run_study(copy)
    for item in [*running, *waiting]:
        study.enqueue_trial({ITEM_PARAM: item}, skip_if_exists=False)
    for _ in running:
        study.ask()  # claims the oldest waiting item, as a worker does
    settings = yaml.safe_load((copy / SETTINGS_FILE).read_text())
    (copy / SETTINGS_FILE).write_text(yaml.safe_dump({**settings, "status": "running"},
                                                     sort_keys=False))
    return copy
