"""Models scaled along one rule to a target of MEASURED FLOPs (EfficientNet's Table 3 setup).

Each rule maps one multiplier ``m`` to a config: depth-only (repeats x m), width-only
(channels x m), resolution-only (input size x m) and Dollár et al.'s "fast" rule (FLOPs scale
``s``: depth ``s**((1-a)/2)``, width ``s**(a/2)``, resolution ``s**((1-a)/4)``).

Note:
    Rounding (ceil of repeats, channels to multiples of 8, input size to multiples of the
    resolution step) makes measured FLOPs a step function of the multiplier, and at small
    proxy sizes the steps are large: B0 at 40 px measures 2.5x the FLOPs of 32 px, because
    the last stages' 1x1 maps become 2x2. :func:`solve` therefore bisects over the multiplier
    with the rounding in place, measures only distinct configs, and keeps whichever of the
    two configs around the target is closer to it (in log ratio). Callers report the
    achieved ratio; it may miss the target by more than any tolerance when no config lies
    closer.

A coefficient *direction* (alpha, beta, gamma) is one more rule: depth ``alpha**s``, width
``beta**s``, resolution ``gamma**s``, with ``s`` the "effective phi". :func:`solve_direction`
solves ``s`` so that the measured FLOPs hit a target (``effscale derive --match-flops`` and
``effscale compare`` use it at full size: B0 at 224 px and ``2**phi`` times its FLOPs).

Every solver takes the FLOPs :class:`FlopsMeter` and, optionally, another cost
(:class:`~effscale.model.cost.Meter`: a float per config, e.g. measured latency): the
target and the bisection are then on that cost, and the :class:`Scaled` records it beside the
FLOPs. Without one, FLOPs are the cost and every result is what it was before costs existed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from effscale.errors import EffscaleError
from effscale.model.config import ModelConfig, ScalingRules
from effscale.model.cost import Meter
from effscale.model.flops import Complexity, count_flops
from effscale.scaling.compound import scale_config
from effscale.scaling.rules import FAST_A, rule_multipliers

MAX_MULTIPLIER = 64.0
RTOL = 0.005  # stop at a config this close to the target


@dataclass(frozen=True, kw_only=True)
class AgainstBase:
    """A model's measured size beside its base's, both at full size: FLOPs always, and the
    cost it was scaled for. That cost is FLOPs unless ``cost`` names another; then
    ``cost_value`` and ``base_cost`` are in that cost's unit (seconds for latency)."""

    complexity: Complexity
    base_flops: int
    cost: str = "flops"
    cost_value: float = 0.0
    base_cost: float = 0.0

    @property
    def flops_ratio(self) -> float:
        """Measured FLOPs over the base's, whatever the cost."""
        return self.complexity.flops / self.base_flops

    @property
    def cost_ratio(self) -> float:
        """The measured cost over the base's (the FLOPs ratio when FLOPs are the cost)."""
        return self.flops_ratio if self.cost == "flops" else self.cost_value / self.base_cost


@dataclass(frozen=True)
class Scaled(AgainstBase):
    """One model of a comparison: its multipliers, config and measured size against the base.

    With another ``cost`` than FLOPs, ``target_cost`` is in that cost's unit,
    ``target_error`` is against the cost's target, and ``target_flops`` is the base's FLOPs
    times the target's cost ratio.
    """

    name: str
    multiplier: float  # the solved (or given) single multiplier; phi for compound
    depth: float
    width: float
    resolution: float
    config: ModelConfig
    target_flops: int
    target_cost: float = 0.0

    @property
    def target_ratio(self) -> float:
        """The target over the base's cost."""
        if self.cost == "flops":
            return self.target_flops / self.base_flops
        return self.target_cost / self.base_cost

    @property
    def target_error(self) -> float:
        """Measured cost over the target, minus 1 (0.03 = 3 % above the target)."""
        if self.cost != "flops":
            return self.cost_value / self.target_cost - 1
        return self.complexity.flops / self.target_flops - 1


def scaled_config(base: ModelConfig, rule: str, m: float, rules: ScalingRules,
                  fast_a: float = FAST_A) -> ModelConfig:
    depth, width, resolution = rule_multipliers(rule, m, fast_a)
    return scale_config(base, depth=depth, width=width, resolution=resolution, rules=rules,
                        name=f"{base.name}-{rule}")


