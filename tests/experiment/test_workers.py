"""Extra worker processes: an error in one is one logged line and its exit code."""

from __future__ import annotations

import os
from pathlib import Path

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


class _Finished:
    """A spawned worker that has ended with ``exitcode``."""

    def __init__(self, exitcode: int) -> None:
        self.exitcode = exitcode

    def join(self) -> None: ...


@pytest.mark.parametrize(("exitcodes", "said"), [
    ((0, 0), []),
    ((2, 0), ["warning: 1 of 2 extra worker(s) stopped early (exit code 2); this process "
              "trained their share"]),
    ((2, -9), ["warning: 2 of 2 extra worker(s) stopped early (exit code 2, -9); this "
               "process trained their share"]),
])
def test_a_run_whose_extra_workers_stopped_early_says_so(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, exitcodes: tuple[int, ...],
        said: list[str]) -> None:
    """The answer is whole (the main process trains what they leave), but the run took
    longer than --workers asked for. Before, only the workers' own error lines said so, and
    nothing at all when one was killed."""
    from effscale.experiment import engine
    from effscale.experiment.budgets import budget_recipe, get_budget
    from effscale.experiment.events import RunEvents
    from effscale.experiment.settings import RunSettings

    monkeypatch.setattr(engine, "start_workers",
                        lambda count, *args: [_Finished(code) for code in exitcodes][:count])
    monkeypatch.setattr(engine, "work", lambda *args, **kwargs: None)
    budget = get_budget("smoke")

    class Experiment:
        settings = RunSettings(base="b0", dataset="synthetic", budget=budget,
                               recipe=budget_recipe(budget), workers=3, device="cpu")

    class Prepared:
        run_dir = tmp_path

    class Events(RunEvents):
        def __init__(self) -> None:
            self.lines: list[str] = []

        def message(self, text: str) -> None:
            self.lines.append(text)

    events = Events()
    engine._work_with_workers(Experiment(), Prepared(), None, events)  # type: ignore[arg-type]
    assert events.lines == said
