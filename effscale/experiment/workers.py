"""Processes and signals: threads per worker, extra ``--workers`` processes, their devices,
Ctrl-C once.

A run's main process works on its study itself and starts ``workers - 1`` extra processes
(spawned, so they re-import cleanly) that prepare the same experiment and claim items from
the same study. A Ctrl-C at the terminal reaches the main process alone (each worker runs in
its own process group); it releases its current item and passes the interrupt on once.

Devices (:func:`plan_workers`, :func:`assign_devices`): ``--devices`` lists the CUDA GPUs
(``auto``: every visible one); without it, every worker uses ``--device``. The workers are
``--workers`` when given, else one per device times ``--workers-per-device``; worker ``i``
(the main process is worker 0) runs on ``devices[i // per_device]``, so consecutive workers
share a GPU. ``--devices 0,1 --workers 4`` gives cuda:0, cuda:0, cuda:1, cuda:1.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from effscale.devices import resolve_device
from effscale.errors import EffscaleError
from effscale.experiment.settings import RunSettings
from effscale.plugins import load_plugins
from effscale.train.levers import device_defaults


def omp_threads() -> int | None:
    """``OMP_NUM_THREADS`` when it is set to a positive whole number (what a shared machine,
    a batch system or a parallel test runner gives each process), else ``None``."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def available_cores() -> int:
    """The cores this process may run on (its affinity where the OS tells, else all)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1)


def default_threads(workers: int) -> int:
    """Torch threads per training process when ``--threads`` is not given: the process's
    ``OMP_NUM_THREADS`` if set, else the machine's cores split between the workers."""
    from_env = omp_threads()
    if from_env is not None:
        return from_env
    return max(1, available_cores() // workers)


def set_threads(settings: RunSettings) -> None:
    """Torch's threads for this process: ``--threads``, else :func:`default_threads`."""
    torch.set_num_threads(settings.threads or default_threads(settings.workers))


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


def start_workers(count: int, target: Callable[..., None], args: tuple[Any, ...],
                  per_worker: Sequence[tuple[Any, ...]] = ()) -> list[Any]:
    """``count`` spawned processes running ``target(*args, *per_worker[i])`` (nothing when
    ``count`` < 1; ``per_worker`` empty: ``target(*args)``)."""
    context = multiprocessing.get_context("spawn")
    processes = []
    for index in range(count):
        more = per_worker[index] if per_worker else ()
        process = context.Process(target=_spawned, args=(target, *args, *more), daemon=False)
        process.start()
        processes.append(process)
    return processes


def _spawned(target: Callable[..., None], *args: Any) -> None:
    """A spawned process starts from a bare interpreter: it imports the plugins
    (:mod:`effscale.plugins`) before ``target``, so it knows the bases and datasets they
    register, as the process that started it does."""
    load_plugins()
    target(*args)


def stopped_early(processes: Sequence[Any]) -> list[int]:
    """The non-zero exit codes of finished ``processes`` (a signal's death is negative)."""
    return [process.exitcode for process in processes if process.exitcode]


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


# --------------------------------------------------------------------------- devices


def parse_devices(text: str | None, device: str = "auto") -> tuple[int, ...] | None:
    """``--devices``: None when not given, ``auto`` every visible CUDA GPU, ``0,1`` those
    GPUs. An error (one line) on a machine without CUDA, with ``--device cpu``, and for a GPU
    index that is not visible or given twice."""
    if text is None:
        return None
    if device == "cpu":
        raise EffscaleError("--devices lists CUDA GPUs; it does not go with --device cpu")
    if not torch.cuda.is_available():
        raise EffscaleError("--devices: no CUDA GPU is available (on the CPU, use --workers)")
    visible = torch.cuda.device_count()
    if text.strip().lower() == "auto":
        return tuple(range(visible))
    try:
        indices = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise EffscaleError(f"--devices must be auto or a comma list of GPU indices like 0,1; "
                            f"got {text!r}") from None
    wrong = [i for i in indices if not 0 <= i < visible]
    if wrong:
        raise EffscaleError(f"--devices {text}: no GPU {wrong[0]} (visible: 0 to {visible - 1})")
    if len(set(indices)) != len(indices):
        raise EffscaleError(f"--devices {text}: a GPU is listed twice (use "
                            "--workers-per-device for several workers on one GPU)")
    return indices


def plan_workers(workers: int | None, devices: tuple[int, ...] | None,
                 per_device: int | None, device: str = "auto",
                 threads: int | None = None) -> tuple[int, int]:
    """``(workers, workers per device)`` from ``--workers``, ``--devices`` and
    ``--workers-per-device`` (None: not given). With D devices (``--devices``, else the one of
    ``--device``): ``--workers`` W alone spreads W workers in blocks of ceil(W / D);
    ``--workers-per-device`` N alone runs D × N; both run W, N per device (W <= D × N);
    neither runs the device type's default per device (``DEVICE_DEFAULTS``' ``workers`` in
    :mod:`effscale.train.levers`: 1 per CUDA GPU; 2 on a CPU, but never more processes than
    the available cores hold at ``threads`` (``--threads``, else ``OMP_NUM_THREADS``) each)."""
    count = len(devices) if devices else 1
    if any(value is not None and value < 1 for value in (workers, per_device)):
        raise EffscaleError("--workers and --workers-per-device must be >= 1")
    if workers is None:
        kind = torch.device("cuda") if devices else resolve_device(device)
        if per_device is None:
            per_device = device_defaults(kind).workers
            if kind.type == "cpu":
                each = threads or omp_threads() or 1
                per_device = max(1, min(per_device, available_cores() // each))
        return count * per_device, per_device
    if per_device is None:
        return workers, math.ceil(workers / count)
    if workers > count * per_device:
        raise EffscaleError(f"--workers {workers} is more than {count} device(s) × "
                            f"--workers-per-device {per_device}")
    return workers, per_device


def assign_devices(workers: int, devices: Sequence[int], per_device: int) -> list[str]:
    """The device of each worker (the main process is worker 0): worker ``i`` runs on
    ``cuda:{devices[i // per_device]}``. ``assign_devices(4, (0, 1), 2)`` is cuda:0, cuda:0,
    cuda:1, cuda:1."""
    if not devices or per_device < 1 or workers > len(devices) * per_device:
        raise ValueError(f"{workers} workers do not fit on devices {tuple(devices)} at "
                         f"{per_device} per device")
    return [f"cuda:{devices[i // per_device]}" for i in range(workers)]


def worker_devices(settings: RunSettings) -> list[torch.device]:
    """The device of each of the run's workers: :func:`assign_devices` over
    ``settings.devices``, or ``settings.device`` for all when no devices are listed."""
    if settings.devices is None:
        return [resolve_device(settings.device)] * settings.workers
    if settings.device == "cpu" or not torch.cuda.is_available():
        parse_devices(",".join(map(str, settings.devices)), settings.device)  # its error
    try:
        names = assign_devices(settings.workers, settings.devices, settings.workers_per_device)
    except ValueError as exc:
        raise EffscaleError(str(exc)) from None
    return [torch.device(name) for name in names]


def use_device(device: torch.device) -> None:
    """Make ``device`` this process's current CUDA device (so capability checks and the
    caching allocator refer to it); nothing for other devices."""
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
