"""Paths and small helpers shared by the tests and ``update_golden.py`` (not fixtures)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
GOLDEN = CONFIGS / "complexity.json"
GOLDEN_FIELDS = ("params", "flops", "flops_conv_linear", "activations", "resolution")


def shipped_configs() -> list[str]:
    """Every committed config, relative to the repository root (``configs/b0.yaml``), sorted."""
    files = sorted(CONFIGS.glob("*.yaml")) + sorted((CONFIGS / "official").glob("*.yaml"))
    return [path.relative_to(REPO).as_posix() for path in files]