class FlopsMeter:
    """FLOPs of configs, each distinct config measured once (``count_flops`` also caches on
    disk). Name and provenance do not change FLOPs, so configs that differ only there share
    one measurement.

    ``conv_linear=True`` counts convolutions and linear layers only (the published figures'
    convention, and what ``effscale derive`` shows): the returned complexity's ``flops`` is
    then its ``flops_conv_linear``. ``count`` replaces :func:`count_flops` (tests, the CLI).
    """

    def __init__(self, counter: str = "fvcore", conv_linear: bool = False,
                 count: Callable[[ModelConfig, int, str], Complexity] | None = None) -> None:
        self.counter = counter
        self.conv_linear = conv_linear
        self.count = count or count_flops
        self.measured: dict[ModelConfig, Complexity] = {}

    def __call__(self, config: ModelConfig) -> Complexity:
        key = config.replace(name="-", provenance=None)
        if key not in self.measured:
            complexity = self.count(key, key.resolution, self.counter)
            if self.conv_linear:
                complexity = replace(complexity, flops=complexity.flops_conv_linear)
            self.measured[key] = complexity
        return self.measured[key]


class FlopsCost:
    """A :class:`FlopsMeter` (or any callable giving an object with ``flops``) as a
    :class:`~effscale.model.cost.Meter`: its FLOPs."""

    name = "flops"

    def __init__(self, measure: Callable[[ModelConfig], Complexity]) -> None:
        self.measure = measure

    def __call__(self, config: ModelConfig) -> float:
        return float(self.measure(config).flops)


def as_cost(measure: FlopsMeter | Meter) -> Meter:
    """What the solvers bisect on: a cost (it has a ``name``) as it is, else the FLOPs that
    ``measure`` returns."""
    return measure if hasattr(measure, "name") else FlopsCost(measure)  # type: ignore[arg-type]


def _cost_fields(cost: Meter | None, config: ModelConfig, base: ModelConfig,
                 target: float, measure: FlopsMeter) -> dict:
    """The :class:`Scaled` fields of a cost other than FLOPs (none for FLOPs)."""
    if cost is None or cost.name == "flops":
        return {"target_flops": round(target)}
    base_cost = cost(base)
    return {"target_flops": round(measure(base).flops * target / base_cost), "cost": cost.name,
            "cost_value": cost(config), "base_cost": base_cost, "target_cost": float(target)}


def _amount(target: float, cost: Meter) -> str:
    return f"{target:,.0f} FLOPs" if cost.name == "flops" else f"{target:.4g} ({cost.name})"


def solve(build: Callable[[float], ModelConfig], target: float,
          measure: FlopsMeter | Meter, rtol: float = RTOL,
          max_multiplier: float = MAX_MULTIPLIER) -> tuple[float, ModelConfig]:
    """The multiplier whose built config's measured FLOPs (or cost, when ``measure`` is a
    :class:`~effscale.model.cost.Meter`) is closest to ``target``.

    Assumes FLOPs never fall as the multiplier grows. The bracket ``lo`` (below the target) /
    ``hi`` (at or above it) shrinks by interpolating log FLOPs over log multiplier (kept
    within the middle 80 % of the bracket, so it never stalls); a point that builds the same
    config as an end moves that end without a measurement. It stops early at a config within
    ``rtol`` of the target, else when the bracket is two adjacent steps, and returns the
    closer of the two.
    """
    cost = as_cost(measure)
    flops = lambda m: cost(build(m))  # noqa: E731
    lo, hi = 1.0, 2.0
    while flops(lo) >= target:
        lo, hi = lo / 2, lo
        if lo < 1 / max_multiplier:
            return hi, build(hi)  # even the smallest model is above the target
    while flops(hi) < target:
        lo, hi = hi, hi * 2
        if hi > max_multiplier:
            raise EffscaleError(f"no multiplier up to {max_multiplier:g} reaches "
                                f"{_amount(target, cost)}")
    for _ in range(100):
        if abs(flops(hi) / target - 1) <= rtol or hi - lo <= 1e-7 * hi:
            break
        low_flops, high_flops = flops(lo), flops(hi)
        t = math.log(target / low_flops) / math.log(high_flops / low_flops)
        mid = lo * (hi / lo) ** min(0.9, max(0.1, t))
        config = build(mid)
        if config == build(lo):
            lo = mid
        elif config == build(hi) or cost(config) >= target:
            hi = mid
        else:
            lo = mid
            if abs(cost(config) / target - 1) <= rtol:
                break
    return min(((lo, build(lo)), (hi, build(hi))),
               key=lambda mc: abs(math.log(cost(mc[1]) / target)))


