"""effscale: find and apply EfficientNet-style compound scaling coefficients.

The version is pyproject.toml's, read from the installed package's metadata. The public API
below is imported on first use, so ``import effscale`` (and ``effscale --help``) does not
import torch.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("effscale")
except PackageNotFoundError:  # a source tree on sys.path that was never pip-installed
    __version__ = "0+unknown"

# public name -> the module that defines it
_API = {
    "ModelConfig": "effscale.model.config", "load_config": "effscale.model.config",
    "build_model": "effscale.model.builder", "count_flops": "effscale.model.flops",
    "load_checkpoint": "effscale.model.checkpoint", "save_checkpoint": "effscale.model.checkpoint",
}

__all__ = ["ModelConfig", "__version__", "build_model", "count_flops", "load_checkpoint",
           "load_config", "save_checkpoint"]


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'effscale' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
