"""Out-of-memory handling shared by every training path (the trial runner, successive halving,
the proxy trainer's evaluation): recognise the error on any torch from 2.1, shrink, free, retry.

The one retry rule:

- **Out of memory while training**: the training starts over with half the batch and half
  the learning rate. The learning rate follows the batch by the linear scaling rule (Goyal et
  al. 2017, "Accurate, Large Minibatch SGD": when the batch is multiplied by k, multiply the
  learning rate by k), so a retried candidate is trained under the same recipe scaled, not
  under a larger effective learning rate than its rivals. The rule was stated for SGD; the
  proxy's AdamW is scaled the same way here, which keeps the learning rate per example fixed.
- **Out of memory while evaluating**: only the evaluation is retried, at half the evaluation
  batch (no retraining; the smaller evaluation batch is kept for the rest of that training).
- Either stops at :data:`SMALLEST_BATCH`: :class:`OutOfMemory`, a failure of kind
  ``"out of memory"``.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import torch

SMALLEST_BATCH = 8
FAILURE_KIND = "out of memory"


def oom_types() -> tuple[type[BaseException], ...]:
    """The allocator's exception classes on this torch, read when called:
    ``torch.OutOfMemoryError`` from torch 2.5, ``torch.cuda.OutOfMemoryError`` before (the
    same class from 2.5 on). ``torch.OutOfMemoryError`` alone raises AttributeError in an
    ``except`` clause on torch 2.1-2.4."""
    found = getattr(torch, "OutOfMemoryError", None) \
        or getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    return (found,) if isinstance(found, type) else ()


def oom_error(message: str = "CUDA out of memory. Tried to allocate 2.00 GiB") -> BaseException:
    """An allocator error as this torch raises it (for fault injection)."""
    types = oom_types()
    return types[0](message) if types else RuntimeError(message)


class OutOfMemory(RuntimeError):
    """Out of memory even at :data:`SMALLEST_BATCH`: the retries are spent."""

    kind = FAILURE_KIND


def is_oom(exc: BaseException) -> bool:
    """An allocator failure: one of :func:`oom_types`, or a RuntimeError that says so (what
    torch raised before it had a class for it, and what cuDNN/cuBLAS wrappers still raise).
    :class:`OutOfMemory` (the retries are spent) is not one to retry."""
    if isinstance(exc, OutOfMemory):
        return False
    types = oom_types()
    if types and isinstance(exc, types):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class Shrinkable(Protocol):
    """What the retry rule changes: a recipe's batch size and learning rate."""

    batch_size: int
    lr: float


R = TypeVar("R", bound=Shrinkable)
T = TypeVar("T")
S = TypeVar("S")


@dataclass(frozen=True)
class Retry:
    """One shrink after an out-of-memory error: what ran out (``training`` or ``evaluation``)
    and the sizes before and after (``lr``: None for an evaluation)."""

    phase: str
    batch_size: int
    new_batch_size: int
    lr: float | None = None
    new_lr: float | None = None

    @property
    def note(self) -> str:
        """One line for the trial and the progress output."""
        if self.phase == "evaluation":
            return (f"out of memory in evaluation at batch size {self.batch_size}; evaluated at "
                    f"{self.new_batch_size}")
        return (f"out of memory at batch size {self.batch_size}; retried at "
                f"{self.new_batch_size} with learning rate {self.new_lr:.4g} (was {self.lr:.4g}; "
                "linear scaling rule)")


def smaller(batch_size: int) -> int | None:
    """Half ``batch_size``, not below :data:`SMALLEST_BATCH`; None when already there."""
    if batch_size <= SMALLEST_BATCH:
        return None
    return max(SMALLEST_BATCH, batch_size // 2)


def shrink_training(recipe: R) -> tuple[R, Retry] | None:
    """``recipe`` with half the batch and the learning rate scaled by the same factor (the
    linear scaling rule, Goyal et al. 2017: lr ∝ batch), and the :class:`Retry` that says so;
    None at :data:`SMALLEST_BATCH`."""
    batch = smaller(recipe.batch_size)
    if batch is None:
        return None
    lr = recipe.lr * batch / recipe.batch_size
    shrunk = replace(recipe, batch_size=batch, lr=lr)  # type: ignore[type-var]
    return shrunk, Retry("training", recipe.batch_size, batch, recipe.lr, lr)


def free_memory(device: torch.device) -> None:
    """Collect garbage and return the CUDA allocator's cached blocks."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def retry_on_oom(run: Callable[[S], T], state: S,
                 shrink: Callable[[S], tuple[S, Retry] | None], at_floor: Callable[[S], str],
                 device: torch.device, on_retry: Callable[[Retry], None] | None = None
                 ) -> tuple[T, S]:
    """``run(state)`` and the state it finally ran with; on an out-of-memory error, again with
    ``shrink(state)`` until it returns or ``shrink`` says the floor is reached
    (:class:`OutOfMemory` with ``at_floor(state)``). ``on_retry`` hears each shrink before
    memory is freed (drop references to the failed attempt there). Other exceptions
    propagate."""
    while True:
        try:
            return run(state), state
        except Exception as exc:
            if not is_oom(exc):
                raise
            shrunk = shrink(state)
            if shrunk is None:
                raise OutOfMemory(at_floor(state)) from exc
        # Outside the except block, so the traceback's frames (and their tensors) are gone.
        state, retry = shrunk
        if on_retry is not None:
            on_retry(retry)
        free_memory(device)


def retry_training(attempt: Callable[[R], T], recipe: R, device: torch.device,
                   on_retry: Callable[[Retry], None] | None = None) -> T:
    """``attempt(recipe)``, again from the start with :func:`shrink_training`'s recipe after
    each out-of-memory error, down to the floor."""
    return retry_on_oom(attempt, recipe, shrink_training,
                        lambda r: f"even at batch size {r.batch_size}", device, on_retry)[0]


def retry_evaluation(evaluate: Callable[[int], T], batch_size: int, device: torch.device,
                     on_retry: Callable[[Retry], None] | None = None) -> tuple[T, int]:
    """``evaluate(batch_size)`` and the batch size it finally ran at; on an out-of-memory
    error, again at half the batch, down to :data:`SMALLEST_BATCH` (:class:`OutOfMemory`)."""
    def shrink(batch: int) -> tuple[int, Retry] | None:
        half = smaller(batch)
        return None if half is None else (half, Retry("evaluation", batch, half))

    return retry_on_oom(evaluate, batch_size, shrink,
                        lambda b: f"in evaluation even at batch size {b}", device, on_retry)


def describe(retries: list[Retry]) -> dict[str, Any]:
    """The trial attributes a list of shrinks leaves: ``batch_size_used`` and ``lr_used``
    (after the last training shrink), ``eval_batch_size_used``, and ``note`` (every shrink)."""
    attrs: dict[str, Any] = {}
    for retry in retries:
        if retry.phase == "training":
            attrs.update(batch_size_used=retry.new_batch_size, lr_used=retry.new_lr)
        else:
            attrs["eval_batch_size_used"] = retry.new_batch_size
    if retries:
        attrs["note"] = "; ".join(retry.note for retry in retries)
    return attrs