def solve_rule(base: ModelConfig, rule: str, target: float, rules: ScalingRules,
               measure: FlopsMeter, fast_a: float = FAST_A, cost: Meter | None = None
               ) -> Scaled:
    """``base`` scaled by ``rule`` to the measured FLOPs (or ``cost``) closest to
    ``target``."""
    m, config = solve(lambda x: scaled_config(base, rule, x, rules, fast_a), target,
                      cost or measure)
    depth, width, resolution = rule_multipliers(rule, m, fast_a)
    return Scaled(rule, m, depth, width, resolution, config.replace(name=rule),
                  complexity=measure(config), base_flops=measure(base).flops,
                  **_cost_fields(cost, config, base, target, measure))


def compound(base: ModelConfig, alpha: float, beta: float, gamma: float, phi: float,
             rules: ScalingRules, measure: FlopsMeter, target: float | None = None) -> Scaled:
    """``base`` scaled by ``alpha**phi``, ``beta**phi``, ``gamma**phi`` (not solved: its
    measured FLOPs are what they are; by default they are the target for the others)."""
    depth, width, resolution = alpha ** phi, beta ** phi, gamma ** phi
    config = scale_config(base, depth=depth, width=width, resolution=resolution, rules=rules,
                          name="compound")
    complexity = measure(config)
    return Scaled("compound", phi, depth, width, resolution, config,
                  round(target or complexity.flops), complexity=complexity,
                  base_flops=measure(base).flops)


def base_model(base: ModelConfig, measure: FlopsMeter, target: float,
               cost: Meter | None = None) -> Scaled:
    config = base.replace(name="base")
    return Scaled("base", 0.0, 1.0, 1.0, 1.0, config, complexity=measure(config),
                  base_flops=measure(base).flops,
                  **_cost_fields(cost, config, base, target, measure))


def direction_multipliers(coefficients: tuple[float, float, float], s: float
                          ) -> tuple[float, float, float]:
    """(depth, width, resolution) = (alpha**s, beta**s, gamma**s)."""
    alpha, beta, gamma = coefficients
    return alpha ** s, beta ** s, gamma ** s


def direction_config(base: ModelConfig, coefficients: tuple[float, float, float], s: float,
                     rules: ScalingRules, name: str | None = None) -> ModelConfig:
    depth, width, resolution = direction_multipliers(coefficients, s)
    return scale_config(base, depth=depth, width=width, resolution=resolution, rules=rules,
                        name=name or base.name)


def solve_direction(base: ModelConfig, coefficients: tuple[float, float, float],
                    target: float | None,
                    rules: ScalingRules, measure: FlopsMeter, name: str = "compound",
                    build: Callable[[ModelConfig], ModelConfig] | None = None,
                    cost: Meter | None = None) -> Scaled:
    """``base`` scaled along ``coefficients`` (depth ``alpha**s``, width ``beta**s``,
    resolution ``gamma**s``) to the measured FLOPs (or ``cost``) closest to ``target``;
    ``None``: the base's own, which the base itself meets (``s = 0``).

    The returned :class:`Scaled` has ``multiplier`` = the solved ``s`` ("effective phi"),
    its ``flops_ratio`` over the base's measured FLOPs and its ``target_error``, which may exceed
    any tolerance when rounding leaves no config closer. ``build`` post-processes each config
    before it is measured (``derive`` attaches a UNet head there).
    """
    alpha, beta, gamma = coefficients
    factor = alpha * beta ** 2 * gamma ** 2
    if factor <= 1 + 1e-9:
        raise EffscaleError(f"coefficients {alpha:g}/{beta:g}/{gamma:g} do not grow FLOPs "
                            "(alpha*beta^2*gamma^2 = 1): no multiple of the base's FLOPs can be "
                            "matched along them")
    post = build or (lambda c: c)
    log_factor = math.log(factor)

    # ``solve`` bisects a positive multiplier in log space; the nominal FLOPs factor
    # m = factor**s makes log m linear in s, as log FLOPs roughly is.
    def s_of(m: float) -> float:
        return math.log(m) / log_factor

    def config_at(m: float) -> ModelConfig:
        return post(direction_config(base, coefficients, s_of(m), rules, name))

    base_flops = measure(post(base)).flops
    base_value = as_cost(cost or measure)(post(base))
    if target is None:
        # The base's own cost (phi = 0): the base is the answer. A solver would re-measure
        # configs near it, and a timed cost's noise would move it off the base.
        target, m, config = base_value, 1.0, config_at(1.0)
    else:
        reach = max(MAX_MULTIPLIER, 16 * target / base_value, 16 * base_value / target)
        m, config = solve(config_at, target, cost or measure, max_multiplier=reach)
    s = s_of(m)
    depth, width, resolution = direction_multipliers(coefficients, s)
    return Scaled(name, s, depth, width, resolution, config, complexity=measure(config),
                  base_flops=base_flops, **_cost_fields(cost, config, post(base), target, measure))
