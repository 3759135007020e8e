"""Trained weights together with the config they were built from, in one file.

    effscale.save_checkpoint("b0.pt", config, model, {"val_accuracy": 0.71})
    config, model = effscale.load_checkpoint("b0.pt")     # eval mode, ready to use

The config is stored as its YAML text, so a checkpoint needs nothing but itself to rebuild the
model, and the file is written atomically (a kill leaves the old file or the new one).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from effscale import atomic
from effscale.errors import EffscaleError
from effscale.model.builder import build_model
from effscale.model.config import ModelConfig, config_from_dict, dump_config, parse_yaml

FORMAT = "effscale-checkpoint"
VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint file holds. ``meta`` is plain data (accuracy, recipe, dataset ...)."""

    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    def build(self) -> nn.Module:
        """The model with these weights, in eval mode."""
        model = build_model(self.config)
        model.load_state_dict(self.state_dict)
        return model.eval()


def save_checkpoint(path: str | os.PathLike[str], config: ModelConfig, model: nn.Module,
                    meta: dict[str, Any] | None = None) -> None:
    """Write ``model``'s weights and ``config`` to ``path`` atomically.

    ``model`` must be the one ``build_model(config)`` builds (a ``torch.compile`` wrapper is
    unwrapped); weights are stored on the CPU in the standard (contiguous) layout.
    """
    model = getattr(model, "_orig_mod", model)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "version": VERSION, "config": dump_config(config),
               "state_dict": state, "meta": dict(meta or {})}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic.write_bytes(path, buffer.getvalue())


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and plain data only: no
    code is unpickled)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise EffscaleError(f"{path}: no such checkpoint") from None
    except Exception as exc:
        raise EffscaleError(f"{path}: not a readable checkpoint ({exc.__class__.__name__})") \
            from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise EffscaleError(f"{path}: not an effscale checkpoint")
    if payload.get("version") != VERSION:
        raise EffscaleError(f"{path}: checkpoint version {payload.get('version')!r} is not "
                            f"supported (this effscale reads version {VERSION})")
    config = config_from_dict(parse_yaml(payload["config"], f"{path}:config"), f"{path}:config")
    return Checkpoint(config, payload["state_dict"], payload.get("meta") or {})


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[ModelConfig, nn.Module]:
    """``(config, model)`` from a checkpoint file; the model is in eval mode on the CPU."""
    checkpoint = read_checkpoint(path)
    return checkpoint.config, checkpoint.build()
