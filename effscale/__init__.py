"""effscale: find and apply EfficientNet-style compound scaling coefficients."""

from __future__ import annotations

__version__ = "0.1.0"

from effscale.builder import build_model  # noqa: E402
from effscale.config import ModelConfig, load_config  # noqa: E402
from effscale.flops import count_flops  # noqa: E402

__all__ = ["ModelConfig", "__version__", "build_model", "count_flops", "load_config"]
