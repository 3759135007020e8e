"""effscale: find and apply EfficientNet-style compound scaling coefficients."""

from __future__ import annotations

__version__ = "0.1.0"

from effscale.model.builder import build_model
from effscale.model.checkpoint import load_checkpoint, save_checkpoint
from effscale.model.config import ModelConfig, load_config
from effscale.model.flops import count_flops

__all__ = ["ModelConfig", "__version__", "build_model", "count_flops", "load_checkpoint",
           "load_config", "save_checkpoint"]
