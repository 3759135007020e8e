"""Timing a call on a busy machine: warm-up, repeated timings, the median and the spread.

A measurement stops as soon as the relative spread (IQR / median) of its timings is at or
below the plan's bound, or at a time or repeat limit, in which case it says so. On a GPU each
call is timed with CUDA events; on the CPU with ``time.perf_counter``. The timer is a plain
callable, so tests pass a fake one and time nothing (see :mod:`effscale.model.cost`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from effscale.errors import EffscaleError

SPREAD_SAMPLES = 3  # fewer timed calls cannot show a spread: never "converged"

Timer = Callable[[Callable[[], object]], float]  # calls the function once; its seconds


@dataclass(frozen=True)
class TimingPlan:
    """How a timed cost is measured: ``warmup`` untimed calls, then at least ``min_repeats``
    timed ones, until ``IQR / median <= spread``; it gives up after ``max_repeats`` calls or
    ``max_seconds`` of timed calls, and says so."""

    warmup: int = 3
    min_repeats: int = 7
    max_repeats: int = 200
    spread: float = 0.05
    max_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.min_repeats < 1 or self.max_repeats < self.min_repeats:
            raise EffscaleError(f"timing plan: need warmup >= 0 and 1 <= min_repeats <= "
                                f"max_repeats, got {self.warmup}/{self.min_repeats}/"
                                f"{self.max_repeats}")
        if not self.spread > 0 or not self.max_seconds > 0:
            raise EffscaleError("timing plan: the spread bound and the time limit must be > 0")


@dataclass(frozen=True)
class Timing:
    """Repeated timings of one call: median and spread in seconds, and whether the spread
    came under the bound (``converged``) or a limit stopped it first (``stopped_by``)."""

    median: float
    iqr: float
    samples: tuple[float, ...]
    warmup: int
    spread_bound: float
    converged: bool
    stopped_by: str = ""  # "", "time limit" or "repeat limit"
    seconds: float = 0.0  # wall time of the timed repeats

    @property
    def repeats(self) -> int:
        return len(self.samples)

    @property
    def rel_spread(self) -> float:
        return relative_spread(self.samples)

    def note(self) -> str:
        """Empty when the bound was met; else what was reached instead."""
        if self.converged:
            return ""
        if self.repeats < SPREAD_SAMPLES:
            return (f"only {self.repeats} timed call(s), too few to measure a spread "
                    f"({self.stopped_by}); the median is shown anyway")
        return (f"could not get the spread (IQR/median) to {self.spread_bound:.0%} or below: "
                f"{self.rel_spread:.1%} after {self.repeats} repeats in {self.seconds:.1f} s "
                f"({self.stopped_by}); the median is shown anyway")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "samples": list(self.samples)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timing:
        return cls(**{**data, "samples": tuple(float(s) for s in data["samples"])})


def relative_spread(samples: list[float] | tuple[float, ...]) -> float:
    """IQR / median (``inf`` when the median is not positive)."""
    q25, median, q75 = np.percentile(np.asarray(samples, dtype=float), [25, 50, 75])
    return float((q75 - q25) / median) if median > 0 else float("inf")


def cpu_timer(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cuda_timer(device: torch.device) -> Timer:
    """Times a call with CUDA events recorded around it on the current stream."""

    def timer(fn: Callable[[], object]) -> float:
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0

    return timer


def time_repeated(fn: Callable[[], object], plan: TimingPlan, timer: Timer = cpu_timer,
                  clock: Callable[[], float] = time.monotonic) -> Timing:
    """Warm up, then time ``fn`` until the spread rule of ``plan`` stops it."""
    for _ in range(plan.warmup):
        timer(fn)
    samples: list[float] = []
    start = clock()
    while True:
        samples.append(float(timer(fn)))
        if len(samples) < plan.min_repeats:
            continue
        elapsed = clock() - start
        spread = relative_spread(samples) if len(samples) >= SPREAD_SAMPLES else float("inf")
        stopped = ("" if spread <= plan.spread else "repeat limit"
                   if len(samples) >= plan.max_repeats else "time limit"
                   if elapsed >= plan.max_seconds else None)
        if stopped is not None:
            q25, median, q75 = np.percentile(samples, [25, 50, 75])
            return Timing(float(median), float(q75 - q25), tuple(samples), plan.warmup,
                          plan.spread, stopped == "", stopped, round(elapsed, 3))
