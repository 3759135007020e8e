"""Compound scaling as pure functions: multipliers in, a new config out.

The model builder never sees a multiplier: it only reads the scaled config.
"""

from __future__ import annotations

import math

from effscale.errors import EffscaleError
from effscale.model.config import ModelConfig, Provenance, ScalingRules, Stage
from effscale.model.rounding import round_depth, round_resolution, round_width


def compound_multipliers(alpha: float, beta: float, gamma: float, phi: float) -> tuple[
    float, float, float
]:
    """Depth, width and resolution multipliers ``(alpha**phi, beta**phi, gamma**phi)``."""
    return alpha**phi, beta**phi, gamma**phi


def check_coefficients(alpha: float, beta: float, gamma: float) -> None:
    """Refuse coefficients below 1 or not finite: compound scaling only grows a dimension."""
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not math.isfinite(value) or value < 1.0:
            raise EffscaleError(f"--{name} must be a finite number >= 1, got {value}")


def flops_factor(alpha: float, beta: float, gamma: float) -> float:
    """Nominal FLOPs growth per unit of phi: ``alpha * beta**2 * gamma**2`` (about 2 by design)."""
    return alpha * beta**2 * gamma**2


def scale_stage(stage: Stage, depth: float, width: float, rules: ScalingRules) -> Stage:
    """One stage with its repeats and channels scaled."""
    return Stage(
        block=stage.block,
        repeats=round_depth(stage.repeats * depth, rules.depth_rounding),
        kernel=stage.kernel,
        stride=stage.stride,
        expand=stage.expand,
        channels=round_width(stage.channels * width, rules.width_divisor),
        se_ratio=stage.se_ratio,
    )


def scale_config(
    base: ModelConfig,
    *,
    depth: float,
    width: float,
    resolution: float | None = None,
    resolution_px: int | None = None,
    rules: ScalingRules | None = None,
    name: str | None = None,
    provenance: Provenance | None = None,
) -> ModelConfig:
    """A new config: ``base`` with every stage's repeats times ``depth``, every width times
    ``width`` and the input size times ``resolution`` (or exactly ``resolution_px``).

    ``base`` is not changed. Stem and head scale too unless ``rules.scale_stem_head`` is off.
    """
    rules = rules or ScalingRules()
    for label, value in (("depth", depth), ("width", width), ("resolution", resolution)):
        if value is not None and (not math.isfinite(value) or value <= 0):
            raise EffscaleError(f"{label} multiplier must be a positive number, got {value}")
    if resolution_px is None:
        resolution_px = round_resolution(base.resolution * (resolution or 1.0),
                                         rules.resolution_multiple)
    stem, head = base.stem_channels, base.head_channels
    if rules.scale_stem_head:
        stem = round_width(stem * width, rules.width_divisor)
        head = round_width(head * width, rules.width_divisor) if head else 0
    return base.replace(
        name=name or base.name,
        resolution=resolution_px,
        stem_channels=stem,
        head_channels=head,
        stages=tuple(scale_stage(s, depth, width, rules) for s in base.stages),
        provenance=provenance,
    )
