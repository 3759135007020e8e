"""Single-multiplier scaling rules: how one number ``m`` becomes (depth, width, resolution)
multipliers. ``effscale compare`` trains one model per rule, each solved to the same FLOPs.

Adding a rule is one function ``(m, fast_a) -> (depth, width, resolution)`` and one line in
:data:`RULES`; ``compare --rules`` and its help list the registry.
"""

from __future__ import annotations

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


RULES: dict[str, Callable[[float, float], Multipliers]] = {
    "depth": depth_only,
    "width": width_only,
    "resolution": resolution_only,
    "fast": fast,
}
DIMENSIONS = ("depth", "width", "resolution")  # compare's default rules: the paper's Table 3


def rule_multipliers(rule: str, m: float, fast_a: float = FAST_A) -> Multipliers:
    """(depth, width, resolution) multipliers of ``rule`` at its single multiplier ``m``."""
    if rule not in RULES:
        raise EffscaleError(f"unknown rule {rule!r} (valid: {', '.join(RULES)})")
    return RULES[rule](m, fast_a)
