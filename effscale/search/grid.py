"""The phi=1 search space: alpha (depth) and gamma (resolution) axes, and beta.

Note:
    The resolution axis is the set of input sizes the proxy can actually take: gamma steps by
    ``gamma_step`` from 1 to ``gamma_max`` and the size ``base_resolution * gamma`` is
    rounded to a pixel (NNI's axis), or sizes step by ``resolution_step`` pixels. A gamma that
    rounds to an existing size would train the same model twice under another name, so it is
    not offered. With ``beta = "solve"`` (the default) beta is not an axis: it is solved per
    (alpha, gamma) on measured full-size FLOPs (:mod:`effscale.search.candidates`); with ``"grid"``
    it steps like alpha and :func:`feasible_grid` keeps NNI's ``|alpha beta^2 gamma^2 - 2| <
    tolerance``.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace

from effscale.errors import EffscaleError
from effscale.experiment.budgets import Budget

BETA_MODES = ("solve", "grid")
EXTREMES = ("depth-only", "width-only", "resolution-only")  # the equal-cost curve's ends
SINGLE_AXIS_TOLERANCE = 1e-6


@dataclass(frozen=True)
class GridSpec:
    """Ranges and tolerance of the grid. alpha and beta step by ``step`` from 1."""

    alpha_max: float = 2.0
    beta_max: float = 1.5
    gamma_max: float = 1.5
    step: float = 0.05
    tolerance: float = 0.1
    target: float = 2.0
    base_resolution: int = 32
    resolution_step: int | None = 8
    gamma_step: float | None = None  # the gamma axis' step when resolution_step is None
    beta: str = "solve"  # "solve": beta solved on measured full-size FLOPs; "grid": NNI's grid

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def shrinks(self) -> bool:
        """A target below the base's cost (a negative phi): the axes run from 1 down to
        ``1 / maximum`` and beta is solved at or below 1."""
        return self.target < 1

    def axis_of(self, maximum: float, step: float) -> list[float]:
        """An axis from 1 up to ``maximum``, or down to ``1 / maximum`` when shrinking."""
        return axis_down(1 / maximum, step) if self.shrinks else axis(maximum, step)

    @property
    def beta_low(self) -> float:
        """The smallest beta solved for: 1, or when shrinking ``1 / beta_max`` and at most
        ``sqrt(target) / 1.1``, so the width-only point (alpha = gamma = 1, the direction
        TinyNet found cheapest to shrink along) always lies on the grid."""
        return min(1 / self.beta_max, math.sqrt(self.target) / 1.1) if self.shrinks else 1.0

    @property
    def beta_high(self) -> float:
        return 1.0 if self.shrinks else self.beta_max

    def check(self) -> None:
        for name in ("alpha_max", "beta_max", "gamma_max"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 1:
                flag = "--" + name.replace("_", "-")
                raise EffscaleError(f"{flag} must be a number >= 1, got {value}")
        if not math.isfinite(self.step) or not 0 < self.step <= 1:
            raise EffscaleError(f"--step must be in (0, 1], got {self.step}")
        if not math.isfinite(self.tolerance) or self.tolerance <= 0:
            raise EffscaleError(f"--tolerance must be a positive number, got {self.tolerance}")
        if (self.resolution_step is not None and self.resolution_step < 1) \
                or self.base_resolution < 8:
            raise EffscaleError("resolution step must be >= 1 and base resolution >= 8")
        if self.gamma_step is not None and (not math.isfinite(self.gamma_step)
                                            or not 0 < self.gamma_step <= 1):
            raise EffscaleError(f"--gamma-step must be in (0, 1], got {self.gamma_step}")
        if self.beta not in BETA_MODES:
            raise EffscaleError(f"--beta must be one of {', '.join(BETA_MODES)}, got "
                                f"{self.beta!r}")


@dataclass(frozen=True)
class Triple:
    """One grid point and the proxy input size its gamma stands for."""

    alpha: float
    beta: float
    gamma: float
    resolution: int

    @property
    def nominal_ratio(self) -> float:
        return self.alpha * self.beta**2 * self.gamma**2

    @property
    def key(self) -> str:
        return f"a{self.alpha:.2f}_b{self.beta:.2f}_g{self.gamma:.3f}"


_KEY = re.compile(r"^a(?P<alpha>[\d.]+)_b(?P<beta>[\d.]+)_g(?P<gamma>[\d.]+)$")


def key_coefficients(key: str) -> tuple[float, float, float] | None:
    """The (α, β, γ) a :attr:`Triple.key` spells, at its rounding; ``None`` for any other key."""
    found = _KEY.match(key)
    return None if found is None else (float(found["alpha"]), float(found["beta"]),
                                       float(found["gamma"]))


def single_axis(alpha: float, beta: float, gamma: float) -> str | None:
    """Which of :data:`EXTREMES` a point is (two multipliers at 1), or ``None``."""
    ones = [abs(v - 1) <= SINGLE_AXIS_TOLERANCE for v in (alpha, beta, gamma)]
    if sum(ones) != 2:
        return None
    return EXTREMES[ones.index(False)]


def axis(maximum: float, step: float) -> list[float]:
    """``1, 1 + step, ...`` up to ``maximum`` inclusive, free of float drift."""
    count = int(math.floor((maximum - 1.0) / step + 1e-9))
    return [round(1.0 + i * step, 6) for i in range(count + 1)]


def axis_down(minimum: float, step: float) -> list[float]:
    """``1, 1 - step, ...`` down to ``minimum`` inclusive (above 0), free of float drift."""
    count = int(math.floor((1.0 - minimum) / step + 1e-9))
    return [v for v in (round(1.0 - i * step, 6) for i in range(count + 1)) if v > 0]


def gamma_axis(spec: GridSpec) -> list[tuple[float, int]]:
    """``(gamma, size)`` for every proxy input size from the base size up to gamma_max.

    Without a ``resolution_step``, gamma steps by ``gamma_step`` (default: ``step``) as NNI's
    grid does and the size is rounded to a pixel; a gamma whose size repeats an earlier one is
    left out (it would train the same proxy model).
    """
    if spec.resolution_step is None:
        points: list[tuple[float, int]] = []
        for g in spec.axis_of(spec.gamma_max, spec.gamma_step or spec.step):
            size = round(spec.base_resolution * g)
            if size >= 8 and (not points or size != points[-1][1]):
                points.append((g, size))
        return points
    if spec.shrinks:
        sizes = range(spec.base_resolution,
                      max(7, int(math.ceil(spec.base_resolution / spec.gamma_max - 1e-9)) - 1),
                      -spec.resolution_step)
        return [(round(size / spec.base_resolution, 6), size) for size in sizes]
    sizes = range(spec.base_resolution,
                  int(math.floor(spec.base_resolution * spec.gamma_max + 1e-9)) + 1,
                  spec.resolution_step)
    return [(round(size / spec.base_resolution, 6), size) for size in sizes]


def feasible_grid(spec: GridSpec) -> list[Triple]:
    """Every triple with ``|alpha*beta^2*gamma^2 - target| < tolerance`` (strict, as NNI).

    Raises ``EffscaleError`` when none is feasible, saying how to widen the grid.
    """
    spec.check()
    triples = [
        Triple(alpha, beta, gamma, size)
        for gamma, size in gamma_axis(spec)
        for beta in spec.axis_of(spec.beta_max, spec.step)
        for alpha in spec.axis_of(spec.alpha_max, spec.step)
        if round(abs(alpha * beta**2 * gamma**2 - spec.target), 9) < spec.tolerance
    ]
    if not triples:
        raise EffscaleError(
            f"no (alpha, beta, gamma) on the grid has |alpha*beta^2*gamma^2 - {spec.target:g}| "
            f"< {spec.tolerance:g}; widen --tolerance, use a finer --step or raise the maxima"
        )
    return triples


def alpha_gamma_points(spec: GridSpec, slack: float = 1.25) -> list[tuple[float, float, int]]:
    """``(alpha, gamma, proxy size)`` for the "solve" mode: every alpha on its axis with every
    gamma on its axis whose nominal ``alpha * gamma**2`` leaves room for ``beta >= 1``
    (``<= target * slack``; rounding makes measured FLOPs differ from nominal, so the solver
    on measured FLOPs decides, and this only skips points that cannot be close). When
    shrinking, room for a beta in ``[beta_low, 1]`` instead."""
    spec.check()
    if spec.shrinks:
        low = spec.beta_low ** 2
        fits = lambda a, g: spec.target / slack <= a * g**2 <= spec.target * slack / low  # noqa: E731
    else:
        fits = lambda a, g: a * g**2 <= spec.target * slack  # noqa: E731
    points = [(alpha, gamma, size) for gamma, size in gamma_axis(spec)
              for alpha in spec.axis_of(spec.alpha_max, spec.step) if fits(alpha, gamma)]
    if not points:
        raise EffscaleError("no (alpha, gamma) on the grid leaves room for beta >= 1; lower "
                            "--gamma-max or --alpha-max")
    return points


def budget_grid(budget: Budget, **changes: object) -> GridSpec:
    """The budget's grid (alpha/gamma axes, proxy base size), with ``changes`` applied."""
    spec = GridSpec(alpha_max=budget.alpha_max, gamma_max=budget.gamma_max, step=budget.step,
                    base_resolution=budget.resolution, resolution_step=budget.resolution_step,
                    gamma_step=budget.gamma_step)
    return replace(spec, **changes)
