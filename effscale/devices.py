"""The one home of ``--device``: what its names mean (:func:`resolve_device`)."""

from __future__ import annotations

import torch

from effscale.errors import EffscaleError

DEVICES = ("auto", "cpu", "cuda")  # the choices of --device (cuda:N is taken too)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cpu``, ``cuda`` or ``cuda:N`` otherwise.
    A clear one-line error for a name torch does not know, a device type effscale does not
    run on, or CUDA asked for where there is none."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise EffscaleError(f"unknown device {name!r} (auto, cpu, cuda or cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise EffscaleError(f"device {name}: effscale trains and measures on cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EffscaleError(f"device {name}: no CUDA GPU is available (try --device auto)")
    return device
