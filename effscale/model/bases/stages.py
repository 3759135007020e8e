"""Stage shorthands shared by the base definitions (and handy for new ones)."""

from __future__ import annotations

from effscale.model.config import Stage


def mbconv(repeats: int, kernel: int, stride: int, expand: float, channels: int,
           se_ratio: float = 0.0) -> Stage:
    """``repeats`` inverted-residual (MBConv) blocks; only the first takes ``stride``."""
    return Stage(block="mbconv", repeats=repeats, kernel=kernel, stride=stride, expand=expand,
                 channels=channels, se_ratio=se_ratio)


def bottleneck(repeats: int, stride: int, channels: int, expand: float = 4) -> Stage:
    """``repeats`` ResNet bottlenecks (3x3 middle conv, hidden width ``channels / expand``)."""
    return Stage(block="bottleneck", repeats=repeats, kernel=3, stride=stride, expand=expand,
                 channels=channels, se_ratio=0.0)
