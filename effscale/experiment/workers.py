"""Processes and signals: threads per worker, extra ``--workers`` processes, Ctrl-C once.

A run's main process works on its study itself and starts ``workers - 1`` extra processes
(spawned, so they re-import cleanly) that prepare the same experiment and claim items from
the same study. A Ctrl-C at the terminal reaches the main process alone (each worker runs in
its own process group); it releases its current item and passes the interrupt on once.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from effscale.errors import EffscaleError
from effscale.experiment.settings import RunSettings


def set_threads(settings: RunSettings) -> None:
    """Split the machine's cores between the workers on it."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = settings.threads or max(1, (cores or 1) // settings.workers)
    torch.set_num_threads(threads)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during the trainings: what is saved and where, for the message and a resume."""

    def __init__(self, run_dir: Path, counts: dict[str, int]) -> None:
        super().__init__(str(run_dir))
        self.run_dir, self.counts = run_dir, counts


@contextlib.contextmanager
def interrupt_once() -> Iterator[None]:
    """The first Ctrl-C raises KeyboardInterrupt, so the current training is released and
    the run stops cleanly; the handler then steps aside, so a second Ctrl-C stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def first(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is first:
            signal.signal(signal.SIGINT, previous)


def exit_worker(exc: EffscaleError) -> None:
    """End a spawned ``--workers`` process on an effscale error. There is no CLI above it to
    render the error, so it goes to the ``effscale`` logger (one line on stderr through
    logging's last-resort handler unless the application configured logging)."""
    logging.getLogger("effscale").error("error: worker %d: %s", os.getpid(), exc)
    sys.exit(exc.exit_code)


def start_workers(count: int, target: Callable[..., None], args: tuple[Any, ...]
                  ) -> list[Any]:
    """``count`` spawned processes running ``target(*args)`` (nothing when ``count`` < 1)."""
    context = multiprocessing.get_context("spawn")
    processes = []
    for _ in range(count):
        process = context.Process(target=target, args=args, daemon=False)
        process.start()
        processes.append(process)
    return processes


def stop_workers(processes: list[Any], grace_s: float = 30) -> None:
    """Pass a Ctrl-C on to the extra workers once and give them time to release their
    trainings; whatever is still running after that is terminated (and recovered on resume)."""
    for process in processes:
        if process.is_alive() and process.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGINT)
    deadline = time.monotonic() + grace_s
    for process in processes:
        process.join(max(0.1, deadline - time.monotonic()))
        if process.is_alive():
            process.terminate()
