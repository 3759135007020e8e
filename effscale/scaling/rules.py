"""Single-multiplier scaling rules: how one number ``m`` becomes (depth, width, resolution)
multipliers. ``effscale compare`` trains one model per rule, each solved to the same FLOPs.

Adding a rule is one function ``(m, fast_a) -> (depth, width, resolution)`` and one line in
:data:`RULES`; ``compare --rules`` and its help list the registry.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

from effscale.errors import EffscaleError

FAST_A = 0.8
Multipliers = tuple[float, float, float]


def depth_only(m: float, fast_a: float) -> Multipliers:
    return m, 1.0, 1.0


def width_only(m: float, fast_a: float) -> Multipliers:
    return 1.0, m, 1.0


def resolution_only(m: float, fast_a: float) -> Multipliers:
    return 1.0, 1.0, m


def fast(s: float, fast_a: float = FAST_A) -> Multipliers:
    """Dollár et al. 2021 "fast" scaling for FLOPs scale ``s``: mostly width, some depth and
    resolution; ``d * w**2 * r**2 == s``."""
    if not 0 <= fast_a <= 1:
        raise EffscaleError(f"--fast-a must be in [0, 1], got {fast_a}")
    return s ** ((1 - fast_a) / 2), s ** (fast_a / 2), s ** ((1 - fast_a) / 4)


# TinyNet (Han et al., NeurIPS 2020, "Model Rubik's Cube: Twisting Resolution, Depth and
# Width for TinyNets"): for a FLOPs constraint c < 1 the paper fits resolution r(c) and depth
# d(c) on the best of many randomly shrunk EfficientNet-B0s (Gaussian process regression) and
# takes the width from the constraint, w = sqrt(c / (r^2 d)). Its finding: resolution and
# depth matter more than width for tiny models, so width gives up the most. The fitted curves
# are not published as formulas; the models they give are, TinyNet-A..E, as (c, r, w, d) with
# c = measured FLOPs / B0's 390 M (the rounding of depth and width puts these above the
# nominal r^2 d w^2):
TINYNET_POINTS: tuple[tuple[float, float, float, float], ...] = (
    (1.0, 1.0, 1.0, 1.0),             # EfficientNet-B0, 390 M
    (339 / 390, 0.86, 1.0, 1.2),      # TinyNet-A, 339 M
    (202 / 390, 0.84, 0.75, 1.1),     # TinyNet-B, 202 M
    (100 / 390, 0.825, 0.54, 0.85),   # TinyNet-C, 100 M
    (52 / 390, 0.68, 0.54, 0.695),    # TinyNet-D, 52 M
    (24 / 390, 0.475, 0.51, 0.6),     # TinyNet-E, 24 M
)


def tinynet(c: float, fast_a: float = FAST_A) -> Multipliers:
    """TinyNet's shrinking path at FLOPs scale ``c`` <= 1: (d, w, r) interpolated log-linearly
    (in log c) between the published B0, TinyNet-A..E points (:data:`TINYNET_POINTS`), the
    last segment extended below TinyNet-E. At each published ``c`` it is that TinyNet; the
    equal-cost solver then moves along the path to the measured target. Shrinking only."""
    if not 0 < c <= 1 + 1e-9:
        raise EffscaleError(f"the tinynet rule only shrinks (FLOPs scale <= 1, phi <= 0), got "
                            f"scale {c:.3g}")
    c = min(c, 1.0)
    points = TINYNET_POINTS
    segments = list(itertools.pairwise(points))
    hi, lo = next(((h, lo) for h, lo in segments if c >= lo[0]), segments[-1])
    t = math.log(c / hi[0]) / math.log(lo[0] / hi[0])
    r, w, d = (math.exp(math.log(a) + t * math.log(b / a)) for a, b in zip(hi[1:], lo[1:]))
    return d, w, r


RULES: dict[str, Callable[[float, float], Multipliers]] = {
    "depth": depth_only,
    "width": width_only,
    "resolution": resolution_only,
    "fast": fast,
    "tinynet": tinynet,
}
SHRINK_ONLY = ("tinynet",)  # rules defined for targets at or below the base's cost
DIMENSIONS = ("depth", "width", "resolution")  # compare's default rules: the paper's Table 3


def rule_multipliers(rule: str, m: float, fast_a: float = FAST_A) -> Multipliers:
    """(depth, width, resolution) multipliers of ``rule`` at its single multiplier ``m``."""
    if rule not in RULES:
        raise EffscaleError(f"unknown rule {rule!r} (valid: {', '.join(RULES)})")
    return RULES[rule](m, fast_a)
