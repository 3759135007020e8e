"""Real failures on demand, for the tests of the failure paths (never set by users).

``EFFSCALE_TEST_FAULT="base@0=nan,a2.00_b1.00_g1.000@0=oom"`` makes chosen work items fail for
real (``nan``: a learning rate that diverges; ``oom``: the allocator error in a training step
above batch size 32; ``evaloom``: the allocator error in evaluation above evaluation batch size
128; ``error``: any other exception). ``EFFSCALE_TEST_STEP_DELAY`` (seconds per step) makes a
training slow enough for a test to kill it mid-way.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any

from effscale.train.memory import oom_error
from effscale.train.trainer import EvalHook, Recipe

OOM_ABOVE = 32  # ``oom``: training steps above this batch size fail
EVAL_OOM_ABOVE = 128  # ``evaloom``: evaluation batches above this size fail


def active_faults() -> dict[str, str]:
    spec = os.environ.get("EFFSCALE_TEST_FAULT", "")
    return dict(part.split("=", 1) for part in spec.split(",") if "=" in part)


def fault_recipe(item: str, recipe: Recipe) -> Recipe:
    """``recipe``, or for a ``nan`` fault one whose learning rate diverges."""
    if active_faults().get(item) != "nan":
        return recipe
    return replace(recipe, optimizer="sgd", lr=1e12)


def with_test_hooks(step: Any, item: str, batch_size: int) -> Any:
    """The progress callback, plus the ``oom``/``error`` faults and the step delay."""
    fault = active_faults().get(item)
    delay = float(os.environ.get("EFFSCALE_TEST_STEP_DELAY", "0") or 0)
    if fault not in ("oom", "error") and not delay:
        return step

    def hooked(epoch: int, epochs: int, index: int, steps: int) -> None:
        if fault == "oom" and batch_size > OOM_ABOVE:
            raise oom_error()
        if fault == "error":
            raise ValueError("injected failure")
        time.sleep(delay)
        step(epoch, epochs, index, steps)

    return hooked


def eval_fault_hook(item: str) -> EvalHook | None:
    """For an ``evaloom`` fault, the evaluation hook that raises the allocator error above
    evaluation batch size :data:`EVAL_OOM_ABOVE`; else None."""
    if active_faults().get(item) != "evaloom":
        return None

    def hook(batch_size: int) -> None:
        if batch_size > EVAL_OOM_ABOVE:
            raise oom_error()

    return hook
