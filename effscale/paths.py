"""Where effscale keeps caches and downloaded data (overridable by environment variables)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$EFFSCALE_CACHE_DIR``, else ``$XDG_CACHE_HOME/effscale``, else ``~/.cache/effscale``."""
    if os.environ.get("EFFSCALE_CACHE_DIR"):
        return Path(os.environ["EFFSCALE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "effscale"


def data_dir() -> Path:
    """``$EFFSCALE_DATA_DIR``, else ``cache_dir()/data``: where datasets are looked up."""
    if os.environ.get("EFFSCALE_DATA_DIR"):
        return Path(os.environ["EFFSCALE_DATA_DIR"])
    return cache_dir() / "data"


def flops_cache_dir() -> Path:
    """``$EFFSCALE_FLOPS_CACHE_DIR``, else ``cache_dir()/flops``: measured FLOPs by config."""
    if os.environ.get("EFFSCALE_FLOPS_CACHE_DIR"):
        return Path(os.environ["EFFSCALE_FLOPS_CACHE_DIR"])
    return cache_dir() / "flops"
