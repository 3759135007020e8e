"""Which coefficient values build the same model: the honest precision of found coefficients.

Rounding makes every coefficient an interval, not a number: ceil depth rounding gives b0 the
same blocks for alpha = 1.8, 1.85, 1.9 and 2.0; channels round to multiples of 8; the proxy's
input size rounds to a pixel. A search can only tell apart what it trained, so a found
coefficient is reported with the interval of values (and the grid values among them) that
build the same proxy model. The interval matters at large phi: 1.8**7 = 61, 1.9**7 = 89.
"""

from __future__ import annotations

from effscale.model.config import ModelConfig, ScalingRules
from effscale.model.rounding import round_depth, round_width
from effscale.search.grid import GridSpec, axis, gamma_axis

SCAN_STEP = 0.0005
SCAN_REACH = 0.5


def depth_signature(base: ModelConfig, alpha: float, rules: ScalingRules) -> tuple[int, ...]:
    return tuple(round_depth(s.repeats * alpha, rules.depth_rounding) for s in base.stages)


def width_signature(base: ModelConfig, beta: float, rules: ScalingRules) -> tuple[int, ...]:
    widths = [round_width(s.channels * beta, rules.width_divisor) for s in base.stages]
    if rules.scale_stem_head:
        widths += [round_width(base.stem_channels * beta, rules.width_divisor),
                   round_width(base.head_channels * beta, rules.width_divisor)
                   if base.head_channels else 0]
    return tuple(widths)


def _interval(value: float, maximum: float, signature) -> list[float]:  # type: ignore[no-untyped-def]
    """[low, high] of the values in [1, maximum] (scanned at SCAN_STEP) with ``value``'s
    signature; contiguous around ``value``."""
    target = signature(value)
    low = high = value
    while low - SCAN_STEP >= 1.0 and signature(low - SCAN_STEP) == target:
        low -= SCAN_STEP
    while high + SCAN_STEP <= maximum and signature(high + SCAN_STEP) == target:
        high += SCAN_STEP
    return [round(low, 4), round(high, 4)]


def coefficient_aliases(base: ModelConfig, alpha: float, beta: float, gamma: float,
                        spec: GridSpec, rules: ScalingRules) -> dict[str, dict]:
    """For each coefficient: its value, the interval that builds the same proxy model, and
    the grid values inside that interval."""
    depth = lambda a: depth_signature(base, a, rules)  # noqa: E731
    width = lambda b: width_signature(base, b, rules)  # noqa: E731
    size = lambda g: round(spec.base_resolution * g)  # noqa: E731
    # The scan reaches past the grid: a value above it that builds the same model is just as
    # compatible with what was trained.
    reach = SCAN_REACH
    result = {
        "alpha": {"value": alpha, "same_model": _interval(alpha, alpha + reach, depth),
                  "grid": [a for a in axis(spec.alpha_max, spec.step) if depth(a) == depth(alpha)]},
        "beta": {"value": beta, "same_model": _interval(beta, beta + reach, width),
                 "grid": ([b for b in axis(spec.beta_max, spec.step) if width(b) == width(beta)]
                          if spec.beta == "grid" else "solved on measured FLOPs")},
        "gamma": {"value": gamma, "same_model": _interval(gamma, gamma + reach, size),
                  "proxy_px": size(gamma),
                  "grid": [g for g, px in gamma_axis(spec) if px == size(gamma)]},
    }
    return result


def phi_range(interval: list[float], phi: float) -> list[float]:
    """What an interval of coefficients becomes at ``phi``: [low**phi, high**phi]."""
    return [round(interval[0] ** phi, 3), round(interval[1] ** phi, 3)]
