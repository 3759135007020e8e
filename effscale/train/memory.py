"""Out-of-memory handling shared by every training loop: recognise it, shrink, free."""

from __future__ import annotations

import gc
from dataclasses import replace

import torch

from effscale.train.trainer import Recipe

SMALLEST_BATCH = 8


def is_oom(exc: BaseException) -> bool:
    """An allocator failure: ``torch.OutOfMemoryError`` or a RuntimeError that says so."""
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def halve_batch(recipe: Recipe) -> Recipe:
    return replace(recipe, batch_size=max(SMALLEST_BATCH, recipe.batch_size // 2))


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
