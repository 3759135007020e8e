"""The arithmetic a training runs in, chosen from what its device computes natively.

- CUDA GPUs with native bf16 (compute capability 8.0 on, Ampere and later; ROCm GPUs torch
  reports as bf16-capable): bf16 autocast. bf16 has fp32's exponent range, so gradients do
  not underflow and no loss scaling is needed.
- Older CUDA GPUs (Volta, Turing, Pascal): fp16 autocast with a ``GradScaler``. fp16's
  narrow exponent range underflows small gradients unless the loss is scaled up before the
  backward pass and the gradients scaled back before the step. bf16 there either fails or is
  emulated slowly, depending on the torch version: from torch 2.4
  ``torch.cuda.is_bf16_supported()`` answers True for emulated bf16 unless asked
  ``including_emulation=False``, so the capability is checked as well.
- CPUs: fp32 (bf16 autocast was slower than fp32 on CPUs without AMX).

A recipe may ask for another precision (``Recipe.precision``: ``fp32``, ``bf16`` or
``fp16``); ``auto`` is the choice above.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Precision:
    """How a training computes: the autocast dtype (``torch.float32``: no autocast), whether
    the loss is scaled (a ``GradScaler``, needed for fp16), and why this was chosen."""

    dtype: torch.dtype
    scaler: bool
    reason: str

    @property
    def name(self) -> str:
        """``bf16``, ``fp16`` or ``fp32``."""
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.dtype, "fp32")

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """The autocast context for a forward pass on ``device``."""
        if self.dtype == torch.float32:
            return torch.autocast(device.type, enabled=False)
        return torch.autocast(device.type, dtype=self.dtype)

    def grad_scaler(self, device: torch.device) -> Any | None:
        """A fresh ``GradScaler`` when this precision scales the loss, else None
        (``torch.amp.GradScaler`` from torch 2.3, ``torch.cuda.amp.GradScaler`` before)."""
        if not self.scaler:
            return None
        scaler_class = getattr(torch.amp, "GradScaler", None)
        if scaler_class is not None:
            return scaler_class(device.type)
        return torch.cuda.amp.GradScaler()


FP32 = Precision(torch.float32, False,
                 "fp32 on the CPU: bf16 autocast was slower than fp32 on CPUs without AMX")


def native_bf16(device: torch.device) -> bool:
    """Whether the CUDA ``device`` computes bf16 natively (not emulated)."""
    if torch.version.hip:
        return bool(torch.cuda.is_bf16_supported())
    major, _ = torch.cuda.get_device_capability(device)
    if major < 8:
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch < 2.4: no such parameter, and no emulation either
        return bool(torch.cuda.is_bf16_supported())


def asked_precision(asked: str, device: torch.device) -> Precision:
    """The precision a recipe asked for by name on ``device`` (``auto``:
    :func:`choose_precision`); fp16 is CUDA-only (checked by
    :func:`effscale.train.levers.check_levers`)."""
    if asked == "auto":
        return choose_precision(device)
    if asked == "fp32":
        return Precision(torch.float32, False, "fp32: asked for by the recipe")
    if asked == "bf16":
        return Precision(torch.bfloat16, False, f"bf16 autocast on {device.type}: asked for by "
                                                "the recipe")
    if asked == "fp16":
        return Precision(torch.float16, device.type == "cuda",
                         "fp16 autocast with a loss scaler: asked for by the recipe")
    raise ValueError(f"unknown precision {asked!r}")


def choose_precision(device: torch.device) -> Precision:
    """The precision a training on ``device`` runs in (see the module's text)."""
    if device.type != "cuda":
        return FP32
    major, minor = torch.cuda.get_device_capability(device)
    where = f"compute capability {major}.{minor}"
    if native_bf16(device):
        return Precision(torch.bfloat16, False, f"bf16 autocast: the GPU ({where}) computes "
                                                "bf16 natively")
    return Precision(torch.float16, True, f"fp16 autocast with a loss scaler: the GPU ({where}) "
                                          "has no native bf16")
