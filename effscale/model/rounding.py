"""How a multiplied size becomes a buildable one: channels to a divisor, repeats to an int,
input sizes to a multiple. At the bottom of the model layer, so blocks and scaling share it."""

from __future__ import annotations

import math


def round_width(channels: float, divisor: int = 8) -> int:
    """Channels rounded to the nearest multiple of ``divisor``, never below 90 % of ``channels``
    and never below ``divisor`` (EfficientNet's ``round_filters``, timm's ``make_divisible``).
    """
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * channels:
        rounded += divisor
    return rounded


def round_depth(repeats: float, rule: str = "ceil") -> int:
    """Block repeats as an int: ``ceil`` (EfficientNet's ``round_repeats``) or ``round``
    (pycls, half rounds up); never below 1.
    """
    if rule == "ceil":
        # The epsilon keeps float noise (1.2 * 5 = 6.000000000000001) from adding a block.
        return max(1, math.ceil(repeats - 1e-9))
    if rule == "round":
        return max(1, int(math.floor(repeats + 0.5)))
    raise ValueError(f"depth rounding must be 'ceil' or 'round', got {rule!r}")


def round_resolution(resolution: float, multiple: int = 8) -> int:
    """Input size rounded to the nearest multiple of ``multiple`` (half up), never below it."""
    return max(multiple, int(math.floor(resolution / multiple + 0.5)) * multiple)
