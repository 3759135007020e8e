"""What every command that runs the engine shows and does around it: live progress, the first
Ctrl-C (what was saved and how to continue), a run that stopped before its end."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from effscale.cli import render
from effscale.errors import EffscaleError
from effscale.experiment.engine import Outcome
from effscale.experiment.events import RunEvents
from effscale.experiment.workers import RunInterrupted, interrupt_once


class RichEvents(RunEvents):
    """Live view on a terminal, plain log lines otherwise, nothing with --quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.live = render.err.is_terminal and not quiet
        self.progress: Progress | None = None
        self.overall = self.current = None
        self.last_log = 0.0

    def message(self, text: str) -> None:
        if not self.quiet:
            render.err.print(text, markup=False, highlight=False)

    def measuring(self, done: int, total: int) -> None:
        if not self.quiet and (done == total or time.monotonic() - self.last_log > 5):
            self.last_log = time.monotonic()
            render.err.print(f"measured FLOPs of {done}/{total} candidate models", markup=False)

    def _start(self, total: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=render.err, transient=False)
        self.progress.start()
        self.overall = self.progress.add_task("trainings", total=total)
        self.current = self.progress.add_task("current", total=1)

    def trial_start(self, item: str, candidate: Any, counts: dict[str, int]) -> None:
        if self.quiet:
            return
        if self.live:
            if self.progress is None:
                self._start(counts["items"])
            self.progress.update(self.overall, completed=counts["settled"], total=counts["items"])
            self.progress.update(self.current, description=f"{item} @{candidate.resolution}px",
                                 completed=0)
        else:
            render.err.print(f"[{counts['settled'] + 1}/{counts['items']}] training {item} "
                             f"({candidate.params:,} params, FLOPs ×{candidate.flops_ratio:.2f} "
                             f"at {candidate.full_resolution}px, trained at "
                             f"{candidate.resolution}px)", markup=False)

    def step(self, epoch: int, epochs: int, step: int, steps: int) -> None:
        if self.live and self.progress is not None:
            self.progress.update(self.current, completed=epoch * steps + step,
                                 total=epochs * steps)

    def epoch_end(self, item: str, epoch: int, epochs: int, accuracy: float) -> None:
        if self.quiet:
            return
        text = f"    {item} epoch {epoch}/{epochs}: val acc {accuracy:.2%}"
        if self.live and self.progress is not None:
            self.progress.console.print(text, markup=False)
        else:
            render.err.print(text, markup=False)

    def trial_end(self, item: str, outcome: str, accuracy: float | None, seconds: float) -> None:
        if self.quiet:
            return
        text = f"{item}: {outcome}" + (f", val acc {accuracy:.2%}" if accuracy is not None
                                       else "") + f" ({seconds:.0f} s)"
        if self.live and self.progress is not None:
            self.progress.advance(self.overall)
            self.progress.console.print(text, markup=False)
        else:
            render.err.print(text, markup=False)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def run_with_progress(start: Callable[[], Outcome], events: RichEvents) -> Outcome:
    """Run ``start()`` (a search or a comparison) under the first-Ctrl-C handler; an
    interrupt ends the command with exit code 130 and says how to continue."""
    try:
        with interrupt_once():  # a second Ctrl-C stops at once
            return start()
    except RunInterrupted as stop:
        events.close()
        counts = stop.counts
        render.err.print(
            f"interrupted: {counts['settled']} of {counts['items']} trainings are saved in "
            f"{stop.run_dir}; the interrupted one will run again. To continue, rerun the same "
            f"command (or add --resume {stop.run_dir})", markup=False, highlight=False)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        events.close()
        render.err.print("interrupted before any training started; nothing to resume",
                         markup=False)
        raise typer.Exit(130) from None
    finally:
        events.close()


def report_end(outcome: Outcome, command: str, started: float) -> None:
    """The wall time of a finished run; an error (exit 1) when items are still unsettled."""
    if not outcome.complete:
        raise EffscaleError(f"{outcome.run_dir}: {outcome.counts['settled']} of "
                            f"{outcome.counts['items']} trainings settled; rerun to continue", 1)
    render.err.print(f"{command} finished in {(time.monotonic() - started) / 60:.1f} min",
                     markup=False)


def dry_run_line(outcome: Outcome) -> None:
    render.err.print(f"dry run: {outcome.counts['items']} trainings would run in "
                     f"{outcome.run_dir}", markup=False)


