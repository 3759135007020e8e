"""The speed levers of a proxy training, and the default each device gets.

A lever is something that changes how fast a training runs, not what it learns (or, for
the batch size, what it learns only through a learning rate scaled with it):

- ``compile``: ``torch.compile`` (inductor) of the model; its compile time is reported
  apart (``compile_seconds``). On a CPU inductor needs a C++ compiler, on CUDA triton:
  :func:`check_levers` says in one line when they are missing, before any training.
- ``precision``: the autocast dtype (:mod:`effscale.train.precision`); ``auto`` picks the
  device's native one (bf16 or fp16 on CUDA, fp32 on a CPU).
- the batch size, with the learning rate scaled linearly from the recipe's reference
  (:func:`linear_lr`), so that equal epochs stay comparable;
- processes and threads: ``--workers`` processes each with ``cores / workers`` threads (on a
  CPU two processes by default, never more than its cores).

:data:`DEVICE_DEFAULTS` holds what each device type runs when the recipe or the command
line does not say: flipping one of them is a one-line change, measured first with
``benchmarks/proxy_levers.py`` (see docs/benchmarks.md).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import torch

from effscale.errors import EffscaleError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
REFERENCE_BATCH = 64  # the batch the recipe's learning rate was tuned at


@dataclass(frozen=True)
class DeviceDefaults:
    """What a device type runs unless told otherwise (with the measurement behind it)."""

    compile: bool
    workers: int
    why: str


CPU_DEFAULTS = DeviceDefaults(
    compile=False, workers=2,
    why="2 idle CPU cores: 2 processes x 1 thread trained 1.49x the images a second of 1 x 2 "
        "(benchmarks/proxy_levers.py --parts procs) and the demo search ran 1.50x faster "
        "(16:04 against 24:10, same verdict); torch.compile lost (0.58-0.64x over a screening "
        "training, its compile included). Capped at the available cores (docs/benchmarks.md)")
CUDA_DEFAULTS = DeviceDefaults(
    compile=False, workers=1,
    why="not measured on a GPU yet (benchmarks/gpu_check.py, benchmarks/proxy_levers.py "
        "--device cuda)")
DEVICE_DEFAULTS: dict[str, DeviceDefaults] = {"cpu": CPU_DEFAULTS, "cuda": CUDA_DEFAULTS}


def device_defaults(device: torch.device) -> DeviceDefaults:
    """The defaults of ``device``'s type (a CPU's for any type not listed)."""
    return DEVICE_DEFAULTS.get(device.type, DEVICE_DEFAULTS["cpu"])


def wants_compile(asked: bool | None, device: torch.device) -> bool:
    """Whether a training compiles: ``asked`` when given, else the device's default."""
    return device_defaults(device).compile if asked is None else bool(asked)


def linear_lr(batch_size: int, lr: float, reference_batch: int = REFERENCE_BATCH) -> float:
    """The learning rate for ``batch_size`` under linear scaling from ``lr`` at
    ``reference_batch`` (Goyal et al. 2017): twice the batch, twice the rate."""
    if batch_size < 1 or reference_batch < 1:
        raise ValueError("batch sizes must be >= 1")
    return lr * batch_size / reference_batch


def compiler_problem(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot run on ``device`` here, in one line; None when it can.

    Inductor compiles CPU kernels with a C++ compiler (``torch._inductor.config.cpp.cxx``,
    ``$CXX``) and CUDA kernels with triton; a missing one would otherwise fail inside the
    first training step, with a long traceback."""
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return ("torch.compile on CUDA needs triton, which is not installed "
                    "(pip install triton, or train without compile)")
        return None
    try:
        from torch._inductor import config
    except ImportError as exc:  # a torch built without inductor
        return f"torch.compile is not available in this torch ({exc})"
    names = config.cpp.cxx if isinstance(config.cpp.cxx, (list, tuple)) else (config.cpp.cxx,)
    names = tuple(name for name in names if name)
    if not any(shutil.which(name) for name in names):
        looked = ", ".join(names) or "g++"
        return (f"torch.compile on the CPU needs a C++ compiler and none was found (looked "
                f"for {looked}; set $CXX or install g++), or train without compile")
    return None


def check_levers(compile_asked: bool | None, precision: str, device: torch.device) -> None:
    """One clear line (:class:`EffscaleError`) for levers ``device`` cannot run, before any
    training: a compile without its compiler, an unknown precision, fp16 on a CPU."""
    if precision not in PRECISIONS:
        raise EffscaleError(f"unknown precision {precision!r} (valid: {', '.join(PRECISIONS)})")
    if precision == "fp16" and device.type != "cuda":
        raise EffscaleError("precision fp16 needs a CUDA GPU (on a CPU: fp32 or bf16)")
    if wants_compile(compile_asked, device) and (problem := compiler_problem(device)):
        raise EffscaleError(problem)


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (``avx512_bf16``, ``amx_bf16``, ...); empty where unknown."""
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_cpu_bf16(flags: set[str]) -> bool:
    """Whether the CPU computes bf16 in hardware (AVX512-BF16 or AMX), from its flags."""
    return bool(flags & {"avx512_bf16", "amx_bf16"})
