"""Peak memory of one training step (``effscale cost``): CUDA's allocator peak, or on the CPU
the peak resident set size of the step, which Linux lets a process reset."""

from __future__ import annotations

import contextlib
import ctypes
import gc
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from effscale.devices import resolve_device
from effscale.model.builder import build_model
from effscale.model.config import ModelConfig
from effscale.model.cost import (
    sample_images,
    sample_targets,
    torch_threads,
    training_step,
)


@dataclass(frozen=True)
class Memory:
    """Peak memory of one training step; ``method`` says how it was measured."""

    bytes: int | None
    batch: int
    method: str


def _status_kib(field_name: str) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return None


def _trim() -> None:
    """Collect garbage and hand freed heap back to the OS (glibc), so freed pages of an
    earlier model are not reused unseen by the next measurement."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    total += sum(b.numel() * b.element_size() for b in model.buffers())
    for state in optimizer.state.values():
        total += sum(v.numel() * v.element_size() for v in state.values()
                     if isinstance(v, torch.Tensor))
    return total


def training_memory(config: ModelConfig, batch: int = 1, device: str = "cpu",
                    threads: int | None = None) -> Memory:
    """Peak memory of one SGD training step at ``batch``, after one warm-up step.

    CUDA: ``torch.cuda.max_memory_allocated`` over the step (weights, gradients, optimizer
    state and activations; the caching allocator's reserve is not counted). CPU (Linux): the
    peak resident set size over the step, reset through ``/proc/self/clear_refs``, above the
    resident size before it, plus the bytes of the weights, buffers and optimizer state that
    were already resident; this includes allocator overhead and anything else the process
    did meanwhile. Where the peak cannot be reset, ``bytes`` is ``None``.
    """
    resolved = resolve_device(device)
    with torch_threads(threads), torch.inference_mode(False):
        model = build_model(config).train().to(resolved)
        image = sample_images(config, batch, resolved)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        step = training_step(model, image, sample_targets(config, image), optimizer)
        step()  # warm-up: kernels loaded, optimizer state allocated
        optimizer.zero_grad(set_to_none=True)
        if resolved.type == "cuda":
            torch.cuda.synchronize(resolved)
            torch.cuda.reset_peak_memory_stats(resolved)
            step()
            torch.cuda.synchronize(resolved)
            peak = int(torch.cuda.max_memory_allocated(resolved))
            return Memory(peak, batch, "torch.cuda.max_memory_allocated over one step")
        _trim()
        before = _status_kib("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        except OSError:
            return Memory(None, batch, "not measured: the peak RSS cannot be reset here "
                                       "(/proc/self/clear_refs)")
        step()
        peak = _status_kib("VmHWM")
        state = _state_bytes(model, optimizer)
    if before is None or peak is None:
        return Memory(None, batch, "not measured: no /proc/self/status")
    return Memory(max(0, peak - before) * 1024 + state, batch,
                  "peak RSS growth over one step (Linux VmHWM after clear_refs) + weights, "
                  "buffers and optimizer state")
