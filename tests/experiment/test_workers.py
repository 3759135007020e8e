"""Extra worker processes: an error in one is one logged line and its exit code."""

from __future__ import annotations

import os

import pytest


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


def test_threads_follow_omp_num_threads_and_otherwise_split_the_cores(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, the cores are split between the workers; set, OMP_NUM_THREADS is what this
    process was given (a parallel test runner's workers had each taken both cores)."""
    from effscale.experiment.workers import default_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert (default_threads(1), default_threads(2), default_threads(16)) == (8, 4, 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert (default_threads(1), default_threads(2)) == (3, 3)
    for junk in ("", "0", "two", "-1"):
        monkeypatch.setenv("OMP_NUM_THREADS", junk)
        assert default_threads(2) == 4, junk
